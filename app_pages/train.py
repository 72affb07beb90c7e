"""Train: the form that starts a run, and the live view of a run."""
import streamlit as st

from ciard.studio.live import render_live
from ciard.studio.sidebar import choices
from ciard.studio.store import get_store
from ciard.studio.train_ui import render_form

st.title("Train")
left, right = st.columns([5, 7], gap="large")

with left:
    started = render_form(choices())

with right:
    store = get_store()
    names = [r.name for r in store.list()]  # newest first
    if started:
        st.session_state["train_run"] = started
    if not names:
        st.info("No runs yet. Fill in the form and press **Start training**; the run's curves appear here.")
    else:
        if st.session_state.get("train_run") not in names:
            st.session_state["train_run"] = names[0]
        name = st.selectbox("Run", names, key="train_run", help="the run shown below; new runs appear first")
        render_live(name)
