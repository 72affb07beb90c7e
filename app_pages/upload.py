"""Your own image: upload a picture, see it as the model does, predict, attack, explain."""
import streamlit as st

from ciard.studio.probe import load_models, page_models
from ciard.studio.sidebar import choices
from ciard.studio.upload_ui import render_upload

st.title("Your own image")
st.caption("Upload a photo (PNG, JPEG, WebP or BMP, up to 10 MB). It is resized and centre-cropped to the "
           "models' 32 x 32 input, kept in memory for this session only, and never written to disk.")
ch = choices()
models, refs = load_models(page_models(ch))
for role, ref in refs.items():
    if ref.error:
        (st.info if role == "student" else st.error)(f"**{ref.label.capitalize()}:** {ref.error}")
if not models:
    st.stop()
render_upload(models, refs)
