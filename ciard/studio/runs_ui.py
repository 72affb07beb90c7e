"""The Runs page's pieces: the table of runs, the comparison, and the run actions."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import streamlit as st

from . import charts
from . import forms
from .metrics import (SCORE_COLUMNS, best_run, config_differences, curve, final_metrics_table, metric_names,
                      metrics_csv, runs_table)
from .store import get_store
from .sidebar import promote_in_session
from .text import md

FLASH = "runs_flash"
PENDING_DELETE = "runs_pending_delete"
ACTIVE = ("starting", "running")


def flash() -> None:
    """Show (once) the message an action left before it reran the page."""
    msg = st.session_state.pop(FLASH, None)
    if msg:
        kind, text = msg
        getattr(st, kind)(text)


def render_table() -> None:
    """All runs; refreshed every few seconds while any of them is active."""
    store = get_store()
    active = any(r.state in (*ACTIVE, "queued") for r in store.list())
    st.fragment(run_every=3.0 if active else None)(_table_body)()


def _table_body() -> None:
    ss = st.session_state
    infos = get_store().list()
    df = runs_table(infos)
    hyper = [c for c in df.columns[list(df.columns).index("group") + 1:]]
    # what a researcher reads first: name, state, scores, the settings that differ; then the rest
    df = df[["name", "state", *SCORE_COLUMNS, *hyper,
             *[c for c in df.columns if c not in ("name", "state", *SCORE_COLUMNS, *hyper)]]]
    sortable = [*SCORE_COLUMNS, "created", *hyper]
    if ss.get("runs_sort") not in sortable:
        ss["runs_sort"] = "created"
    if ss.get("runs_best_by") not in SCORE_COLUMNS:
        ss["runs_best_by"] = "best val PGD %"
    c1, c2, c3, c4 = st.columns([2, 1, 2, 2], vertical_alignment="bottom")
    sort = c1.selectbox("Sort by", sortable, key="runs_sort",
                        help="any score, the start time or a hyperparameter column (headers sort too)")
    ss.setdefault("runs_sort_desc", True)
    descending = c2.toggle("Descending", key="runs_sort_desc")
    best_by = c3.selectbox("Best by", SCORE_COLUMNS, key="runs_best_by",
                           help="the run marked ★ has the highest value of this score")
    df = df.sort_values(sort, ascending=not descending, na_position="last", kind="stable")
    best = best_run(df, best_by)
    df.insert(0, "best", ["★" if n == best else "" for n in df["name"]])
    c4.download_button("Download table (CSV)", data=lambda: runs_table(infos, hyper="all").to_csv(index=False),
                       file_name="ciard-runs.csv", mime="text/csv", key="runs_table_csv", width="stretch",
                       help="one row per run: state, scores and every hyperparameter")
    if best:
        st.caption(f"Best by {md(best_by)}: **{md(best)}** ({df.loc[df['name'] == best, best_by].iloc[0]:.2f})"
                   + (". Hyperparameter columns: the settings that differ across these runs." if hyper else ""))
    st.dataframe(
        df, hide_index=True, key="runs_table", width="stretch",
        column_config={
            "best": st.column_config.TextColumn("", width="small"),
            "progress": st.column_config.ProgressColumn("progress", format="%.0f%%", min_value=0, max_value=100),
            "created": st.column_config.DatetimeColumn("created (UTC)", format="YYYY-MM-DD HH:mm"),
        })


def render_compare(names: list[str]) -> list[str]:
    """Overlay curves, final metrics side by side, config differences; returns the selection."""
    store = get_store()
    ss = st.session_state
    if PENDING_DELETE in ss and ss[PENDING_DELETE] not in names:
        ss.pop(PENDING_DELETE)
    if "runs_select" in ss:
        ss["runs_select"] = [n for n in ss["runs_select"] if n in names]
    else:
        ss["runs_select"] = names[:2]
    selected = st.multiselect("Runs to compare", names, key="runs_select",
                              help="their curves are overlaid and their results and settings compared")
    if not selected:
        st.caption("Select runs to compare them.")
        return selected

    epoch_keys, step_keys = metric_names(store, selected)
    options = epoch_keys + [k for k in step_keys if k not in epoch_keys]
    if not options:
        st.caption("The selected runs have no metrics yet.")
    else:
        if ss.get("runs_metric") not in options:
            ss["runs_metric"] = "student_pgd" if "student_pgd" in options else options[0]
        c1, c2 = st.columns([3, 1])
        metric = c1.selectbox("Metric", options, key="runs_metric",
                              format_func=lambda k: f"{k}  (per epoch)" if k in epoch_keys else f"{k}  (per step)",
                              help="validation accuracies are per epoch; losses, temperatures, weights and lr per step")
        x = c2.radio("x axis", ["step", "epoch"], key="runs_x", horizontal=True)
        fig = charts.overlay_figure({n: curve(store, n, metric) for n in selected}, metric, x)
        if fig is None:
            st.caption(f"No '{md(metric)}' in the selected runs.")
        else:
            st.plotly_chart(fig, key="runs_overlay", width="stretch", config={"displaylogo": False})

    infos = [store.get(n) for n in selected]
    left, right = st.columns(2)
    with left:
        st.markdown("**Results** (validation: best epoch; test: PGD-20 at the end)")
        st.dataframe(final_metrics_table(infos), key="runs_final", width="stretch")
    with right:
        st.markdown("**Settings that differ** (highlighted: not as in the first run)")
        diff = config_differences(infos)
        if len(infos) < 2:
            st.caption("Select two or more runs to see how their settings differ.")
        elif diff.empty:
            st.caption("The selected runs have the same settings.")
        else:
            st.dataframe(_highlight(diff), key="runs_diff", width="stretch")
    st.download_button("Download metrics (CSV)", data=lambda: metrics_csv(store, selected),
                       file_name="ciard-metrics.csv", mime="text/csv", key="runs_download",
                       help="every step, epoch and final record of the selected runs, one row each")
    return selected


def _highlight(diff: pd.DataFrame):
    """Cells that differ from the first run's value get a colour."""
    first = diff.columns[0]

    def colour(row: pd.Series) -> list[str]:
        return ["" if (col == first or v == row[first]) else "background-color: #fff3cd; color: #664d03"
                for col, v in row.items()]
    return diff.style.apply(colour, axis=1)


