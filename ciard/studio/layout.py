"""Narrow windows: the layout rules every page shares (``app.py`` applies them once per run).

Streamlit keeps its sidebar open down to 768 px, which leaves a 800 px window about 500 px of
content: labels break mid-word, selects show two letters. Below :data:`NARROW_PX` the sidebar
is collapsed once per browser tab on first load (the user can open it again, and it stays as
they leave it), columns wrap two to a row, and labels break only between words.
Our own static script and style; no user text is ever put in them.
"""
from __future__ import annotations

import streamlit as st

NARROW_PX = 1100

_CSS = f"""
<style>
/* labels and metrics break between words, never inside one ("Metho d") */
[data-testid="stWidgetLabel"] p, [data-testid="stMetricLabel"] p {{
  word-break: normal !important; overflow-wrap: normal !important; hyphens: manual; }}
@media (max-width: {NARROW_PX}px) {{
  /* side-by-side columns wrap two to a row instead of shrinking to a few letters each */
  [data-testid="stHorizontalBlock"] {{ flex-wrap: wrap !important; }}
  [data-testid="stHorizontalBlock"] > [data-testid="stColumn"] {{
    min-width: calc(50% - 1rem) !important; flex: 1 1 calc(50% - 1rem) !important; }}
  /* rows of pictures or charts: an odd one out keeps half the width instead of the whole row */
  .st-key-adv_images [data-testid="stHorizontalBlock"] > [data-testid="stColumn"],
  .st-key-adv_models [data-testid="stHorizontalBlock"] > [data-testid="stColumn"] {{ flex-grow: 0 !important; }}
  /* picture beside a wide chart: one above the other, the chart at full width */
  .st-key-xp_maps [data-testid="stHorizontalBlock"] > [data-testid="stColumn"] {{
    min-width: 100% !important; flex: 1 1 100% !important; }}
  /* thumbnail grids keep four to a row */
  .st-key-adv_thumbs [data-testid="stHorizontalBlock"] > [data-testid="stColumn"] {{
    min-width: calc(25% - 1rem) !important; flex: 0 1 calc(25% - 1rem) !important; }}
}}
</style>
"""

_JS = f"""
<script>
(function () {{
  const doc = window.parent ? window.parent.document : document;
  const win = window.parent || window;
  if (win.innerWidth > {NARROW_PX} || win.sessionStorage.getItem("ciard-sidebar-auto")) return;
  win.sessionStorage.setItem("ciard-sidebar-auto", "1");
  let tries = 0;
  const collapse = () => {{
    const side = doc.querySelector('[data-testid="stSidebar"]');
    const btn = doc.querySelector('[data-testid="stSidebarCollapseButton"] button');
    if (side && btn && side.getAttribute("data-collapsed") !== "true") {{ btn.click(); return; }}
    if (++tries < 50) setTimeout(collapse, 100);
  }};
  collapse();
}})();
</script>
"""


def narrow_screen_support() -> None:
    st.html(_CSS)
    st.html(_JS, unsafe_allow_javascript=True)
