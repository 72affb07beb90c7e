"""User text inside Streamlit's Markdown: shown as typed, never rendered.

``st.error``, ``st.success``, ``st.info``, ``st.warning``, ``st.toast``, ``st.caption`` and
``st.markdown`` render Markdown, so a typed path or run name like ``![x](http://host/p.png)``
would become an image fetched from any host, and ``**``, ``$`` or ``:red[...]`` would restyle
the message. Every piece of text a person typed (paths, names, field values, uploaded file
names, class folder names) or an error message quoting it goes through :func:`md` first.
"""
from __future__ import annotations

import re

#: every ASCII punctuation mark CommonMark lets a backslash escape, and Streamlit's extensions
#: use ($ for math, : for icons and colours, ~ for strike-through)
_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~$:=\"'&^%@;,/?])")


def md(text: object) -> str:
    """``text`` escaped for Markdown, on one line."""
    one_line = " ".join(str(text).split("\n"))
    return _SPECIAL.sub(r"\\\1", one_line.replace("\r", " "))