def promote_student(name: str) -> Path | None:
    """Make a run's best student this browser session's active one; None (after an error shown) if not."""
    try:
        return promote_in_session(get_store(), name)
    except (ValueError, KeyError) as exc:
        st.error(md(exc))
        return None


def render_actions(names: list[str], selected: list[str]) -> None:
    """Promote, delete (with a confirmation) one run."""
    store = get_store()
    ss = st.session_state
    if ss.get("runs_action_run") not in names:
        ss["runs_action_run"] = selected[0] if selected else names[0]
    c1, c2, c3 = st.columns([3, 1, 1], vertical_alignment="bottom")
    name = c1.selectbox("Run", names, key="runs_action_run")
    if c2.button("Promote student", key="runs_promote", width="stretch",
                 help="make this run's best student the active one on every page, for this browser session"):
        path = promote_student(name)
        if path:
            ss[FLASH] = ("success", f"Promoted the student of **{md(name)}** for this session: the sidebar's "
                                    f"active student is now {md(path)}. Other visitors keep the default.")
            st.rerun()
    if c3.button("Delete run", key="runs_delete", width="stretch", help="remove the run's directory (asks first)"):
        ss[PENDING_DELETE] = name
    _render_reuse(name)
    _render_repeat(name)
    pending = ss.get(PENDING_DELETE)
    if pending:
        st.warning(f"Delete run **{md(pending)}** and all its files (checkpoints, metrics, logs)? "
                   f"This cannot be undone.")
        d1, d2, _ = st.columns([1, 1, 4])
        if d1.button("Yes, delete", key="runs_delete_confirm", type="primary"):
            ss.pop(PENDING_DELETE)
            try:
                store.delete(pending)
            except (ValueError, KeyError, OSError) as exc:
                st.error(md(exc))
            else:
                ss.get("followers", {}).pop(pending, None)
                ss[FLASH] = ("success", f"Deleted run **{md(pending)}**.")
                st.rerun()
        if d2.button("Cancel", key="runs_delete_cancel"):
            ss.pop(PENDING_DELETE)
            st.rerun()


