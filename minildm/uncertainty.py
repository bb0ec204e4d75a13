"""Every headline number with its spread: bootstrap intervals, spreads over repeats, and ratios of the two.
Notebooks 03–06 · docs/DESIGN.md "Targets".

A figure printed to two decimals from one draw says more than it knows. Three kinds of spread cover the course:

* **over samples** (:func:`bootstrap`): resample the n generated images (or their features, or per-image scores)
  with replacement, recompute the statistic, and take the percentile interval of the B replicates (Efron &
  Tibshirani 1993, ch. 13). For an accuracy, an attribute rate or a localisation ratio;
* **over repeats** (:func:`over_repeats`): k values of something measured k times — a real-vs-real floor on k
  disjoint pairs of real splits, a model trained from k seeds, a speed ratio timed k times. Reported as the mean
  with the range of the k values (min–max: with k = 3–5 no distributional claim is made);
* **a ratio of two** (:func:`ratio`), e.g. an FD over its floor: replicates of the numerator over replicates of the
  denominator, drawn independently, and their percentile interval.

An :class:`Estimate` prints as ``9.35 [8.91, 9.82]``, its ``replicates`` kept so that ratios can be formed. Choices
(the best layer, the default guidance) are made on one split of the samples and reported on another: see
:func:`split_halves`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np


@dataclass
class Estimate:
    """A number, its interval and how the interval was made."""

    value: float                # the statistic on all the data (or the mean of the repeats)
    low: float                  # the interval's ends
    high: float
    method: str                 # "bootstrap 95%", "range of 3", "ratio 95%"
    n: int                      # samples (bootstrap) or repeats
    replicates: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)

    def __str__(self) -> str:
        return f"{self.value:.4g} [{self.low:.4g}, {self.high:.4g}]"

    def __format__(self, spec: str) -> str:
        """``f"{e:.1%}"`` → ``99.6% [99.3%, 99.9%]``: the number format applies to the value and both ends, an
        alignment and width to the whole (``f"{e:>24.1%}"`` pads the three together, for tables)."""
        align, width, number = re.fullmatch(r"(.?[<>=^])?(\d+)?(.*)", spec).groups()
        text = str(self) if not number else f"{self.value:{number}} [{self.low:{number}}, {self.high:{number}}]"
        return f"{text:{align or ''}{width or ''}}" if width else text

    def contains(self, x: float) -> bool:
        return self.low <= x <= self.high

    def to_dict(self) -> dict:
        """The number, its interval and n as plain values, for a JSON record (no replicates)."""
        return dict(value=self.value, low=self.low, high=self.high, n=self.n)

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def bootstrap(stat: Callable[..., float], *samples, n_boot: int = 1000, level: float = 0.95, seed: int = 0,
              recentre: bool = False, strata=None) -> Estimate:
    """The percentile bootstrap interval of ``stat(*samples)``: every array in ``samples`` (first axis = the n
    samples, the same n for all) is resampled with the *same* indices, so paired data (images and their labels)
    stay paired. ``stat`` returns a float. Reproducible for a ``seed``.

    ``recentre``: for a statistic that resampling itself biases — a Fréchet distance, whose resamples repeat images
    and so fit a narrower Gaussian (at n = 300 real digits the replicates sat 25–110% above the estimate) — the
    replicates are shifted so that their mean is the estimate: the interval then gives the spread, not the bias.

    ``strata`` (n labels): resample within each stratum, keeping its size (a stratified bootstrap), e.g. samples
    of a conditional model grouped by the class they were asked for.
    """
    arrays = [np.asarray(s) for s in samples]
    n = len(arrays[0])
    if n < 2 or any(len(a) != n for a in arrays):
        raise ValueError(f"bootstrap needs ≥ 2 samples and the same number in every array, got {[len(a) for a in arrays]}")
    if not 0 < level < 1:
        raise ValueError(f"level is the interval's coverage, e.g. 0.95 (got {level})")
    rng = np.random.default_rng(seed)
    if strata is None:
        idx = rng.integers(0, n, size=(n_boot, n))  # (B, n): one resample per row
    else:
        groups = [np.flatnonzero(np.asarray(strata) == s) for s in np.unique(strata)]
        idx = np.concatenate([g[rng.integers(0, len(g), size=(n_boot, len(g)))] for g in groups], axis=1)
    reps = np.array([stat(*(a[i] for a in arrays)) for i in idx], dtype=np.float64)
    value = float(stat(*arrays))
    if recentre:
        reps = reps - reps.mean() + value
    lo, hi = np.percentile(reps, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    method = f"bootstrap {level:.0%}" + (", recentred" if recentre else "")
    return Estimate(value, float(lo), float(hi), method, n, reps)


def bootstrap_mean(values, **kw) -> Estimate:
    """:func:`bootstrap` of a mean: accuracies (0/1 per sample), rates, per-image scores."""
    return bootstrap(lambda v: float(np.mean(v)), np.asarray(values, dtype=np.float64), **kw)


def over_repeats(values: Sequence[float], what: str = "repeats") -> Estimate:
    """k values measured k times (seeds, disjoint real splits, timings): their mean and their range (min, max)."""
    v = np.asarray(list(values), dtype=np.float64)
    if v.size < 2:
        raise ValueError(f"a spread needs at least 2 {what}, got {v.size}")
    return Estimate(float(v.mean()), float(v.min()), float(v.max()), f"range of {v.size} {what}", int(v.size), v)


def ratio(num: Estimate, den: Estimate, n_draws: int = 2000, level: float = 0.95, seed: int = 0) -> Estimate:
    """``num / den`` with an interval: replicates of each (bootstrap replicates or repeats) drawn independently,
    divided, and their percentile interval. E.g. an FD (bootstrap over samples) over the real floor (over splits)."""
    if num.replicates.size == 0 or den.replicates.size == 0:
        raise ValueError("ratio needs Estimates with replicates (from bootstrap or over_repeats)")
    rng = np.random.default_rng(seed)
    r = rng.choice(num.replicates, n_draws) / rng.choice(den.replicates, n_draws)
    lo, hi = np.percentile(r, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return Estimate(num.value / den.value, float(lo), float(hi), f"ratio {level:.0%}", min(num.n, den.n), r)


def split_halves(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint random halves of range(n): choose on the first (a layer, a guidance scale), report on the
    second, so the reported number is not the maximum of noisy ones."""
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[: n // 2]), np.sort(perm[n // 2:])
