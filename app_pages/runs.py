"""Runs: every run in a table; compare, promote, delete, download."""
import streamlit as st

from ciard.studio.runs_ui import flash, render_actions, render_compare, render_groups, render_queue_setting, render_table
from ciard.studio.store import get_store

st.title("Runs")
flash()
names = [r.name for r in get_store().list()]  # newest first
if not names:
    st.info("No runs yet: start one on the Train page.")
    st.page_link("app_pages/train.py", label="Train", icon=":material/model_training:")
    st.stop()

render_table()
st.subheader("Compare")
selected = render_compare(names)
st.subheader("Seed groups", help="runs of one config with other seeds: mean with a 95 % t interval")
render_groups()
st.subheader("Manage")
render_actions(names, selected)
with st.columns([1, 3])[0]:
    render_queue_setting("runs_queue_n")
