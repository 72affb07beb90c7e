"""Paired statistics for comparing two models on the same images.

Two models evaluated on the same n images give two per-image correctness vectors. Their
accuracy difference is a *paired* quantity: only the images on which they disagree carry
information about it. This module gives

* ``accuracy_interval`` - a Wilson score interval for one accuracy;
* ``mean_interval`` - the mean of independent repeats (seeds) with its Student-t interval;
* ``paired_difference`` - the difference of two accuracies (or of any two per-image rates)
  with Tango's score interval and McNemar's test. Of the n images, A alone is right on b and
  B alone on c; the difference is (b - c) / n. Its interval is the set of differences d that
  the score test of "A - B = d" does not reject, the nuisance cell estimated under each d by
  maximum likelihood (Tango 1998). At d = 0 that test is McNemar's (without continuity
  correction), so the interval excludes 0 exactly when McNemar's test rejects at that level:
  the interval and the verdict never disagree. Both allow for the number of disagreements
  being random too; an interval that conditions on it (Clopper-Pearson on the share of
  disagreements A wins, scaled by m / n) is too narrow when one model wins most of them
  (about 74 % coverage for a 12 %-to-1 % split of 1,000 images). Fagerland, Lydersen and
  Laake (2013, 2014) recommend this test and this interval for paired proportions; their
  coverage here is checked by simulation in ``tests/test_stats.py``. A difference whose
  interval contains 0 is "not measurable at this budget", never a win.

Per-image vectors travel in JSON reports as base64 of ``numpy.packbits`` (``encode_mask``).
"""
from __future__ import annotations

import base64
import math
from dataclasses import asdict, dataclass

import numpy as np

def encode_mask(mask) -> str:
    """A bool vector (tensor, array or list) as compact text: base64 of its packed bits."""
    bits = np.asarray(mask, dtype=bool).reshape(-1)
    return base64.b64encode(np.packbits(bits).tobytes()).decode("ascii")


def decode_mask(text: str, n: int) -> np.ndarray:
    """The inverse of ``encode_mask`` for a vector of ``n`` entries."""
    raw = np.frombuffer(base64.b64decode(text), dtype=np.uint8)
    if len(raw) * 8 < n:
        raise ValueError(f"mask holds {len(raw) * 8} bits, fewer than n = {n}")
    return np.unpackbits(raw)[:n].astype(bool)


def accuracy_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion k / n."""
    if n <= 0:
        return (float("nan"), float("nan"))
    z = _z(level)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True)
class PairedDifference:
    n: int
    a: float                 # rate of A
    b: float                 # rate of B
    diff: float              # a - b
    low: float               # Tango's paired score interval of a - b
    high: float
    level: float
    only_a: int              # images where A is right (or the event holds) and B not
    only_b: int
    p_value: float           # McNemar's test (score test of a - b = 0, no continuity correction)

    @property
    def significant(self) -> bool:
        """The interval excludes zero."""
        return self.low > 0 or self.high < 0

    def verdict(self, a_name: str = "A", b_name: str = "B") -> str:
        """One honest sentence about the difference."""
        pts = (f"{100 * self.diff:+.1f} points ({100 * self.level:g} % CI {100 * self.low:+.1f} to "
               f"{100 * self.high:+.1f})")
        if not self.significant:
            return f"{a_name} vs {b_name}: {pts}: not measurable at this budget (n = {self.n})"
        better = a_name if self.diff > 0 else b_name
        p = "< 1e-300" if self.p_value == 0 else f"= {self.p_value:.2g}"   # below a double's range
        return f"{a_name} vs {b_name}: {pts}: {better} is higher (n = {self.n}, McNemar p {p})"

    def as_dict(self) -> dict:
        return asdict(self) | {"significant": self.significant}


def paired_difference(a, b, level: float = 0.95) -> PairedDifference:
    """Difference of two per-image rates on the same images, with its paired score interval.

    ``a`` and ``b`` are bool vectors of equal length (e.g. robust-correct per test image).
    """
    a = np.asarray(a, dtype=bool).reshape(-1)
    b = np.asarray(b, dtype=bool).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"paired vectors differ in length: {a.size} vs {b.size}")
    n = a.size
    if n == 0:
        raise ValueError("no images to compare")
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    low, high = tango_interval(only_a, only_b, n, level)
    return PairedDifference(n=n, a=float(a.mean()), b=float(b.mean()), diff=(only_a - only_b) / n,
                            low=low, high=high, level=level, only_a=only_a,
                            only_b=only_b, p_value=mcnemar_p(only_a, only_b))


def _tango_score(only_a: int, only_b: int, n: int, d: float) -> float:
    """Tango's score statistic for "rate A - rate B = d" (positive when the data say more)."""
    num = only_a - only_b - n * d
    if num == 0:
        return 0.0
    # the maximum-likelihood probability of "B alone right" when the difference is d
    qa = 2 * n
    qb = -only_a - only_b + (2 * n - only_a + only_b) * d
    qc = -only_b * d * (1 - d)
    p_b = (math.sqrt(max(qb * qb - 4 * qa * qc, 0.0)) - qb) / (2 * qa)
    var = n * (2 * p_b + d * (1 - d))
    return num / math.sqrt(var) if var > 0 else math.copysign(math.inf, num)


