"""The teaching-example finder of the Clean-vs-adversarial page: which test image to show.

* ``teaching``: every model is right on the clean image, the clean teacher is wrong on the
  adversarial one, and the robust teacher and the student are still right — the story of the
  method in one picture;
* ``hardest``: the image whose attacked version leaves the models the least probability on the
  true class (every model fooled, if any image does that);
* ``random``: any image.

:func:`choose` works on predicted probabilities only (no Streamlit, unit-testable); the page
feeds it batches of test images attacked with its own settings, through the cached
:func:`ciard.studio.probe.attack_batch`, so a second click costs nothing.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

KINDS = {"teaching": "Teaching example", "hardest": "Hardest", "random": "Random"}
#: what a teaching example asks of each model: right after the attack, or wrong
HOLDS = ("robust_teacher", "student")
FLIPS = "clean_teacher"


def teaching_mask(y: np.ndarray, clean: Mapping[str, np.ndarray], adv: Mapping[str, np.ndarray]) -> np.ndarray:
    """Images (bool per row) that tell the story; roles missing from the dicts are not asked."""
    ok = np.ones(len(y), bool)
    for role, p in clean.items():
        ok &= p.argmax(1) == y
    if FLIPS in adv:
        ok &= adv[FLIPS].argmax(1) != y
    for role in HOLDS:
        if role in adv:
            ok &= adv[role].argmax(1) == y
    return ok


def hardness(y: np.ndarray, adv: Mapping[str, np.ndarray]) -> np.ndarray:
    """Per image: the models' mean probability on the true class after the attack (lower: harder)."""
    rows = np.arange(len(y))
    return np.mean([p[rows, y] for p in adv.values()], axis=0)


def candidates(kind: str, indices: np.ndarray, y: np.ndarray, clean: Mapping[str, np.ndarray],
               adv: Mapping[str, np.ndarray]) -> np.ndarray:
    """The test indices of this batch that qualify as ``kind``, best first (teaching: in order)."""
    if kind == "teaching":
        return indices[teaching_mask(y, clean, adv)]
    if kind == "hardest":
        return indices[np.argsort(hardness(y, adv), kind="stable")]
    raise ValueError(f"unknown kind '{kind}' (known: {', '.join(KINDS)})")


def choose(kind: str, indices: np.ndarray, y: np.ndarray, clean: Mapping[str, np.ndarray],
           adv: Mapping[str, np.ndarray], skip: int = 0, rng: np.random.Generator | None = None) -> int | None:
    """The test index of the ``skip``-th image of ``kind`` in this batch (None: none qualifies).

    ``skip`` lets repeated clicks step through the qualifying images instead of repeating one.
    """
    if kind == "random":
        rng = rng or np.random.default_rng()
        return int(rng.choice(indices))
    found = candidates(kind, indices, y, clean, adv)
    return int(found[skip % len(found)]) if len(found) else None
