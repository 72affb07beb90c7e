"""Saliency and the push loss: where each model looks, and how the push loss moves representations."""
import streamlit as st

from ciard.studio.explain_ui import render_push, render_saliency
from ciard.studio.probe import get_test_split, load_models, page_models
from ciard.studio.sidebar import choices

st.title("Saliency and the push loss")
ch = choices()
data, err = get_test_split(ch)
if data is None:
    st.error(f"Cannot load the test images: {err}", icon=":material/error:")
    st.stop()
models, refs = load_models(page_models(ch))
for role, ref in refs.items():
    if ref.error:
        (st.info if role == "student" else st.error)(f"**{ref.label.capitalize()}:** {ref.error}")
if not models:
    st.stop()

st.subheader("Attribution maps")
render_saliency(data, models, refs, ch.student, ch.dataset)
st.divider()
st.subheader("How the push loss shifts representations")
render_push(data, models, refs, ch.student, ch.dataset)
