"""Paired statistics: intervals, McNemar, masks in reports, the zoo's paired table."""
from __future__ import annotations

import math

import numpy as np
import pytest

from ciard.stats import accuracy_interval, decode_mask, encode_mask, mcnemar_p, paired_difference


def test_mask_round_trip_any_length():
    rng = np.random.default_rng(0)
    for n in (0, 1, 7, 8, 9, 1000, 10_000):
        m = rng.random(n) < 0.3
        assert np.array_equal(decode_mask(encode_mask(m), n), m)
    with pytest.raises(ValueError):
        decode_mask(encode_mask(np.ones(8, bool)), 9)


def test_wilson_interval_matches_the_textbook_value():
    low, high = accuracy_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-4) and high == pytest.approx(0.5962, abs=1e-4)
    low, high = accuracy_interval(0, 20)
    assert low == 0.0 and high == pytest.approx(0.1611, abs=1e-4)


def test_mcnemar_exact_p():
    assert mcnemar_p(8, 2) == pytest.approx(0.109375)     # 2 * P(X <= 2), X ~ Bin(10, 1/2)
    assert mcnemar_p(0, 0) == 1.0
    assert mcnemar_p(30, 5) < 1e-4


def test_identical_models_differ_by_nothing():
    a = np.arange(1000) % 3 == 0
    d = paired_difference(a, a.copy())
    assert d.diff == 0 and d.low == 0 and d.high == 0 and not d.significant
    assert "not measurable" in d.verdict("A", "B")


def test_a_clear_difference_is_significant_and_a_small_one_is_not():
    n = 1000
    a = np.arange(n) < 600
    b = np.arange(n) < 400            # A right on 200 more images, never worse
    d = paired_difference(a, b)
    assert d.diff == pytest.approx(0.2) and d.low > 0.17 and d.high < 0.23 and d.significant
    assert d.only_a == 200 and d.only_b == 0 and d.p_value < 1e-10
    assert "A is higher" in d.verdict("A", "B")
    small = np.arange(n) < 405        # 5 more right than b, none worse: McNemar p = 0.0625
    d = paired_difference(small, b)
    assert d.p_value == pytest.approx(0.0625) and not d.significant and d.low < 0 < d.high
    six = np.arange(n) < 406          # 6 to 0: p = 0.03125, and the interval excludes 0 too
    d = paired_difference(six, b)
    assert d.p_value < 0.05 and d.significant and d.low > 0


def test_interval_and_exact_test_agree_on_every_split():
    n = 200
    for only_a in range(0, 25):
        for only_b in range(0, 25):
            a = np.zeros(n, bool)
            b = np.zeros(n, bool)
            a[:only_a] = True
            b[only_a:only_a + only_b] = True
            d = paired_difference(a, b)
            assert d.significant == (d.p_value < 0.05), (only_a, only_b, d)


def test_interval_agrees_with_the_paired_normal_approximation_at_large_n():
    rng = np.random.default_rng(1)
    n = 10_000
    a = rng.random(n) < 0.6
    flip = rng.random(n) < 0.1        # B disagrees with A on about 10 % of images
    b = np.where(flip, ~a, a)
    d = paired_difference(a, b)
    n10, n01 = d.only_a, d.only_b
    sd = math.sqrt((n10 + n01) - (n10 - n01) ** 2 / n) / n
    assert (d.high - d.low) / 2 == pytest.approx(1.96 * sd, rel=0.08)
    # the paired interval is far narrower than two independent accuracy intervals would suggest
    la, ha = accuracy_interval(int(a.sum()), n)
    assert d.high - d.low < (ha - la) * 1.5


def test_paired_difference_refuses_unpaired_vectors():
    with pytest.raises(ValueError, match="length"):
        paired_difference(np.ones(5, bool), np.ones(6, bool))


def test_zoo_paired_table_compares_only_the_same_images():
    from ciard.zoo import format_paired_markdown, paired_comparisons
    n = 1000
    base_mask = np.arange(n) < 500

    def entry(name, mask, n_=n, seed=0):
        return {"name": name, "evaluation": {"n": n_, "seed": seed, "accuracy": {"clean": float(mask.mean())},
                                             "masks": {"clean": encode_mask(mask)}}}
    entries = [entry("ciard", base_mask), entry("better", np.arange(n) < 700),
               entry("other-images", np.arange(n) < 700, seed=5), entry("fewer", np.arange(500) < 300, n_=500)]
    rows = {r["name"]: r for r in paired_comparisons(entries, "ciard")}
    assert rows["better"]["clean"].diff == pytest.approx(0.2) and rows["better"]["clean"].significant
    assert "clean" not in rows["other-images"] and "clean" not in rows["fewer"]
    table = format_paired_markdown(entries, "ciard")
    assert "| better | +20.00 (" in table and "| fewer | – |" in table
    with pytest.raises(KeyError):
        paired_comparisons(entries, "nope")


def test_evaluate_reports_a_mask_that_matches_its_accuracy(default_data):
    import torch
    from ciard.data import fixed_subset, to_float
    from ciard.evaluate import evaluate
    from ciard.models import build_model
    torch.manual_seed(0)
    model = build_model("smallcnn").eval()
    sub = fixed_subset(default_data.test, 40, seed=0)
    res = evaluate(model, to_float(sub.x), sub.y, ["clean", "fgsm"], batch_size=16)
    for r in res.values():
        mask = decode_mask(r["mask"], r["n"])
        assert int(mask.sum()) == r["correct"] and len(mask) == 40
    # robust-correct implies clean-correct, image by image
    clean, fgsm = (decode_mask(res[k]["mask"], 40) for k in ("clean", "fgsm"))
    assert not np.any(fgsm & ~clean)
