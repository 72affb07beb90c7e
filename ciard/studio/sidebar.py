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
from . import own
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
    ck = own.session_checkpoints(st.session_state).get(str(path))
    if ck is not None:
        return True, ck.line
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


def _own_options() -> dict[str, str]:
    """This session's own checkpoints (uploads and typed paths), for every role's select."""
    return {spec: f"own: {ck.name} ({ck.arch}, {ck.num_classes} classes)"
            for spec, ck in own.session_checkpoints(st.session_state).items()}


def teacher_options(role: str, runs_root: Path) -> dict[str, str]:
    """spec -> label for a teacher select: auto, the zoo's entries of the role, cached teachers,
    this session's own checkpoints."""
    opts = {"auto": "auto"}
    for e in _zoo_entries():
        if e.get("role") == f"{role}_teacher" and e.get("name"):
            opts[f"zoo:{e['name']}"] = f"zoo: {e['name']} ({e.get('arch', '?')}, {e.get('dataset', '?')})"
    tdir = runs_root / teachers.QUICK_DIR
    if tdir.is_dir():
        for d in sorted(tdir.glob(f"{role}-*")):
            if (d / "best.pt").is_file():
                opts[str(d / "best.pt")] = f"quick teacher: {teachers.QUICK_DIR}/{d.name}"
    return {**opts, **_own_options()}


def student_options(active: dict[str, Any], promoted: dict[str, Any] | None = None) -> dict[str, str]:
    """spec -> label for the active-student select: the run promoted in this session, the zoo's
    students (the first is every new visitor's default), a run promoted by an earlier version
    for everyone (``active.json``), this session's own checkpoints, none."""
    opts: dict[str, str] = {}
    if promoted and promoted.get("student"):
        opts[promoted["student"]] = f"promoted (this session): {promoted.get('run', '?')}"
    for e in _zoo_entries():
        if e.get("role") == "student" and e.get("name"):
            opts[f"zoo:{e['name']}"] = f"zoo: {e['name']} ({e.get('arch', '?')})"
    if active.get("student") and active["student"] not in opts:
        opts[active["student"]] = f"promoted earlier (shared): {active.get('run', '?')}"
    opts.update(_own_options())
    opts[NO_STUDENT] = "none"
    return opts


PROMOTED = "sb_promoted"   # session key: {"run", "student"} promoted on the Runs page


def promote_in_session(store, name: str) -> Path:
    """Make run ``name``'s best student this session's active student (nobody else's).

    A lecturer's demo must not change when someone else promotes a run, so promotion is per
    browser session: other visitors keep the zoo's default. Undo: pick another student in the
    sidebar. Raises ValueError/KeyError like :meth:`RunStore.get` when there is no checkpoint.
    """
    info = store.get(name)
    if info.checkpoint is None:
        raise ValueError(f"run '{name}' has no student checkpoint yet (best.pt appears after an epoch)")
    st.session_state[PROMOTED] = {"run": name, "student": str(info.checkpoint)}
    st.session_state["sb_student_next"] = str(info.checkpoint)
    return info.checkpoint


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


OWN_ROLES = {"student": "active student", "clean_teacher": "clean teacher", "robust_teacher": "robust teacher"}


def render_own_checkpoint(sb, dataset: str, data_path: str | None) -> None:
    """Upload a checkpoint (kept in memory) or type a path, check it, and use it for a role."""
    with sb.expander("Bring your own checkpoint", icon=":material/upload_file:"):
        role = st.radio("Use it as", list(OWN_ROLES), format_func=OWN_ROLES.get, key="sb_own_role",
                        horizontal=False)
        up = st.file_uploader(f"Upload (.pt, up to {own.MAX_MB} MB)", type=["pt", "pth"], key="sb_own_file",
                              max_upload_size=own.MAX_MB,
                              help="read safely (weights only, no code runs), kept in memory for this "
                                   "session and never written to disk")
        typed = st.text_input("…or a path", key="sb_own_path", placeholder="/path/to/best.pt or a run folder")
        if st.button("Use it", key="sb_own_use", icon=":material/check:"):
            expected = own.dataset_classes(dataset, data_path)
            if up is not None:
                ck, err = own.from_upload(up.name, up.getvalue(), expected, role)
            else:
                ck, err = own.from_path(typed, expected, role)
            if ck is None:
                st.session_state["sb_own_error"] = err
            else:
                st.session_state.pop("sb_own_error", None)
                own.add(st.session_state, ck)
                st.session_state[f"sb_{role}_own_next"] = ck.spec
                st.rerun()
        if st.session_state.get("sb_own_error"):
            st.error(md(st.session_state["sb_own_error"]), icon=":material/error:")


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
    render_own_checkpoint(sb, dataset, path)
    for role in ("student", "clean_teacher", "robust_teacher"):   # just brought with "Use it"
        nxt = st.session_state.pop(f"sb_{role}_own_next", None)
        if nxt is not None:
            st.session_state[f"sb_{role}"] = nxt
    students = student_options(active, st.session_state.get(PROMOTED))
    if "sb_student_next" in st.session_state:  # just promoted on the Runs page
        st.session_state["sb_student"] = st.session_state.pop("sb_student_next")
    student = _select(sb, "Active student", students, "sb_student",
                      "the student other pages evaluate; promote one on the Runs page (for this session)")
    if student:
        ok, line = checkpoint_summary(student)
        (sb.caption if ok else sb.warning)(md(line))
        if student == (st.session_state.get(PROMOTED) or {}).get("student"):
            sb.caption("Promoted for this browser session only; other visitors keep the default. "
                       "Pick another student above to undo.")
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