def tango_interval(only_a: int, only_b: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Tango's (1998) score interval for rate A - rate B from paired data: the differences d
    with |score(d)| <= z. ``only_a``/``only_b``: images where only A / only B is right, of n."""
    from scipy.optimize import brentq
    if not 0.0 < level < 1.0:
        raise ValueError(f"level = {level:g} must be in (0, 1), e.g. 0.95")
    if n <= 0 or only_a < 0 or only_b < 0 or only_a + only_b > n:
        raise ValueError(f"need 0 <= only_a + only_b <= n with n > 0 (got {only_a}, {only_b}, {n})")
    z, d, eps = _z(level), (only_a - only_b) / n, 1e-12
    score = lambda x: _tango_score(only_a, only_b, n, x)   # noqa: E731 (decreasing in x)
    low = -1.0 if score(-1 + eps) < z else brentq(lambda x: score(x) - z, -1 + eps, d, xtol=1e-12)
    high = 1.0 if score(1 - eps) > -z else brentq(lambda x: score(x) + z, d, 1 - eps, xtol=1e-12)
    return float(low), float(high)


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Two-sided McNemar p-value without continuity correction: (b - c)^2 / (b + c) against
    chi-square with 1 degree of freedom (the score test that Tango's interval inverts at 0)."""
    m = only_a + only_b
    if m == 0:
        return 1.0
    from scipy.stats import chi2
    return float(chi2.sf((only_a - only_b) ** 2 / m, 1))


def _z(level: float) -> float:
    from scipy.stats import norm
    return float(norm.ppf(0.5 + level / 2))


# -- over repeated runs (seeds) ---------------------------------------------------------------
@dataclass(frozen=True)
class MeanInterval:
    """The mean of independent repeats (one config trained with n seeds) and its Student-t interval."""
    n: int
    mean: float
    low: float               # nan when n < 2: one value has no interval
    high: float
    level: float

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def overlaps(self, other: "MeanInterval") -> bool:
        return self.low <= other.high and other.low <= self.high

    def as_dict(self) -> dict:
        return asdict(self)


def mean_interval(values, level: float = 0.95) -> MeanInterval:
    """Mean of ``values`` (nan values dropped) with its two-sided Student-t interval (n >= 2; else nan)."""
    x = np.asarray([v for v in values if v == v], dtype=float).reshape(-1)
    n = x.size
    if n == 0:
        raise ValueError("no values to average")
    mean = float(x.mean())
    if n < 2:
        return MeanInterval(n, mean, float("nan"), float("nan"), level)
    from scipy.stats import t
    half = float(t.ppf(0.5 + level / 2, n - 1)) * float(x.std(ddof=1)) / math.sqrt(n)
    return MeanInterval(n, mean, mean - half, mean + half, level)


def paired_mean_difference(a, b, level: float = 0.95) -> MeanInterval:
    """Mean of a - b paired by run (seed i of ``a`` with seed i of ``b``), with its t interval.

    Runs that share a seed share data, initialisation and noise, so the per-seed differences
    vary less than either arm: the paired interval is the one that answers "does it differ"."""
    a = np.asarray(a, dtype=float).reshape(-1)
    b = np.asarray(b, dtype=float).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"paired runs differ in number: {a.size} vs {b.size}")
    return mean_interval(a - b, level)
