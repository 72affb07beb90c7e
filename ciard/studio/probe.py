"""What the probing pages share: which checkpoints to use, cached models, data and attacks.

Models are cached with ``st.cache_resource`` keyed on (path, mtime, size), so a retrained or
re-promoted checkpoint is picked up and a rerun costs nothing; attack and attribution results
with ``st.cache_data`` keyed on the same references plus every parameter. All of it runs in
fp32 on the CPU on small batches. Failures come back as one line (``ModelRef.error``), never
as a traceback.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st
import torch

from .. import cancel, checkpoints, explain
from ..data import DataError, ImageData, load_dataset, to_float
from .sidebar import Choices, auto_teacher, choices
from .store import get_store
from .text import md

ROLES = {"clean_teacher": "clean teacher", "robust_teacher": "robust teacher", "student": "student"}


@dataclass(frozen=True)
class ModelRef:
    """A checkpoint as the caches see it: hashable, changes when the file does."""

    role: str
    label: str
    path: str | None = None
    mtime: float = 0.0
    size: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.path is not None


def model_ref(role: str, spec: str | None, dataset: str = "default", label: str | None = None) -> ModelRef:
    """Resolve a sidebar spec (``auto``, ``zoo:NAME`` or a path) to a :class:`ModelRef`."""
    label = label or ROLES.get(role, role)
    if not spec:
        return ModelRef(role, label, error="no student yet: train one on the Train page, then promote it "
                                           "on the Runs page (or pick a zoo student in the sidebar)")
    try:
        if spec == "auto":
            kind = role.split("_")[0]
            shipped = checkpoints.zoo_default(role, dataset)
            if shipped is None:
                path, line = auto_teacher(kind, dataset, get_store().root)
                if path is None:
                    return ModelRef(role, label, error=f"no {label} for this dataset: {line}")
                shipped = Path(path)
            p = Path(shipped)
        else:
            p = Path(checkpoints.resolve_teacher_spec(spec))
        st_ = p.stat()
    except checkpoints.CheckpointError as exc:
        return ModelRef(role, label, error=str(exc))
    except OSError:
        return ModelRef(role, label, error=f"checkpoint not found: {spec}")
    return ModelRef(role, label, str(p), st_.st_mtime, st_.st_size)


def page_models(ch: Choices) -> dict[str, ModelRef]:
    """clean teacher, robust teacher and student chosen in the sidebar, in that order."""
    return {"clean_teacher": model_ref("clean_teacher", ch.clean_teacher, ch.dataset),
            "robust_teacher": model_ref("robust_teacher", ch.robust_teacher, ch.dataset),
            "student": model_ref("student", ch.student, ch.dataset)}


@st.cache_resource(max_entries=12, show_spinner=False)
def _load(path: str, mtime: float, size: int) -> torch.nn.Module:
    return checkpoints.load_model(path, "cpu").float().eval()


def get_model(ref: ModelRef) -> tuple[torch.nn.Module | None, ModelRef]:
    """(model or None, the ref with ``error`` set if it cannot be loaded)."""
    if not ref.ok:
        return None, ref
    try:
        return _load(ref.path, ref.mtime, ref.size), ref
    except checkpoints.CheckpointError as exc:
        return None, ModelRef(ref.role, ref.label, ref.path, ref.mtime, ref.size, str(exc))
    except Exception as exc:  # an unknown architecture, a missing key, ...
        return None, ModelRef(ref.role, ref.label, ref.path, ref.mtime, ref.size,
                              f"cannot use checkpoint {ref.path}: {type(exc).__name__}: {exc}")


def load_models(refs: dict[str, ModelRef]) -> tuple[dict[str, torch.nn.Module], dict[str, ModelRef]]:
    models, out = {}, {}
    for k, ref in refs.items():
        m, out[k] = get_model(ref)
        if m is not None:
            models[k] = m
    return models, out


def _page_stop_check():
    """Streamlit's own stop/rerun check for this script run (None outside a running app)."""
    try:
        from streamlit.runtime.scriptrunner_utils.script_run_context import get_run_yield_check
    except ImportError:   # another Streamlit version: decoding is then not cancellable
        return None
    return get_run_yield_check()


@st.cache_resource(max_entries=3, show_spinner="Loading the test split…")
def test_split(dataset: str, path: str | None) -> ImageData:
    # a long decode (a big archive or folder) ends when the page is left, rerun or closed
    with cancel.checking(_page_stop_check()):
        return load_dataset(dataset, path, seed=0).test


