"""Paired statistics: intervals, McNemar, masks in reports, the zoo's paired table."""
from __future__ import annotations

import math

import numpy as np
import pytest

from ciard.stats import (accuracy_interval, decode_mask, encode_mask, mcnemar_p, paired_difference,
                         tango_interval)


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


def test_mcnemar_p():
    # (8 - 2)^2 / 10 = 3.6 against chi-square(1): p = erfc(sqrt(3.6 / 2))
    assert mcnemar_p(8, 2) == pytest.approx(math.erfc(math.sqrt(1.8)))
    assert mcnemar_p(8, 2) == pytest.approx(0.0578, abs=1e-4)
    assert mcnemar_p(0, 0) == 1.0
    assert mcnemar_p(30, 5) < 1e-4


def _tango_by_brute_force(only_a, only_b, n, z=1.959963984540054):
    """Tango's interval from its definition, written independently: the nuisance probability
    maximised numerically under each difference d, the score test inverted by bracketing on a
    grid and solving."""
    from scipy.optimize import minimize_scalar
    rest = n - only_a - only_b

    def score(d):
        def nll(q):   # q: probability that B alone is right; A alone: q + d
            return -(only_a * math.log(q + d) if only_a else 0) - (only_b * math.log(q) if only_b else 0) \
                - (rest * math.log(1 - 2 * q - d) if rest else 0)
        q = minimize_scalar(nll, bounds=(max(0.0, -d) + 1e-13, (1 - d) / 2 - 1e-13), method="bounded",
                            options={"xatol": 1e-13}).x
        return (only_a - only_b - n * d) / math.sqrt(n * (2 * q + d * (1 - d)))

    from scipy.optimize import brentq
    grid = np.linspace(-0.999, 0.999, 400)
    s = [score(d) for d in grid]                 # decreasing: bracket each end, then solve
    i = max(k for k in range(len(grid)) if s[k] >= z)
    j = min(k for k in range(len(grid)) if s[k] <= -z)
    return (brentq(lambda d: score(d) - z, grid[i], grid[i + 1], xtol=1e-10),
            brentq(lambda d: score(d) + z, grid[j - 1], grid[j], xtol=1e-10))


@pytest.mark.parametrize("split", [(8, 2, 100), (366, 0, 1000), (5, 40, 200), (30, 10, 10_000), (0, 0, 50)])
def test_tango_interval_matches_its_definition(split):
    low, high = tango_interval(*split)
    ref_low, ref_high = _tango_by_brute_force(*split)
    assert low == pytest.approx(ref_low, abs=1e-6) and high == pytest.approx(ref_high, abs=1e-6)


def test_a_lopsided_split_keeps_a_wide_interval():
    """200-to-0 of 1,000: an interval that conditions on the 200 disagreements puts its upper
    bound at the point estimate (+20.0); the count of disagreements is random too."""
    low, high = tango_interval(200, 0, 1000)
    assert low < 0.2 - 0.02 and high > 0.2 + 0.02
    low, high = tango_interval(366, 0, 1000)     # the clean vs robust teacher under AutoAttack
    assert low == pytest.approx(0.337, abs=2e-3) and high == pytest.approx(0.396, abs=2e-3)


def test_interval_covers_the_true_difference_95_percent_of_the_time():
    """By simulation (seeded): the splits the zoo meets, from balanced to one-sided."""
    rng = np.random.default_rng(0)
    for n, p_a, p_b in [(1000, 0.12, 0.01), (1000, 0.20, 0.0), (1000, 0.06, 0.06), (10_000, 0.03, 0.21)]:
        reps, covered = 1500, 0
        for _ in range(reps):
            only_a, only_b, _rest = rng.multinomial(n, [p_a, p_b, 1 - p_a - p_b])
            low, high = tango_interval(int(only_a), int(only_b), n)
            covered += low <= p_a - p_b <= high
        assert 0.93 <= covered / reps <= 0.975, (n, p_a, p_b, covered / reps)


def test_identical_models_differ_by_nothing():
    a = np.arange(1000) % 3 == 0
    d = paired_difference(a, a.copy())
    # no disagreement on 1,000 images still leaves a little room either way (about 0.4 points)
    assert d.diff == 0 and -0.005 < d.low < 0 < d.high < 0.005 and not d.significant
    assert "not measurable" in d.verdict("A", "B")


