"""The shared sidebar: dataset, active checkpoints and device, kept in ``st.session_state``.

``app.py`` draws it on every run, before the page, so its widgets (and therefore their
values) live as long as the browser session, whichever page is open. Pages read the choices
with :func:`choices`; they never read the widgets' keys directly.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st
import torch

from .. import checkpoints, specs, teachers, zoo
from ..archives import archive_kind
from ..data import ARCHIVE_ENV
from ..paths import path_problem, shorten
from ..runtime import mps_available
from .store import get_store
from .text import md

DATASETS = {"default": "Embedded CIFAR-10 subset",
            "cifar10-archive": "CIFAR-10 archive (.tar.gz / .zip)",
            "folder": "Image folder (train/ + test/)"}
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
NO_STUDENT = ""


@dataclass(frozen=True)
class Choices:
    dataset: str
    data_path: str | None
    data_error: str | None        # why the typed path cannot be used (None: fine)
    device: str
    student: str | None           # checkpoint path or zoo:NAME of the active student
    clean_teacher: str            # teacher spec: auto, zoo:NAME or a checkpoint path
    robust_teacher: str


# -- checks without Streamlit (unit-testable) ---------------------------------------------------
def check_data_path(dataset: str, path: str | None) -> str | None:
    """One line saying why ``path`` cannot serve ``dataset``, or None if it looks usable.

    Never raises: a name part over 255 characters, ``~nosuchuser/...`` or an unreadable file
    are lines like any other (the sidebar runs this on every page).
    """
    try:
        return _check_data_path(dataset, path)
    except OSError as exc:
        return f"cannot use the path {shorten(path)}: {exc.strerror or type(exc).__name__}"


def _check_data_path(dataset: str, path: str | None) -> str | None:
    path = (path or "").strip()
    if dataset == "default":
        return None
    if dataset == "cifar10-archive" and not path:
        if not os.environ.get(ARCHIVE_ENV):
            return f"enter the path of the CIFAR-10 archive (or set {ARCHIVE_ENV})"
        path = os.environ[ARCHIVE_ENV]
    if path and dataset in ("cifar10-archive", "folder"):
        problem = path_problem(path)
        if problem:
            return problem
    if dataset == "cifar10-archive":
        p = Path(path).expanduser()
        if not p.exists():
            return f"dataset path not found: {path}"
        if p.is_dir():
            return f"{path} is a folder; cifar10-archive needs the archive file ({', '.join(ARCHIVE_SUFFIXES)})"
        if not p.name.lower().endswith(ARCHIVE_SUFFIXES):
            return f"{path} is not an archive ({', '.join(ARCHIVE_SUFFIXES)})"
        try:
            archive_kind(p)   # its first bytes, not its name: zeros named .tar.gz are refused here
        except ValueError as exc:
            return str(exc)
        return None
    if dataset == "folder":
        if not path:
            return "enter the dataset folder (it holds train/ and test/ or val/, one folder per class)"
        p = Path(path).expanduser()
        if not p.exists():
            return f"dataset path not found: {path}"
        if not p.is_dir():
            return f"{path} is not a folder"
        if not (p / "train").is_dir():
            return f"{path} has no train/ folder (expected train/ and test/ or val/, one folder per class)"
        if not ((p / "test").is_dir() or (p / "val").is_dir()):
            return f"{path} has a train/ folder but no test/ or val/ folder"
        return None
    return f"unknown dataset '{dataset}'"


def checkpoint_summary(path: str | Path) -> tuple[bool, str]:
    """(usable, one line): architecture and classes, or why the file cannot be read.

    Safe loading (``weights_only``) through :mod:`ciard.checkpoints`; cached by mtime and size.
    """
    try:
        p = specs.resolve(str(path))
        st_ = p.stat()
    except (OSError, checkpoints.CheckpointError) as exc:
        return False, str(exc) if isinstance(exc, checkpoints.CheckpointError) else f"checkpoint not found: {path}"
    return _summary(str(p), st_.st_mtime, st_.st_size)


@functools.lru_cache(maxsize=64)
def _summary(path: str, mtime: float, size: int) -> tuple[bool, str]:
    try:
        meta = checkpoints.load(path)["model"]
    except checkpoints.CheckpointError as exc:
        return False, str(exc)
    return True, f"{meta.get('arch', '?')}, {meta.get('num_classes', '?')} classes"


def auto_teacher(role: str, dataset: str, runs_root: Path) -> tuple[str | None, str]:
    """What ``auto`` resolves to for a role: (checkpoint or None, one line saying which)."""
    path, line = teachers.find_auto(role, dataset, runs_root)
    return (str(path) if path is not None else None), line


def _zoo_entries() -> list[dict[str, Any]]:
    try:
        return zoo.entries()
    except (OSError, ValueError):   # a malformed manifest must not break the sidebar
        return []


def teacher_options(role: str, runs_root: Path) -> dict[str, str]:
    """spec -> label for a teacher select: auto, the zoo's entries of the role, cached teachers."""
    opts = {"auto": "auto"}
    for e in _zoo_entries():
        if e.get("role") == f"{role}_teacher" and e.get("name"):
            opts[f"zoo:{e['name']}"] = f"zoo: {e['name']} ({e.get('arch', '?')}, {e.get('dataset', '?')})"
    tdir = runs_root / teachers.QUICK_DIR
    if tdir.is_dir():
        for d in sorted(tdir.glob(f"{role}-*")):
            if (d / "best.pt").is_file():
                opts[str(d / "best.pt")] = f"quick teacher: {teachers.QUICK_DIR}/{d.name}"
    return opts


