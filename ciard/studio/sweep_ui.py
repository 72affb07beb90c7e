"""The Sweep page's pieces: the launcher (space editor, trials, objective weight, base config,
trials at once), the live trial list, Optuna's figures and promoting the best trial."""
from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from ..config import ConfigError, preset
from . import forms
from .runs_ui import promote_student, render_queue_setting
from .sidebar import choices
from .store import get_store
from .sweeps import (best_trial_run, default_space_rows, figures, launch_sweep, load_study, studies,
                     sweep_log, sweep_running, trials_rows)
from .text import md

FROM_FORM = "Train form (as last started or cloned)"
FLASH = "sweep_flash"


def render_launcher() -> None:
    ss = st.session_state
    store = get_store()
    if "sweep_space" not in ss:
        ss["sweep_space"] = pd.DataFrame(default_space_rows())
    for key, default in (("sweep_study", "sweep-1"), ("sweep_trials", 10), ("sweep_w", 0.5)):
        ss.setdefault(key, default)
    with st.form("sweep_form"):
        c1, c2, c3, c4 = st.columns([2, 2, 1, 1])
        study = c1.text_input("Study name", key="sweep_study",
                              help="a new name starts a study; an existing one adds trials to it")
        base_name = c2.selectbox("Base configuration", [*forms.preset_names(), FROM_FORM], key="sweep_base",
                                 help="every trial starts from this and changes only the settings of the space; "
                                      "Train form: its values as last started or cloned into it from the Runs page "
                                      "(edits not yet started are not included)")
        trials = c3.number_input("Trials", min_value=1, max_value=500, step=1, key="sweep_trials")
        weight = c4.number_input("Objective w", min_value=0.0, max_value=1.0, step=0.1, key="sweep_w",
                                 help="objective = w · clean + (1 − w) · PGD on the validation split, per epoch")
        st.markdown("**Search space** (one row per setting: low/high, log scale, whole numbers; or choices "
                    "separated by commas). Prefilled with the default space.")
        space = st.data_editor(ss["sweep_space"], num_rows="dynamic", key="sweep_space_editor", width="stretch",
                               column_config={
                                   "setting": st.column_config.TextColumn("setting", help="a config field name"),
                                   "low": st.column_config.NumberColumn("low", format="%.4g"),
                                   "high": st.column_config.NumberColumn("high", format="%.4g"),
                                   "log": st.column_config.CheckboxColumn("log"),
                                   "int": st.column_config.CheckboxColumn("int"),
                                   "choices": st.column_config.TextColumn("choices"),
                               })
        submitted = st.form_submit_button("Start sweep", type="primary", key="sweep_start", width="stretch")
    if not submitted:
        return
    try:
        if base_name == FROM_FORM:
            form_preset = ss.get("train_preset", forms.DEFAULT_PRESET)
            values = {**forms.preset_values(form_preset),     # fields the form has not drawn yet
                      **{name: ss[spec.key] for name, spec in forms.FIELDS.items() if spec.key in ss}}
            base = forms.build_config(form_preset, values, device=choices().device)
        else:
            base = preset(base_name).override(device=choices().device)
        rows: list[dict[str, Any]] = space.to_dict("records")
        jobs = int(st.session_state.get("sweep_queue_n", 1))
        command = launch_sweep(store, study.strip(), base, rows, trials=int(trials), clean_weight=float(weight),
                               jobs=jobs)
    except (ConfigError, ValueError, OSError) as exc:
        st.error(md(forms.labelled(str(exc))), icon=":material/block:")
        return
    ss["sweep_selected"] = study.strip()
    ss[FLASH] = f"Started sweep **{md(study.strip())}**: `{' '.join(command[:8])} …`"
    st.rerun()


def render_study() -> None:
    """Pick a study; its trials (live while the sweep runs), figures and the best trial."""
    ss = st.session_state
    msg = ss.pop(FLASH, None)
    if msg:
        st.success(msg)
    store = get_store()
    names = studies(store)
    if not names:
        st.info("No sweeps yet: set the space above and press **Start sweep**.")
        return
    if ss.get("sweep_selected") not in names:
        ss["sweep_selected"] = names[0]
    name = st.selectbox("Study", names, key="sweep_selected")
    running = sweep_running(store, name)
    st.fragment(run_every=3.0 if running else None)(_study_body)(name, running)


def _study_body(name: str, was_running: bool) -> None:
    store = get_store()
    running = sweep_running(store, name)
    if was_running and not running:
        st.rerun()
    study = load_study(store, name)
    if study is None:
        if running:
            st.caption(f"Sweep **{md(name)}** is starting…")
        else:
            st.error(f"Sweep **{md(name)}** ended before it created its study.")
            st.code(sweep_log(store, name, 12) or "(no output)", language=None)
        return
    rows = trials_rows(study, store)
    done = sum(r["state"] == "complete" for r in rows)
    st.markdown(f"**{md(name)}** · {'running' if running else 'not running'} · {len(rows)} trial"
                f"{'s' * (len(rows) != 1)}, {done} complete")
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True, key="sweep_trials_table", width="stretch",
                     column_config={"objective": st.column_config.NumberColumn("objective", format="%.4f")})
    else:
        st.caption("The first trial is being set up…")
    log = sweep_log(store, name, 12)
    if log and (running or not done):
        with st.expander("Sweep log", expanded=not running and not done):
            st.code(log, language=None)
    best = best_trial_run(study)
    if best:
        c1, c2 = st.columns([3, 1], vertical_alignment="center")
        c1.markdown(f"Best trial: run **{md(best)}**, objective {study.best_value:.4f}")
        if c2.button("Promote best trial", key="sweep_promote", type="primary", width="stretch",
                     help="make the best trial's student the active one on every page"):
            path = promote_student(best)
            if path:
                st.session_state[FLASH] = f"Promoted the best trial's student (**{md(best)}**) for this session: {md(path)}."
                st.rerun(scope="app")
    if done and st.toggle("Show Optuna's figures", key="sweep_figures",
                          help="optimisation history, parallel coordinates, parameter importances, slices"):
        figs = figures(study)
        tabs = st.tabs(list(figs))
        for tab, (title, fig) in zip(tabs, figs.items()):
            with tab:
                if isinstance(fig, str):
                    st.caption(md(fig))
                else:
                    st.plotly_chart(fig, key=f"sweep_fig_{title}", width="stretch", config={"displaylogo": False})


def render_queue() -> None:
    render_queue_setting("sweep_queue_n")
