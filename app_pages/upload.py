"""Your own image: upload a picture, see it as the model does, predict, attack, explain."""
import streamlit as st

from ciard.studio.probe import class_names, page_context
from ciard.studio.upload_ui import render_upload

st.title("Your own image")
st.caption("Upload a photo (PNG, JPEG, WebP or BMP, up to 10 MB). It is resized and centre-cropped to the "
           "models' 32 x 32 input, kept in memory for this session only, and never written to disk.")
ch, _, models, refs = page_context(need_data=False)
render_upload(models, refs, class_names(ch, next(iter(models.values())).num_classes))