def student_options(active: dict[str, Any]) -> dict[str, str]:
    """spec -> label for the active-student select: the promoted one, then the zoo's students."""
    opts: dict[str, str] = {}
    if active.get("student"):
        opts[active["student"]] = f"promoted: {active.get('run', '?')}"
    for e in _zoo_entries():
        if e.get("role") == "student" and e.get("name"):
            opts[f"zoo:{e['name']}"] = f"zoo: {e['name']} ({e.get('arch', '?')})"
    opts[NO_STUDENT] = "none"
    return opts


def device_options() -> list[str]:
    opts = ["auto", "cpu"]
    if torch.cuda.is_available():
        opts.append("cuda")
        opts += [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.device_count() > 1 else []
    if mps_available():
        opts.append("mps")
    return opts


# -- drawing -------------------------------------------------------------------------------------
def _select(container, label: str, options: dict[str, str] | list[str], key: str, help: str) -> str:
    """A selectbox whose value survives page switches and whose stale value is dropped."""
    values = list(options)
    if st.session_state.get(key) not in values:
        st.session_state[key] = values[0]
    fmt = (lambda v: options[v]) if isinstance(options, dict) else str
    return container.selectbox(label, values, key=key, format_func=fmt, help=help)


def render_sidebar() -> Choices:
    sb = st.sidebar
    store = get_store()

    sb.subheader("Data")
    dataset = _select(sb, "Dataset", DATASETS, "sb_dataset",
                      "images every page uses; the embedded subset works offline")
    path = None
    error = None
    if dataset != "default":
        placeholder = "/path/to/cifar10-jpeg.tar.gz" if dataset == "cifar10-archive" else "/path/to/dataset"
        path = sb.text_input("Path", key="sb_data_path", placeholder=placeholder,
                             help="archive file for cifar10-archive; folder with train/ and test/ (or val/) for folder")
        error = check_data_path(dataset, path)
        if error:
            sb.error(md(error), icon=":material/error:")
        path = path.strip() or None

    sb.subheader("Checkpoints")
    active = store.active()
    students = student_options(active)
    if "sb_student_next" in st.session_state:  # just promoted on the Runs page
        st.session_state["sb_student"] = st.session_state.pop("sb_student_next")
    student = _select(sb, "Active student", students, "sb_student",
                      "the student other pages evaluate; promote one on the Runs page")
    if student:
        ok, line = checkpoint_summary(student)
        (sb.caption if ok else sb.warning)(md(line))
    else:
        sb.caption("No student yet: train one, then promote it on the Runs page.")
    teachers = {}
    for role in ("clean", "robust"):
        spec = _select(sb, f"{role.capitalize()} teacher", teacher_options(role, store.root),
                       f"sb_{role}_teacher", f"the {role} teacher new runs start with (the Train form can change it)")
        teachers[role] = spec
        if spec == "auto":
            _, line = auto_teacher(role, dataset, store.root)
            sb.caption(f"auto → {md(line)}")
        else:
            ok, line = checkpoint_summary(spec)
            (sb.caption if ok else sb.warning)(md(line))

    sb.subheader("Device")
    device = _select(sb, "Device", device_options(), "sb_device",
                     "where new runs train; auto picks a CUDA GPU, else an Apple GPU (mps), else the CPU")
    return Choices(dataset, path, error, device, student or None, teachers["clean"], teachers["robust"])


def choices() -> Choices:
    """The sidebar's current choices (drawn by app.py earlier in this run)."""
    ss = st.session_state
    dataset = ss.get("sb_dataset", "default")
    path = ((ss.get("sb_data_path") or "").strip() or None) if dataset != "default" else None
    return Choices(dataset, path, check_data_path(dataset, path), ss.get("sb_device", "auto"),
                   ss.get("sb_student") or None, ss.get("sb_clean_teacher", "auto"),
                   ss.get("sb_robust_teacher", "auto"))
