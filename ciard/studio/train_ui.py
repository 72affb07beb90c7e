"""The Train page's form: a preset, every hyperparameter that matters, Start.

The widgets are drawn from :data:`ciard.studio.forms.SECTIONS`; their values live in
``st.session_state`` under ``tf_<field>``. A preset change rewrites them all; the sidebar's
dataset and teachers are copied in when the form is first drawn and whenever they change in
the sidebar. Start validates exactly as the CLI does and launches the trainer process.
"""
from __future__ import annotations

from typing import Any

import streamlit as st

from ..checkpoints import CheckpointError
from ..config import ConfigError
from ..data import DataError
from . import forms
from .sidebar import Choices, check_data_path
from .store import get_store
from .text import md

SYNCED = "tf__synced"          # the sidebar choices last copied into the form
FORM_HEIGHT = 560               # pixels of fields shown at once


def apply_preset(name: str | None = None) -> None:
    name = name or st.session_state.get("train_preset", forms.DEFAULT_PRESET)
    for field, value in forms.preset_values(name).items():
        st.session_state[forms.KEY_PREFIX + field] = value


def _sync_sidebar(choices: Choices) -> None:
    ss = st.session_state
    current = (choices.dataset, choices.data_path or "", choices.clean_teacher, choices.robust_teacher)
    if ss.get(SYNCED) == current:
        return
    ss[SYNCED] = current
    ss["tf_dataset"], ss["tf_data_path"] = choices.dataset, choices.data_path or ""
    ss["tf_clean_teacher"], ss["tf_robust_teacher"] = choices.clean_teacher, choices.robust_teacher


def _widget(spec: forms.FieldSpec) -> None:
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


def render_form(choices: Choices) -> str | None:
    """Draw the preset picker and the form; on Start, launch and return the new run's name."""
    ss = st.session_state
    names = forms.preset_names()
    if ss.get("train_preset") not in names:
        ss["train_preset"] = forms.DEFAULT_PRESET
    if not any(k.startswith(forms.KEY_PREFIX) and k != SYNCED for k in ss):
        apply_preset()
    _sync_sidebar(choices)
    st.selectbox("Preset", names, key="train_preset", on_change=apply_preset,
                 help="demo: embedded data, minutes on a CPU. paper-cifar10: the paper's setting, for a GPU, "
                      "with the paper's teachers (a checkpoint for each; auto is refused). "
                      "Choosing a preset resets the form.")

    with st.form("train_form", border=True):
        # the fields scroll inside the form, so Start and the live view stay in sight
        with st.container(height=FORM_HEIGHT, border=False):
            for section, fields in forms.SECTIONS.items():
                st.markdown(f"**{section}**")
                cols = st.columns(2)
                for i, spec in enumerate(fields):
                    with cols[i % 2]:
                        _widget(spec)
        st.caption(f"Device: **{md(choices.device)}** (sidebar). Dataset and teachers start from the sidebar; "
                   "change them here for this run only.")
        submitted = st.form_submit_button("Start training", key="train_start", type="primary",
                                          width="stretch")
    if not submitted:
        return None
    values: dict[str, Any] = {name: ss.get(spec.key) for name, spec in forms.FIELDS.items()}
    try:
        cfg = forms.build_config(ss["train_preset"], values, device=choices.device)
        data_error = check_data_path(cfg.data.dataset, cfg.data.data_path)
        if data_error:
            raise ConfigError(data_error)
        info = get_store().launch(cfg)
    except (ConfigError, DataError, CheckpointError, ValueError, OSError) as exc:
        st.error(md(exc), icon=":material/block:")
        return None
    st.success(f"Started run **{md(info.name)}** (its own process; it keeps going if you leave this page).")
    return info.name
