"""Sweep: hyperparameter sweeps with Optuna (``ciard sweep``), launched and followed here."""
import streamlit as st

from ciard.studio.sweep_ui import render_launcher, render_queue, render_study

st.title("Sweep")
st.caption("Each trial is a run in the store (the Runs page lists it too). Trials wait in the run queue and "
           "train **Runs at once** at a time: 1 keeps a 2-core machine responsive.")
with st.columns([1, 3])[0]:
    render_queue()
render_launcher()
st.subheader("Studies")
render_study()
