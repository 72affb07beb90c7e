"""The Train page's form: a preset, every hyperparameter that matters, Start.

The widgets are drawn from :data:`ciard.studio.forms.SECTIONS`; their values live in
``st.session_state`` under ``tf_<field>``. A preset change rewrites them all; the sidebar's
dataset and teachers are copied in when the form is first drawn and whenever they change in
the sidebar. Start validates exactly as the CLI does, shows every problem at once under its
field (by the form's labels), and launches the trainer process.
"""
from __future__ import annotations

from typing import Any

import streamlit as st

from ..checkpoints import CheckpointError
from ..config import ConfigError
from ..data import DataError
from ..teachers import teacher_cautions
from . import forms
from .sidebar import Choices, check_data_path
from .store import get_store
from .text import md

SYNCED = "tf__synced"          # the sidebar choices last copied into the form
ERRORS = "train_form_errors"    # {field name or forms.GENERAL: message} of the last Start
STARTED = "train_form_started"  # the run the last Start launched (shown once)
CAUTIONS = "train_form_cautions"  # what to know about that run's teachers (teacher_cautions; shown once)


def apply_preset(name: str | None = None) -> None:
    name = name or st.session_state.get("train_preset", forms.DEFAULT_PRESET)
    for field, value in forms.preset_values(name).items():
        st.session_state[forms.KEY_PREFIX + field] = value


def load_into_form(config: dict[str, Any], choices: Choices) -> str:
    """Fill the form with a run's settings (its closest preset, then its values); returns the preset.

    The sidebar's current dataset and teachers count as already copied in, so the run's own
    dataset and teachers stay in the form.
    """
    ss = st.session_state
    name = forms.closest_preset(forms.flat_config(config))
    ss["train_preset"] = name
    for field, value in forms.form_values(config).items():
        ss[forms.KEY_PREFIX + field] = value
    ss[SYNCED] = _sidebar_key(choices)
    ss.pop(ERRORS, None)
    return name


def _sidebar_key(choices: Choices) -> tuple:
    return (choices.dataset, choices.data_path or "", choices.clean_teacher, choices.robust_teacher)


def _sync_sidebar(choices: Choices) -> None:
    ss = st.session_state
    current = _sidebar_key(choices)
    if ss.get(SYNCED) == current:
        return
    ss[SYNCED] = current
    ss["tf_dataset"], ss["tf_data_path"] = choices.dataset, choices.data_path or ""
    ss["tf_clean_teacher"], ss["tf_robust_teacher"] = choices.clean_teacher, choices.robust_teacher


def _widget(spec: forms.FieldSpec, error: str | None) -> None:
    ss = st.session_state
    if spec.kind == "select":
        options = list(spec.options)
        if ss.get(spec.key) not in options:
            options.append(ss.get(spec.key))  # e.g. a typed student name
        st.selectbox(spec.label, options, key=spec.key, help=spec.help,
                     accept_new_options=spec.new_options)
    elif spec.kind == "bool":
        st.checkbox(spec.label, key=spec.key, help=spec.help)
    elif spec.kind == "int":
        st.number_input(spec.label, key=spec.key, help=spec.help, step=1, format="%d")
    elif spec.kind == "optional_int":
        st.number_input(spec.label, key=spec.key, help=spec.help, step=1, format="%d",
                        placeholder="all")
    else:
        st.text_input(spec.label, key=spec.key, help=spec.help)
    if error:
        st.error(md(error), icon=":material/error:")


def _submit(device: str) -> None:
    """Start's callback (before the page is drawn): every problem at once, or launch the run."""
    ss = st.session_state
    ss.pop(ERRORS, None)
    values: dict[str, Any] = {name: ss.get(spec.key) for name, spec in forms.FIELDS.items()}
    preset_name = ss.get("train_preset", forms.DEFAULT_PRESET)
    errors = forms.field_errors(preset_name, values, device=device)
    if not errors:
        try:
            cfg = forms.build_config(preset_name, values, device=device)
            data_error = check_data_path(cfg.data.dataset, cfg.data.data_path)
            if data_error:
                errors = {"data_path": forms.labelled(data_error)}
            else:
                ss[STARTED] = get_store().launch(cfg).name
                ss[CAUTIONS] = teacher_cautions(cfg)
        except (ConfigError, DataError, CheckpointError, ValueError, OSError) as exc:
            errors = {forms.GENERAL: forms.labelled(str(exc))}
    if errors:
        ss[ERRORS] = errors


def render_form(choices: Choices) -> str | None:
    """Draw the preset picker and the form; on Start, launch and return the new run's name."""
    ss = st.session_state
    names = forms.preset_names()
    if ss.get("train_preset") not in names:
        ss["train_preset"] = forms.DEFAULT_PRESET
    if not any(k.startswith(forms.KEY_PREFIX) and k != SYNCED for k in ss):
        apply_preset()
    _sync_sidebar(choices)
    st.selectbox("Preset", names, key="train_preset", on_change=_preset_changed,
                 help="demo: embedded data, minutes on a CPU. paper-cifar10: the paper's setting, for a GPU, "
                      "with the paper's teachers (a checkpoint for each; auto is refused). "
                      "Choosing a preset resets the form.")
    errors: dict[str, str] = ss.get(ERRORS, {})
    if errors:
        labels = [forms.label_of(n) for n in errors if n != forms.GENERAL]
        st.error(f"{len(errors)} problem{'s' * (len(errors) > 1)}, nothing started"
                 + (f": {md(', '.join(labels))} (each is marked under its field below)" if labels else "")
                 + (f". {md(errors[forms.GENERAL])}" if forms.GENERAL in errors else ""),
                 icon=":material/block:")

    with st.form("train_form", border=True):
        # every field on the page (no inner scroll box); each section folds away
        for section, fields in forms.SECTIONS.items():
            bad = sum(f.name in errors for f in fields)
            title = f"{section} · {bad} problem{'s' * (bad > 1)}" if bad else section
            with st.expander(title, expanded=True, icon=":material/error:" if bad else None):
                cols = st.columns(2)
                for i, spec in enumerate(fields):
                    with cols[i % 2]:
                        _widget(spec, errors.get(spec.name))
        st.caption(f"Device: **{md(choices.device)}** (sidebar). Dataset and teachers start from the sidebar; "
                   "change them here for this run only.")
        st.form_submit_button("Start training", key="train_start", type="primary", width="stretch",
                              on_click=_submit, args=(choices.device,))
    started = ss.pop(STARTED, None)
    if started:
        st.success(f"Started run **{md(started)}** (its own process; it keeps going if you leave this page).")
        for caution in ss.pop(CAUTIONS, None) or []:
            st.warning(f"Caution: {md(forms.labelled(caution))}.", icon=":material/warning:")
    return started


def _preset_changed() -> None:
    st.session_state.pop(ERRORS, None)
    apply_preset()
