"""Where the files that ship beside the package are: the model zoo and the embedded dataset.

In a checkout they sit next to the package (``checkpoints/``, ``assets/``); ``pip install .``
copies them to ``<prefix>/share/ciard/`` (``pyproject.toml``, data-files). Each is looked up
explicitly in that order, so an installed ``ciard`` finds its zoo and default dataset from any
working directory.
"""
from __future__ import annotations

import sys
from pathlib import Path

#: the directory that holds the ``ciard`` package (the repository root in a checkout)
PACKAGE_PARENT = Path(__file__).resolve().parent.parent
#: where ``pip install .`` puts the shipped files
INSTALLED = Path(sys.prefix) / "share" / "ciard"


def shipped(name: str) -> Path:
    """``name`` (a folder or file shipped with the project): in the checkout, else installed."""
    for base in (PACKAGE_PARENT, INSTALLED):
        if (base / name).exists():
            return base / name
    return PACKAGE_PARENT / name


def is_checkout() -> bool:
    """Whether the package runs from a source checkout (its app.py beside it)."""
    return (PACKAGE_PARENT / "app.py").is_file()


def default_runs_dir() -> Path:
    """``runs/`` of the checkout; for an installed package, ``runs/`` in the working directory."""
    return (PACKAGE_PARENT if is_checkout() else Path.cwd()) / "runs"


ZOO_DIR = shipped("checkpoints")
MANIFEST = ZOO_DIR / "manifest.json"
ASSETS_DIR = shipped("assets")
APP = shipped("app.py")
