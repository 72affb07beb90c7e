"""The live view of one run: state, progress, stop/resume, charts; refreshed by a fragment.

Only the fragment reruns every ``REFRESH_S`` seconds, and it reads only the bytes appended to
the run's metrics since its last look (a :class:`~ciard.studio.metrics.Follower` kept in
``st.session_state``). While the run is not active the fragment does not poll at all; when the
run ends, one full rerun switches polling off.
"""
from __future__ import annotations

import html

import streamlit as st

from ..config import TEACHERS_NEEDED
from ..runlog import collapse_note, tail_lines
from . import charts, forms
from .metrics import Follower, format_duration, needs_teacher_training, seconds_left, teacher_runs_in_progress
from .store import get_store
from .text import md

REFRESH_S = 1.5
ACTIVE = ("starting", "running")
#: state -> (badge colour, material icon)
STATE_BADGES = {"queued": ("gray", "schedule"), "starting": ("blue", "hourglass_top"), "running": ("green", "play_arrow"),
                "stopped": ("orange", "pause"), "finished": ("violet", "check"), "failed": ("red", "close")}


def follower(name: str) -> Follower:
    followers = st.session_state.setdefault("followers", {})
    if name not in followers:
        followers[name] = Follower(name)
    return followers[name]


def render_live(name: str) -> None:
    """Draw the live panel of ``name`` (polling only while it is starting or running)."""
    store = get_store()
    try:
        state = store.get(name).state
    except KeyError:
        st.info(f"Run '{md(name)}' no longer exists.")
        return
    active = state in ACTIVE
    # a queued run is polled too, so that its panel comes alive when the queue starts it
    st.fragment(run_every=REFRESH_S if active or state == "queued" else None)(_live_body)(name, active)


