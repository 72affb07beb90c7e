"""The accuracy-vs-eps curve (``probe.eps_curve``): survivors only are attacked again, and the
curve is the union of the attacks (monotone, never above a single attack at that eps)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from ciard import explain
from ciard.data import fixed_subset
from ciard.studio import probe

ROOT = Path(__file__).resolve().parent.parent
GRID = (0, 2, 8, 16)


def _key(role: str, name: str) -> tuple:
    p = str(ROOT / "checkpoints" / name)
    st = os.stat(p)
    return (role, p, st.st_mtime, st.st_size)


@pytest.fixture(scope="module")
def images(default_data):
    sub = fixed_subset(default_data.test, 32, seed=0)
    return probe.as_float(sub.x), sub.y.numpy()


def test_the_curve_attacks_only_the_survivors_and_never_rises(images):
    x, y = images
    keys = (_key("clean_teacher", "demo-clean-resnet20.pt"), _key("robust_teacher", "demo-robust-resnet20.pt"))
    probe._curve_cache().clear()
    calls = []
    rows = probe.eps_curve(keys, x, y, "pgd", GRID, 3, 2 / 255, progress=lambda d, t, w: calls.append((d, t, w)))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for key, row in zip(keys, rows):
        m = probe._fast(key)
        clean = (explain.probabilities(m, xt).argmax(1) == yt).float().mean().item()
        assert row[0] == pytest.approx(clean)
        assert all(a >= b for a, b in zip(row, row[1:])), row                  # never rises with eps
    # image-attacks: per model, the clean-right images at the first eps, then the survivors
    expected = 0
    for row in rows:
        standing = [round(a * len(y)) for a in row]
        expected += sum(standing[:-1])
    assert calls[-1][0] == expected and calls[-1][1] == expected   # the bound meets the count at the end
    assert all(d <= t for d, t, _ in calls) and len(calls) == 2 * (len(GRID) - 1)
    assert probe.eps_curve(keys, x, y, "pgd", GRID, 3, 2 / 255) is rows                      # cached


def test_without_a_random_start_no_point_is_above_the_attack_alone(images):
    """FGSM has no random start, so a survivor is attacked exactly as in the full batch."""
    x, y = images
    keys = (_key("robust_teacher", "demo-robust-resnet20.pt"),)
    (row,) = probe.eps_curve(keys, x, y, "fgsm", GRID, 1, 0.0)
    m = probe._fast(keys[0])
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    right = explain.probabilities(m, xt).argmax(1) == yt
    for e, acc in zip(GRID[1:], row[1:]):
        xa = explain.run_attack(explain.make_attack("fgsm", e / 255), m, xt, yt)
        alone = (right & (explain.probabilities(m, xa).argmax(1) == yt)).float().mean().item()
        assert acc <= alone + 1e-9, (e, acc, alone)
    assert row[-1] < row[0]            # the attack does something at 16/255


def test_an_unsorted_grid_is_refused(images):
    x, y = images
    with pytest.raises(ValueError, match="increasing"):
        probe.eps_curve((_key("student", "demo-ciard-resnet20.pt"),), x, y, "pgd", (0, 8, 4), 3, 2 / 255)
