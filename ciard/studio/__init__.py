"""Streamlit glue for CIARD Studio: the pieces every page shares.

Pages (``app_pages/*.py``) stay thin: they lay out widgets and call into this package, which in
turn only reads the run store and checkpoints and launches trainers through
:class:`ciard.runs.RunStore`. Nothing here trains or attacks a model. Streamlit is imported
only by the modules that draw (``sidebar``, ``session``, ``train_ui``, ``live``, ``runs_ui``);
``store``, ``forms``, ``charts``, ``metrics``, ``query`` and ``text`` work without a running
app and are tested directly.
"""