def _live_body(name: str, was_active: bool) -> None:
    store = get_store()
    try:
        info = store.get(name)
    except KeyError:
        st.info(f"Run '{md(name)}' no longer exists.")
        return
    if was_active and info.state not in ACTIVE:
        st.rerun()  # the run ended: redraw the page once, this time without polling
    if not was_active and info.state in ACTIVE:
        st.rerun()  # resumed elsewhere (or here): start polling

    f = follower(name)
    f.update(store)
    steps, epochs = f.frames()

    # -- header: state, counters, progress ------------------------------------------------
    stop_requested = (info.path / "STOP").exists() and info.state in ACTIVE
    label = "stopping…" if stop_requested else info.state
    colour, icon = STATE_BADGES.get(info.state, ("gray", "help"))
    model = info.config.get("model", {})
    roles = TEACHERS_NEEDED.get(info.method, ())
    teachers = "".join(f" · {role} teacher {md(model.get(f'{role}_teacher'))}"
                       for role in ("robust", "clean") if role in roles)
    st.markdown(f"**{md(name)}** &nbsp; :{colour}-badge[:material/{icon}: {label}] &nbsp; "
                f"{md(info.method)} · student {md(info.student)}{teachers}")
    st.markdown(tuned_line(info.config))
    c1, c2, c3, c4 = st.columns(4)
    # the state as text, not a metric: a metric's value is cut to its column ("runni…")
    c1.container(key="live_state").markdown(f"<div style='font-size:0.875rem'>State</div>"
                f"<div style='font-size:1.6rem;line-height:1.3;white-space:normal'>{html.escape(label)}</div>",
                unsafe_allow_html=True)
    last_step = int(steps["step"].iloc[-1]) if not steps.empty else info.step
    total = info.total_steps or 0
    c2.metric(f"Step (of {total:,})" if total else "Step", f"{last_step:,}")
    epochs_total = info.config.get("optim", {}).get("epochs", "?")
    c3.metric("Epoch", f"{len(epochs)} / {epochs_total}")
    left = seconds_left(steps, total) if info.state == "running" else None
    c4.metric("Time left", format_duration(left) if info.state == "running" else "—")
    fraction = min(1.0, last_step / total) if total else 0.0
    st.progress(fraction, text=f"step {last_step} / {total or '?'} · {100 * fraction:.0f}%"
                + (f" · about {format_duration(left)} left" if left is not None else ""))

    # -- controls ----------------------------------------------------------------------
    b1, _ = st.columns([1, 3])
    if info.state in ACTIVE:
        help_text = ("the trainer finishes its current step (its first, if it is still loading) "
                     "and writes a checkpoint")
        if b1.button("Stop", key="train_stop_btn", help=help_text, disabled=stop_requested):
            store.stop(name)
            st.toast(f"Stop requested for {md(name)}: it finishes its step and saves a checkpoint.")
    if info.state == "queued":
        if b1.button("Take off the queue", key="train_dequeue_btn",
                     help="the run never starts (it is kept, as stopped, with its settings)"):
            store.stop(name)
            st.toast(f"{md(name)} was taken off the queue.")
            st.rerun()
    if info.state == "stopped" and info.error:
        st.caption(f"Stopped: {md(info.error)}.")
    if info.state in ("stopped", "failed") and not (info.path / "last.pt").is_file():
        st.caption("No checkpoint was written before it ended, so there is nothing to resume: clone it "
                   "into the form on the Runs page to start it again.")
    elif info.state in ("stopped", "failed"):
        if b1.button("Resume", key="train_resume_btn", type="primary",
                     help="continue from the last checkpoint (same result as an uninterrupted run)"):
            try:
                store.resume(name)
            except ValueError as exc:
                st.error(md(exc))
            else:
                f.reset()
                st.rerun()

    # -- what the run is doing when it has no curves yet ---------------------------------------
    if info.state == "failed":
        st.error(f"Run '{md(name)}' failed: {md(info.error or 'the trainer stopped with an error')}")
        tail = store.log_tail(name, 30)
        if tail:
            st.code(tail, language=None)
    elif info.state in ACTIVE and steps.empty:
        teacher_runs = teacher_runs_in_progress(store) if needs_teacher_training(info) else []
        if teacher_runs:
            st.info("Preparing teachers… (no shipped teacher for this dataset: quick ones are trained once "
                    "and cached under runs/teachers/)")
            for t in teacher_runs:
                frac = t["step"] / t["total_steps"] if t["total_steps"] else 0.0
                st.progress(min(1.0, frac), text=f"teacher {t['name']}: step {t['step']} / {t['total_steps']}")
        else:
            st.info("Starting… loading data and models.")
        tail = tail_lines(info.path / "train.log", 8)
        if tail:
            st.code(tail, language=None)
    elif info.state == "finished" and f.final:
        _final_line(f.final)
    if not epochs.empty:
        note = collapse_note(epochs.iloc[-1].to_dict())
        if note:
            st.warning(f"Collapsed: {md(note)}.", icon=":material/warning:")

    # -- charts -------------------------------------------------------------------------
    if steps.empty and epochs.empty:
        return
    x = st.radio("x axis of the per-step charts", ["step", "epoch"], key="live_x", horizontal=True)
    rev = name
    figs = [
        ("live_acc", charts.accuracy_figure(epochs, revision=rev)),
        ("live_loss", charts.loss_figure(steps, x=x, revision=rev)),
        ("live_tau", charts.temperature_figure(steps, x=x, revision=rev)),
        ("live_w", charts.weight_figure(steps, x=x, revision=rev)),
        ("live_lr", charts.lr_figure(steps, x=x, revision=rev)),
    ]
    shown = [(k, fig) for k, fig in figs if fig is not None]
    if figs[0][1] is None:
        st.caption("Validation accuracy appears after the first epoch.")
    cols = st.columns(2)
    for i, (key, fig) in enumerate(shown):
        cols[i % 2].plotly_chart(fig, key=key, width="stretch", config={"displaylogo": False})
    missing = [t for k, t in (("live_tau", "temperatures"), ("live_w", "KD weights")) if k not in dict(shown)]
    if missing:
        st.caption(f"No {' or '.join(missing)} for method '{md(info.method)}'.")


def tuned_line(config: dict) -> str:
    """The hyperparameters this run changed from its preset, by the form's labels (markdown)."""
    flat = forms.flat_config(config)
    base = forms.closest_preset(flat)
    diff = forms.preset_differences(flat, base)
    if not diff:
        return f"Hyperparameters: preset **{md(base)}** unchanged"
    shown = " · ".join(f"{md(forms.label_of(k))} = **{md(forms.show_value(v))}**" for k, v in diff.items())
    return f"Changed from preset **{md(base)}**: {shown}"


def _final_line(final: dict) -> None:
    if "test_clean" in final:
        st.success(f"Finished. Test ({final.get('test_n')} images): clean {100 * final['test_clean']:.2f}%, "
                   f"PGD-20 {100 * final['test_pgd20']:.2f}%  ·  {final.get('test_attack', '')}")
    else:
        st.success("Finished (no final test: test size 0).")
