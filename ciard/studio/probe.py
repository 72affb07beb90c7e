"""What the probing pages share: which checkpoints to use, cached models, data and attacks.

Models are cached with ``st.cache_resource`` keyed on (path, mtime, size), so a retrained or
re-promoted checkpoint is picked up and a rerun costs nothing; attack and attribution results
with ``st.cache_data`` keyed on the same references plus every parameter. All of it runs in
fp32 on the CPU on small batches. Failures come back as one line (``ModelRef.error``), never
as a traceback.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch

from .. import cancel, checkpoints, explain, specs, teachers, zoo
from ..data import DataError, ImageData, load_dataset, to_float
from ..fold import fold
from . import own
from .sidebar import Choices, choices
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

    @property
    def key(self) -> tuple:
        """What the cached computations are keyed on: the role and the file's identity."""
        return (self.role, self.path, self.mtime, self.size)


def model_ref(role: str, spec: str | None, dataset: str = "default", label: str | None = None) -> ModelRef:
    """Resolve a sidebar spec (``auto``, ``zoo:NAME`` or a path) to a :class:`ModelRef`."""
    label = label or ROLES.get(role, role)
    if not spec:
        return ModelRef(role, label, error="no student yet: train one on the Train page, then promote it "
                                           "on the Runs page (or pick a zoo student in the sidebar)")
    if own.is_upload(spec):
        try:
            return ModelRef(role, label, spec, 0.0, len(own.bytes_of(spec)))
        except KeyError:
            return ModelRef(role, label, error="the uploaded checkpoint is no longer in memory: upload it again")
    try:
        if spec == "auto":
            p, line = teachers.find_auto(role.split("_")[0], dataset, get_store().root)
            if p is None:
                return ModelRef(role, label, error=f"no {label} for this dataset: {line}")
        else:
            p = specs.resolve(spec)
        st_ = p.stat()
    except checkpoints.CheckpointError as exc:
        return ModelRef(role, label, error=str(exc))
    except OSError:
        return ModelRef(role, label, error=f"checkpoint not found: {spec}")
    return ModelRef(role, label, str(p), st_.st_mtime, st_.st_size)


def page_models(ch: Choices, need_data: bool = True) -> dict[str, ModelRef]:
    """clean teacher, robust teacher and student chosen in the sidebar, in that order.

    A page that does not use the dataset (Your own image) falls back to the shipped ``auto``
    teachers when none is trained on the sidebar's dataset yet.
    """
    refs = {"clean_teacher": model_ref("clean_teacher", ch.clean_teacher, ch.dataset),
            "robust_teacher": model_ref("robust_teacher", ch.robust_teacher, ch.dataset),
            "student": model_ref("student", ch.student, ch.dataset)}
    if not need_data and ch.dataset != "default":
        for role in ("clean_teacher", "robust_teacher"):
            spec = getattr(ch, role)
            if refs[role].error and spec == "auto":
                refs[role] = model_ref(role, spec, "default")
    return refs


@st.cache_resource(max_entries=12, show_spinner=False)
def _load(path: str, mtime: float, size: int) -> torch.nn.Module:
    if own.is_upload(path):   # an upload: read from memory, keyed on its hash
        return checkpoints.model_from(checkpoints.load_bytes(own.bytes_of(path), path), path).float().eval()
    return checkpoints.load_model(path, "cpu").float().eval()


@st.cache_data(max_entries=32, show_spinner=False)
def _training_config(path: str, mtime: float, size: int) -> dict | None:
    ckpt = (checkpoints.load_bytes(own.bytes_of(path), path) if own.is_upload(path)
            else checkpoints.load(path))
    return checkpoints.recorded_config(ckpt) or None


def training_config(ref: ModelRef) -> dict | None:
    """The config a checkpoint's model was trained with; None when it records none or cannot be
    read (:func:`get_model` says why a checkpoint cannot be used)."""
    if not ref.ok:
        return None
    try:
        return _training_config(ref.path, ref.mtime, ref.size)
    except Exception:   # noqa: BLE001 - a foreign or damaged file: no config, no raise
        return None


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
    """One key for a set of models (e.g. an accuracy-vs-eps curve over all of them)."""
    return tuple(r.key for r in refs.values() if r.ok)


