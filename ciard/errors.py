"""The error a bad input raises everywhere: one line that names the value.

It lives in its own module so that the small checkers (:mod:`ciard.paths`, :mod:`ciard.names`,
:mod:`ciard.runlock`) and :mod:`ciard.config`, which uses them, import it without a cycle;
``ciard.config.ConfigError`` is the same class.
"""
from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value is invalid; the message is one line naming it."""
