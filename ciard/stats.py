"""Paired statistics for comparing two models on the same images.

Two models evaluated on the same n images give two per-image correctness vectors. Their
accuracy difference is a *paired* quantity: only the images on which they disagree carry
information about it. This module gives

* ``accuracy_interval`` - a Wilson score interval for one accuracy;
* ``mean_interval`` - the mean of independent repeats (seeds) with its Student-t interval;
* ``paired_difference`` - the difference of two accuracies (or of any two per-image rates),
  with the exact McNemar test and its interval: given the m images on which the two models
  disagree, the number where A is the one right is Binomial(m, pi); a Clopper-Pearson
  interval for pi, mapped through diff = (2 pi - 1) m / n, bounds the difference. The
  interval excludes 0 exactly when the exact test rejects at that level, so the interval and
  the verdict never disagree (a bootstrap can: with no image where B wins, every resample
  has B winning nowhere, and a 5-to-0 split looks certain). A difference whose interval
  contains 0 is "not measurable at this budget", never a win.

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
    low: float               # exact paired (McNemar) interval of a - b
    high: float
    level: float
    only_a: int              # images where A is right (or the event holds) and B not
    only_b: int
    p_value: float           # exact McNemar (two-sided binomial test on the discordant pairs)

    @property
    def significant(self) -> bool:
        """The interval excludes zero."""
        return self.low > 0 or self.high < 0

    def verdict(self, a_name: str = "A", b_name: str = "B") -> str:
        """One honest sentence about the difference."""
        pts = f"{100 * self.diff:+.1f} points (95 % CI {100 * self.low:+.1f} to {100 * self.high:+.1f})"
        if not self.significant:
            return f"{a_name} vs {b_name}: {pts}: not measurable at this budget (n = {self.n})"
        better = a_name if self.diff > 0 else b_name
        return f"{a_name} vs {b_name}: {pts}: {better} is higher (n = {self.n}, McNemar p = {self.p_value:.2g})"

    def as_dict(self) -> dict:
        return asdict(self) | {"significant": self.significant}


def paired_difference(a, b, level: float = 0.95) -> PairedDifference:
    """Difference of two per-image rates on the same images, with its exact paired interval.

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
    m = only_a + only_b
    if m == 0:
        low = high = 0.0
    else:
        from scipy.stats import binomtest
        ci = binomtest(only_a, m, 0.5).proportion_ci(confidence_level=level, method="exact")
        low, high = (2 * ci.low - 1) * m / n, (2 * ci.high - 1) * m / n
    return PairedDifference(n=n, a=float(a.mean()), b=float(b.mean()), diff=(only_a - only_b) / n,
                            low=float(low), high=float(high), level=level, only_a=only_a,
                            only_b=only_b, p_value=mcnemar_p(only_a, only_b))


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar p-value: a binomial test of only_a vs only_b at 1/2."""
    m = only_a + only_b
    if m == 0:
        return 1.0
    from scipy.stats import binomtest
    return float(binomtest(only_a, m, 0.5).pvalue)


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