def class_names(ch: Choices, num_classes: int) -> list[str]:
    """The class names of the sidebar's dataset when it has ``num_classes`` classes, else those of
    the embedded default data (what the shipped models know) when it does, else numbers."""
    for dataset, path in ((ch.dataset, ch.data_path), ("default", None)):
        probe_ch = ch if dataset == ch.dataset else Choices("default", None, None, ch.device, None, "", "")
        data, _ = get_test_split(probe_ch)
        if data is not None and len(data.classes) == num_classes:
            return list(data.classes)
    return [str(i) for i in range(num_classes)]


def class_mismatch(data: ImageData, models: dict[str, torch.nn.Module]) -> tuple[dict, str | None]:
    """(the models whose class count is the dataset's, one line about the others or None).

    A model with another class count cannot be scored on these images (its outputs index other
    classes), so it is left out of the page and named once, instead of failing on the first label.
    """
    n = data.num_classes
    keep = {k: m for k, m in models.items() if m.num_classes == n}
    other = {k: m.num_classes for k, m in models.items() if k not in keep}
    if not other:
        return keep, None
    names = ", ".join(data.classes[:5]) + (", …" if n > 5 else "")
    who = " and ".join(f"the {ROLES.get(k, k)} has {c}" for k, c in other.items())
    return keep, (f"The models and the data have different classes: the dataset has {n} ({names}), {who}, "
                  f"so {'it is' if len(other) == 1 else 'they are'} left out here. Choose checkpoints trained "
                  f"on this dataset in the sidebar (or bring your own there), or switch the dataset.")


@st.cache_resource(max_entries=12, show_spinner=False)
def _load_folded(path: str, mtime: float, size: int) -> torch.nn.Module:
    """The eval-mode model with its BatchNorms folded (:mod:`ciard.fold`): the same function,
    fewer operations; what attacks and predictions run on."""
    return fold(_load(path, mtime, size))


# -- cached computations (arguments are ModelRef.key tuples, models come from _load) -----------
def _model(key: tuple) -> torch.nn.Module:
    _, path, mtime, size = key
    return _load(path, mtime, size)


def _fast(key: tuple) -> torch.nn.Module:
    _, path, mtime, size = key
    return _load_folded(path, mtime, size)


@st.cache_data(max_entries=64, show_spinner=False)
def attack_batch(source: tuple, x: np.ndarray, y: np.ndarray, attack: str, eps: float, steps: int,
                 step_size: float) -> np.ndarray:
    """Adversarial images (float32 N x C x H x W) crafted on the ``source`` model."""
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    atk = explain.make_attack(attack, eps, steps, step_size)
    return explain.run_attack(atk, _fast(source), xt, yt).numpy()


@st.cache_data(max_entries=128, show_spinner=False)
def probs_of(key: tuple, x: np.ndarray) -> np.ndarray:
    return explain.probabilities(_fast(key), torch.from_numpy(x)).numpy()


@st.cache_resource(show_spinner=False)
def _curve_cache() -> dict:
    """Curves computed by any session. Not ``st.cache_data`` on :func:`eps_curve`: that would replay
    the progress bar it updates, an element of the caller's layout (CacheReplayClosureError)."""
    return {}


CURVES_KEPT = 32


def eps_curve(keys: tuple[tuple, ...], x: np.ndarray, y: np.ndarray, attack: str, eps_grid: tuple[int, ...],
              steps: int, step_size: float, progress=None) -> list[list[float]]:
    """Per model (in ``keys`` order), the share of images right clean and under a white-box
    attack at every eps of the increasing ``eps_grid`` (n/255) up to that one.

    An image the attack fools at a smaller eps counts as fooled at every larger eps (that
    perturbation lies inside the larger ball too), so only the images still standing are
    attacked at the next eps: the curve is the union of the attacks (for an attack without a
    random start, never above what it gives alone; with one, a survivor's start differs from
    the one it would get in the full batch), and the clean teacher's curve costs little once
    eps 2 has fooled it. Attacks
    run on the folded models; the whole curve is cached. ``progress(done, total, what)`` after
    each attack counts image-attacks: ``total`` is an upper bound (every survivor attacked
    again), lowered as images fall."""
    if list(eps_grid) != sorted(eps_grid):
        raise ValueError(f"eps_grid {eps_grid} must be increasing")
    cache = _curve_cache()
    digest = hashlib.sha256(x.tobytes() + y.tobytes() + repr((x.shape, x.dtype)).encode()).hexdigest()
    ckey = (keys, digest, attack, tuple(eps_grid), steps, step_size)
    if ckey in cache:
        return cache[ckey]
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    n_eps = sum(1 for e in eps_grid if e > 0)
    out, done = [], 0
    for i, key in enumerate(keys):
        m = _fast(key)
        standing = explain.probabilities(m, xt).argmax(1) == yt
        row, attacked = [], 0
        for e in eps_grid:
            if e > 0:
                idx = standing.nonzero().squeeze(1)
                if len(idx):
                    xa = explain.run_attack(explain.make_attack(attack, e / 255, steps, step_size), m,
                                            xt[idx], yt[idx])
                    standing[idx] = explain.probabilities(m, xa).argmax(1) == yt[idx]
                done += len(idx)
                attacked += 1
                if progress is not None:
                    left = int(standing.sum()) * (n_eps - attacked) + len(xt) * n_eps * (len(keys) - i - 1)
                    progress(done, done + left, f"{ROLES.get(key[0], key[0])}, eps {e}/255")
            row.append(float(standing.float().mean()))
        out.append(row)
    while len(cache) >= CURVES_KEPT:
        cache.pop(next(iter(cache)))
    cache[ckey] = out
    return out


