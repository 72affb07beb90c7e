"""Streamlit glue for CIARD Studio: the pieces every page shares.

Pages (``app_pages/*.py``) stay thin: they lay out widgets and call into this package, which in
turn reads the run store (:mod:`ciard.runs`, :mod:`ciard.runlog`) and checkpoints
(:mod:`ciard.specs`, :mod:`ciard.teachers`, :mod:`ciard.zoo`), launches trainers through
:class:`ciard.runs.RunStore`, and probes models with :mod:`ciard.explain`; it holds no training
loop and no attack of its own. The modules that draw import Streamlit (``sidebar``, ``session``,
``train_ui``, ``live``, ``runs_ui``, ``probe``, ``adversarial_ui``, ``explain_ui``,
``upload_ui``); ``store``, ``forms``, ``charts``, ``probe_charts``, ``metrics``, ``method_ui``,
``query`` and ``text`` do not, and are tested directly.
"""
