"""Saliency and the push loss: where each model looks, and how the push loss moves representations."""
import streamlit as st

from ciard.studio.explain_ui import render_push, render_saliency
from ciard.studio.probe import page_context

st.title("Saliency and the push loss")
ch, data, models, refs = page_context()

st.subheader("Attribution maps")
render_saliency(data, models, refs, ch.student, ch.dataset)
st.divider()
st.subheader("How the push loss shifts representations")
render_push(data, models, refs, ch.student, ch.dataset)
