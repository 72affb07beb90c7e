"""The Runs page's pieces: the table of runs, the comparison, and the run actions."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from . import charts
from .metrics import config_differences, curve, final_metrics_table, metric_names, metrics_csv, runs_table
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
    active = any(r.state in ACTIVE for r in store.list())
    st.fragment(run_every=3.0 if active else None)(_table_body)()


def _table_body() -> None:
    df = runs_table(get_store().list())
    st.dataframe(
        df, hide_index=True, key="runs_table", width="stretch",
        column_config={
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
        try:
            path = promote_in_session(store, name)
        except (ValueError, KeyError) as exc:
            st.error(md(exc))
        else:
            ss[FLASH] = ("success", f"Promoted the student of **{md(name)}** for this session: the sidebar's "
                                    f"active student is now {md(path)}. Other visitors keep the default.")
            st.rerun()
    if c3.button("Delete run", key="runs_delete", width="stretch", help="remove the run's directory (asks first)"):
        ss[PENDING_DELETE] = name
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