def test_a_clear_difference_is_significant_and_a_small_one_is_not():
    n = 1000
    a = np.arange(n) < 600
    b = np.arange(n) < 400            # A right on 200 more images, never worse
    d = paired_difference(a, b)
    assert d.diff == pytest.approx(0.2) and d.low > 0.17 and d.high < 0.23 and d.significant
    assert d.only_a == 200 and d.only_b == 0 and d.p_value < 1e-10
    assert "A is higher" in d.verdict("A", "B")
    small = np.arange(n) < 403        # 3 more right than b, none worse: McNemar p = 0.083
    d = paired_difference(small, b)
    assert d.p_value == pytest.approx(math.erfc(math.sqrt(1.5))) and not d.significant and d.low < 0 < d.high
    four = np.arange(n) < 404         # 4 to 0: p = 0.0455, and the interval excludes 0 too
    d = paired_difference(four, b)
    assert d.p_value < 0.05 and d.significant and d.low > 0


def test_interval_and_mcnemar_agree_on_every_split():
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


def test_bad_levels_and_counts_are_refused_and_tiny_p_values_said():
    with pytest.raises(ValueError, match="level = 95 must be in"):
        tango_interval(3, 1, 10, level=95)
    with pytest.raises(ValueError, match="only_a"):
        tango_interval(8, 5, 10)
    n = 10_000
    d = paired_difference(np.arange(n) < 9000, np.arange(n) < 1000)   # 8,000 to 0: p underflows
    assert d.p_value == 0 and "McNemar p < 1e-300" in d.verdict("A", "B")
    d = paired_difference(np.arange(n) < 9000, np.arange(n) < 1000, level=0.9)
    assert "(90 % CI" in d.verdict("A", "B")


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
    # reports that record which images they used: compared only when those match
    entries[0]["evaluation"]["images"] = "aaaa"
    entries += [entry("same-print", np.arange(n) < 700), entry("other-print", np.arange(n) < 700)]
    entries[-2]["evaluation"]["images"], entries[-1]["evaluation"]["images"] = "aaaa", "bbbb"
    rows = {r["name"]: r for r in paired_comparisons(entries, "ciard")}
    assert rows["better"]["clean"].diff == pytest.approx(0.2) and rows["better"]["clean"].significant
    assert "clean" not in rows["other-images"] and "clean" not in rows["fewer"]
    assert "clean" in rows["same-print"] and "clean" not in rows["other-print"]
    # the same fingerprint decides even across seeds (a full-test-set report ignores --seed),
    # and a matching extra report is found behind a first one on other images
    entries[-2]["evaluation"]["seed"] = 7
    entries[-1]["evaluation"]["extra"] = [{"n": n, "seed": 0, "images": "aaaa",
                                           "masks": {"clean": encode_mask(np.arange(n) < 650)}}]
    rows = {r["name"]: r for r in paired_comparisons(entries, "ciard")}
    assert rows["same-print"]["clean"].diff == pytest.approx(0.2)
    assert rows["other-print"]["clean"].diff == pytest.approx(0.15)
    table = format_paired_markdown(entries, "ciard")
    assert "| better | +20.00 (" in table and "| fewer | – |" in table
    assert "n.s." not in table.split("| better |")[1].split("\n")[0]   # a real difference is not marked


def test_zoo_paired_table_marks_n_s_exactly_when_the_interval_holds_zero():
    from ciard.zoo import format_paired_markdown, paired_comparisons
    n = 1000
    base = np.arange(n) < 500

    def entry(name, mask):
        return {"name": name, "evaluation": {"n": n, "seed": 0, "accuracy": {"clean": float(mask.mean())},
                                             "masks": {"clean": encode_mask(mask)}}}
    # A right alone on k images, the baseline alone on 3: from a tie to a clear difference
    models = []
    for k in (0, 3, 6, 9, 12, 20, 40):
        m = base.copy()
        m[500:500 + k] = True
        m[:3] = False
        models.append(entry(f"plus{k}", m))
    entries = [entry("ciard", base), *models]
    rows = {r["name"]: r["clean"] for r in paired_comparisons(entries, "ciard")}
    assert {d.significant for d in rows.values()} == {True, False}   # both kinds are tried
    lines = {line.split(" | ")[0].strip("| "): line for line in format_paired_markdown(entries, "ciard").splitlines()}
    for name, d in rows.items():
        assert ("(n.s.)" in lines[name]) == (d.low <= 0 <= d.high), (name, d)
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
