"""Clean vs adversarial: one test image, one attack, three models' predictions."""
import streamlit as st

from ciard.studio import adversarial_ui as ui
from ciard.studio.probe import page_context

st.title("Clean vs adversarial")
st.caption("Pick a test image and an attack; see what the perturbation looks like and how the clean "
           "teacher, the robust teacher and the student answer before and after it.")
ch, data, models, refs = page_context()

idx = ui.pick_image(data)
params = ui.attack_controls(refs, models)
ui.run_finder(data, params, models, refs)
ui.sync_query(idx, params)
ui.render_result(data, idx, params, models, refs)
st.divider()
ui.render_eps_curve(data, params, models, refs)