@st.cache_data(max_entries=128, show_spinner=False)
def attribution(key: tuple, x: np.ndarray, target: int, method: str) -> np.ndarray:
    return explain.attribute(_model(key), torch.from_numpy(x), target, method).numpy()


@st.cache_data(max_entries=32, show_spinner=False)
def features_of(key: tuple, x: np.ndarray) -> np.ndarray:
    return explain.penultimate(_model(key), torch.from_numpy(x)).numpy()


def as_float(x_uint8: torch.Tensor) -> np.ndarray:
    return to_float(x_uint8).numpy().astype(np.float32)


# -- students to compare (the push-loss view) ------------------------------------------------------
@dataclass(frozen=True)
class Candidate:
    """A student the push-loss view can compare: where it is, and how it was trained."""
    label: str
    spec: str                   # checkpoint path or zoo:NAME
    method: str | None = None
    push_weight: float | None = None

    @property
    def without_push(self) -> bool:
        """A CIARD student trained with the push loss off (the ablation)."""
        return self.method == "ciard" and self.push_weight == 0


def student_candidates(active_student: str | None) -> dict[str, Candidate]:
    """label -> candidate: the active student, the zoo's students, every run's best.pt."""
    out: list[Candidate] = []
    if active_student:
        name = active_student.split("/")[-2] if "/" in active_student else active_student
        out.append(Candidate(f"active: {name}", active_student))
    try:
        listed = zoo.entries()
    except (OSError, ValueError):   # a malformed manifest: no zoo students
        listed = []
    for e in listed:
        if e.get("role") == "student" and e.get("name") and f"zoo:{e['name']}" != active_student:
            method = e.get("method")
            push = e.get("push_weight") if method == "ciard" else None   # from its checkpoint's config
            tag = (f" ({method}, push {push:g})" if push is not None
                   else f" ({method})" if method else "")
            out.append(Candidate(f"zoo: {e['name']}{tag}", f"zoo:{e['name']}", method, push))
    for r in get_store().list():
        if r.checkpoint is not None and str(r.checkpoint) != active_student:
            push = checkpoints.push_weight(r.config)
            tag = f"{r.method}" + (f", push {push:g}" if push is not None else "")
            out.append(Candidate(f"run: {r.name} ({tag})", str(r.checkpoint), r.method, push))
    return {c.label: c for c in out}


def model_messages(refs: dict[str, ModelRef], mismatch: str | None = None) -> None:
    """One message for the models that cannot be used here: the student is optional, a teacher
    is not; a class-count mismatch with the dataset (:func:`class_mismatch`) comes first."""
    lines = [md(mismatch)] if mismatch else []   # all in one message
    for role, ref in refs.items():
        if ref.error:
            if role == "student":
                st.info(f"**Student:** {md(ref.error)}. The teachers are shown below.", icon=":material/school:")
            else:
                lines.append(f"**{md(ref.label.capitalize())}:** {md(ref.error)}")
    if lines:
        st.error("  \n".join(lines), icon=":material/error:")
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
    models, refs = load_models(page_models(ch, need_data))
    mismatch = None
    if data is not None:
        models, mismatch = class_mismatch(data, models)
    model_messages(refs, mismatch)
    if not models:
        st.stop()
    return ch, data, models, refs
