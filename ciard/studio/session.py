"""Session-state helpers: keep a page's widget values when the user visits another page.

Streamlit forgets a widget's value at the end of any run that does not draw the widget, so
the Train form would reset after a look at the Runs page. Re-assigning the keys at the top of
every run (``app.py`` calls :func:`keep`) turns them into plain session values that survive,
and the widget picks its value up again when its page is drawn next.
"""
from __future__ import annotations

import streamlit as st

#: key prefixes of widgets whose values outlive a page switch (buttons are never kept)
KEPT_PREFIXES = ("tf_", "sb_data_path", "sb_dataset", "sb_student", "sb_clean_teacher", "sb_robust_teacher",
                 "sb_device", "sb_own_role", "sb_own_path", "train_preset", "train_run", "live_x", "runs_select", "runs_metric", "runs_x",
                 "runs_sort", "runs_best_by", "runs_group_score", "runs_repeat_n", "sweep_study", "sweep_base",
                 "sweep_trials", "sweep_w", "sweep_selected", "sweep_figures",
                 "runs_action_run", "adv_idx", "adv_attack", "adv_eps", "adv_step", "adv_source", "adv_mode",
                 "adv_class", "adv_seed", "adv_curve_n", "xp_", "up_label")


def keep(prefixes: tuple[str, ...] = KEPT_PREFIXES) -> None:
    for key in list(st.session_state.keys()):
        if isinstance(key, str) and key.startswith(prefixes):
            st.session_state[key] = st.session_state[key]