def _render_reuse(name: str) -> None:
    """Clone a run into the Train form, export its config, copy the command that trains it again."""
    from .sidebar import choices
    from .train_ui import load_into_form
    info = get_store().get(name)
    c1, c2, _ = st.columns([1, 1, 3])
    if c1.button("Clone into the form", key="runs_clone", width="stretch", icon=":material/content_copy:",
                 help="open the Train page with this run's settings (change some, then Start)"):
        load_into_form(info.config, choices())
        st.switch_page("app_pages/train.py")
    c2.download_button("Export config JSON", data=json.dumps(info.config, indent=2, sort_keys=True),
                       file_name=f"{name}.config.json", mime="application/json", key="runs_export",
                       width="stretch", icon=":material/download:",
                       help="python -m ciard train --config FILE trains it again")
    st.caption("CLI command that trains this run again (copy button at the right):")
    st.code(forms.cli_command(info.config), language="bash")


def _render_repeat(name: str) -> None:
    """Queue N runs of this run's config with other seeds, as a group."""
    from ..config import Config
    from ..runqueue import repeat_with_seeds
    store = get_store()
    c1, c2, _ = st.columns([1, 1, 3], vertical_alignment="bottom")
    n = c1.number_input("Seeds", min_value=1, max_value=50, value=3, step=1, key="runs_repeat_n",
                        help="how many runs of this config, with seeds seed+1 ... seed+N")
    if c2.button(f"Repeat with {n} seeds", key="runs_repeat", width="stretch", icon=":material/repeat:",
                 help="queue them as a group; the queue starts them one at a time (see 'Runs at once')"):
        try:
            cfg = Config.from_dict(store.get(name).config)
            names = repeat_with_seeds(store, cfg, int(n), name)
        except (ValueError, KeyError, OSError) as exc:
            st.error(md(exc))
        else:
            st.session_state[FLASH] = ("success", f"Queued {len(names)} runs as group **{md(name)}-seeds**: "
                                                  f"{md(', '.join(names))}.")
            st.rerun()


def render_queue_setting(key: str) -> int:
    """The store's queue concurrency, shown and changeable (queued runs wait for a place)."""
    from ..runqueue import concurrency, queued, set_concurrency
    store = get_store()
    st.session_state[key] = concurrency(store)       # the file is the truth (another tab, the CLI)
    value = st.number_input("Runs at once (queue)", min_value=1, max_value=8, step=1, key=key,
                            on_change=lambda: set_concurrency(store, int(st.session_state[key])),
                            help="queued runs (sweep trials, seed repeats) start while fewer than this many "
                                 "runs are running; 1 keeps a 2-core machine responsive")
    waiting = queued(store)
    shown = ", ".join(waiting[:6]) + ("…" if len(waiting) > 6 else "")
    st.caption(f"{len(waiting)} run{'s' * (len(waiting) != 1)} queued" + (f": {md(shown)}" if waiting else "."))
    return int(value)


def render_groups() -> None:
    """Each seed group's mean score with a 95 % interval, and what can be said between groups."""
    from .groups import group_intervals, intervals_frame, verdicts
    table = runs_table(get_store().list(), hyper="none")
    if not (table["group"] != "").any():
        st.caption("No seed groups yet: pick a run under Manage and press **Repeat with N seeds**.")
        return
    ss = st.session_state
    if ss.get("runs_group_score") not in SCORE_COLUMNS:
        ss["runs_group_score"] = "best val PGD %"
    score = st.selectbox("Score", SCORE_COLUMNS, key="runs_group_score")
    intervals = group_intervals(table, score)
    if not intervals:
        st.caption(f"No run of a group has a {md(score)} yet.")
        return
    st.dataframe(intervals_frame(intervals, score), hide_index=True, key="runs_groups", width="stretch")
    for line in verdicts(intervals, score):
        (st.info if "not established" in line else st.success)(md(line))
