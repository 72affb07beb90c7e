"""The errors a bad input (or a failing run) raises everywhere: one line that names the value.

They live in this torch-free module so that the small checkers (:mod:`ciard.paths`,
:mod:`ciard.names`, :mod:`ciard.runlock`) and :mod:`ciard.config` import them without a cycle,
and so that the CLI can catch them without loading torch: a typo'd flag is refused in a fraction
of a second. ``ciard.config.ConfigError``, ``ciard.data.DataError``,
``ciard.checkpoints.CheckpointError`` and ``ciard.trainer.TrainingDiverged`` are these classes.
"""
from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value is invalid; the message is one line naming it."""


class DataError(ValueError):
    """A dataset could not be found, read or understood. The message says which and why."""


class CheckpointError(ValueError):
    """A checkpoint is missing, truncated or not one of ours; the message says which."""


class TrainingDiverged(RuntimeError):
    """A loss term became nan or inf: the run stops (state ``failed``) without saving that state."""
