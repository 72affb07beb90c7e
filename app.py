"""CIARD Studio: ``streamlit run app.py``.

The entry script: page config, the shared sidebar, navigation over the pages in ``app_pages/``.
Pages only lay out widgets; the app's logic lives in ``ciard/studio/`` and training runs in
its own process through the run store (``ciard/runs.py``).
"""
import streamlit as st

st.set_page_config(page_title="CIARD Studio", page_icon=":material/shield:", layout="wide")

from ciard.studio import session  # noqa: E402  (after set_page_config)
from ciard.studio.layout import narrow_screen_support  # noqa: E402
from ciard.studio.sidebar import render_sidebar  # noqa: E402

session.keep()  # form values and selections survive a visit to another page
narrow_screen_support()  # 800 px windows: sidebar collapsed once, columns wrapped, labels whole

# The folder is app_pages/, not pages/: when a pages/ folder exists, Streamlit starts in its
# old directory-based multipage mode, and if the first visit after a server start opens a
# page URL (e.g. /train) it runs that file alone, without this script: no sidebar, no
# navigation, for every session until someone opens "/".
pages = [
    st.Page("app_pages/home.py", title="Home", icon=":material/home:", url_path="home", default=True),
    st.Page("app_pages/train.py", title="Train", icon=":material/model_training:", url_path="train"),
    st.Page("app_pages/runs.py", title="Runs", icon=":material/monitoring:", url_path="runs"),
    st.Page("app_pages/sweep.py", title="Sweep", icon=":material/tune:", url_path="sweep"),
    st.Page("app_pages/adversarial.py", title="Clean vs adversarial", icon=":material/compare:",
            url_path="adversarial"),
    st.Page("app_pages/explain.py", title="Saliency and push loss", icon=":material/visibility:", url_path="explain"),
    st.Page("app_pages/upload.py", title="Your own image", icon=":material/upload:", url_path="upload"),
    st.Page("app_pages/method.py", title="Method explained", icon=":material/school:", url_path="method"),
    st.Page("app_pages/playground.py", title="Playground (2-D)", icon=":material/scatter_plot:", url_path="playground"),
]
nav = st.navigation(pages)
if nav.url_path == "playground":
    # the Playground trains its own 2-D models: the dataset, checkpoints and device of the
    # other pages do not apply there (their choices are kept for the next page, see session.py)
    st.sidebar.caption("The Playground trains its own small 2-D models on the CPU; the dataset, "
                       "checkpoint and device choices of the other pages are kept for them.")
else:
    render_sidebar()
nav.run()
