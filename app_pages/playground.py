"""Playground: CIARD on 2-D points, four models trained in seconds, every decision boundary."""
import streamlit as st

from ciard.studio import playground_ui as ui

st.title("Playground: CIARD in 2-D")
st.caption("A clean teacher, a robust teacher and two students (the chosen setting and its twin from the same "
           "initial weights) trained on points in the plane, with the same method classes, losses and PGD as "
           "the CIFAR trainer. Pick the settings, press Run, scrub through training, click a point to see its attack.")
settings = ui.controls()
if settings is not None:
    ui.run(settings)
result = st.session_state.get("pg_result")
if result is None:
    st.info("Press **Run** to train the four models (a few seconds).", icon=":material/play_arrow:")
else:
    ui.render_result(result)
    st.divider()
    ui.render_repeat(result.settings)
ui.render_findings()
