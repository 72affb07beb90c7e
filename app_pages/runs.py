"""Runs: every run in a table; compare, promote, delete, download."""
import streamlit as st

from ciard.studio.runs_ui import flash, render_actions, render_compare, render_table
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
st.subheader("Manage")
render_actions(names, selected)