def get_test_split(ch: Choices) -> tuple[ImageData | None, str | None]:
    if ch.data_error:
        return None, ch.data_error
    try:
        return test_split(ch.dataset, ch.data_path), None
    except DataError as exc:
        return None, str(exc)
    except Exception as exc:
        return None, f"cannot load the dataset: {type(exc).__name__}: {exc}"


def refs_key(refs: dict[str, ModelRef]) -> tuple:
    return tuple((k, r.path, r.mtime, r.size) for k, r in refs.items() if r.ok)


# -- cached computations (arguments are hashable references, models come from _load) -----------
def _model(key: tuple) -> torch.nn.Module:
    return _load(key[1], key[2], key[3])


@st.cache_data(max_entries=64, show_spinner=False)
def attack_batch(source: tuple, x: np.ndarray, y: np.ndarray, attack: str, eps: float, steps: int,
                 step_size: float) -> np.ndarray:
    """Adversarial images (float32 N x C x H x W) crafted on the ``source`` model."""
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    atk = explain.make_attack(attack, eps, steps, step_size)
    return explain.run_attack(atk, _model(source), xt, yt).numpy()


@st.cache_data(max_entries=128, show_spinner=False)
def probs_of(key: tuple, x: np.ndarray) -> np.ndarray:
    return explain.probabilities(_model(key), torch.from_numpy(x)).numpy()


@st.cache_data(max_entries=128, show_spinner=False)
def attribution(key: tuple, x: np.ndarray, target: int, method: str) -> np.ndarray:
    return explain.attribute(_model(key), torch.from_numpy(x), target, method).numpy()


@st.cache_data(max_entries=32, show_spinner=False)
def features_of(key: tuple, x: np.ndarray) -> np.ndarray:
    return explain.penultimate(_model(key), torch.from_numpy(x)).numpy()


def as_float(x_uint8: torch.Tensor) -> np.ndarray:
    return to_float(x_uint8).numpy().astype(np.float32)


# -- students to compare (the push-loss view) ------------------------------------------------------
def student_candidates(active_student: str | None) -> dict[str, str]:
    """label -> checkpoint spec: the active student, the zoo's students, every run's best.pt."""
    out: dict[str, str] = {}
    if active_student:
        out[f"active: {active_student.split('/')[-2] if '/' in active_student else active_student}"] = active_student
    try:
        for e in checkpoints.zoo_entries():
            if e.get("role") == "student" and e.get("name") and f"zoo:{e['name']}" != active_student:
                cmd = e.get("command") or ""
                push = re.search(r"--push-weight[ =]([0-9.eE+-]+)", cmd)
                tag = (f" ({e.get('method', '?')}, push {float(push.group(1)):g})" if push and e.get("method") == "ciard"
                       else f" ({e['method']})" if e.get("method") else "")
                out[f"zoo: {e['name']}{tag}"] = f"zoo:{e['name']}"
    except Exception:
        pass
    for r in get_store().list():
        if r.checkpoint is not None and str(r.checkpoint) != active_student:
            m = r.config.get("method", {})
            push = m.get("push_weight")
            tag = f"{r.method}" + (f", push {push:g}" if r.method == "ciard" and push is not None else "")
            out[f"run: {r.name} ({tag})"] = str(r.checkpoint)
    return out


def model_messages(refs: dict[str, ModelRef]) -> None:
    """One line per model that cannot be loaded: the student is optional, a teacher is not."""
    for role, ref in refs.items():
        if ref.error:
            if role == "student":
                st.info(f"**Student:** {md(ref.error)}. The teachers are shown below.", icon=":material/school:")
            else:
                st.error(f"**{md(ref.label.capitalize())}:** {md(ref.error)}", icon=":material/error:")
    if not any(r.error is None for r in refs.values()):
        st.warning("No model can be loaded: check the checkpoints in the sidebar.")


def page_context(need_data: bool = True) -> tuple[Choices, ImageData | None, dict, dict[str, ModelRef]]:
    """What every probing page starts with: the sidebar's choices, the test split (if needed)
    and the loaded models, with a clear message and a stop where something is missing."""
    ch = choices()
    data = None
    if need_data:
        data, err = get_test_split(ch)
        if data is None:
            st.error(f"Cannot load the test images: {md(err)}", icon=":material/error:")
            st.stop()
    models, refs = load_models(page_models(ch))
    model_messages(refs)
    if not models:
        st.stop()
    return ch, data, models, refs
