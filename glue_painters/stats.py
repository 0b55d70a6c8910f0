"""Paired uncertainty for comparisons between plans: bootstrap intervals, verdicts, sample sizes.

Why paired: every plan of a sweep is scored on the *same* documents (GLUE: the same evaluation
rows), so the question "is plan A better than plan B" is answered document by document. Resampling
documents and recomputing both plans' statistic on the same resample keeps the pairing, and the
interval is far narrower than two independent error bars would suggest (most of a benchmark's
noise is which documents it holds, and that noise is shared).

Why a bootstrap rather than a closed form: the statistics the report uses are not means of one
series - the paper's normalized median is a median over tasks of (score - chance) / (full -
chance), a ratio of two resampled means per task - and GLUE's MCC and F1 do not decompose over
rows. A bootstrap handles them all the same way. ``grouped_bootstrap`` resamples documents *within*
each task (tasks are fixed, documents are the sample), with one set of indices per task shared
by every series, which is what pairing means here.

The decision rule (``verdict``), with a smallest effect of interest ``sesoi`` (δ): a claimed
direction is **supported** when the interval lies entirely above zero and the estimate reaches δ,
**negligible** when the interval lies inside (−δ, +δ) (an equivalence verdict: whatever the true
effect, it is too small to matter), **contradicted** when the interval lies entirely below zero
and the estimate reaches −δ, and **inconclusive** otherwise. With δ = 0 this is the plain rule
"the interval excludes zero". With several claims decided at once, ``bonferroni`` widens each
interval so that the chance of any false verdict stays at most 1 - level; ``resamples_for`` gives
the resample count that leaves ``TAIL_DRAWS`` draws beyond each end of an interval at that level
(2,000 resamples leave 2.4 draws per tail at 99.76%, and the ends then move with the seed).
``docs_needed`` says how many documents would decide an inconclusive claim if the observed effect
were the true one.

Which interval (``effect_interval``): claims are often "A beats *every* rival" — an effect that is
a minimum over components (rivals, N values, thresholds). The percentile interval of a resampled
minimum is biased where components nearly tie (the resampled minimum falls below the observed one
in most resamples): at no true effect it "contradicts" a tie in ~25% of studies at a nominal 5%.
``effect_interval`` instead bounds the minimum from its components: the lower end is the
smallest of the components' basic-bootstrap lower ends (an intersection-union bound: the minimum
is above zero only if every component is, so no adjustment is needed), the upper end the smallest
of simultaneous upper ends (basic-bootstrap ends widened by the max-over-components studentized
deviation, calibrated on the same paired draws, so they hold for all components at once). With
one component it is the basic bootstrap interval, 2θ̂ − q(1−a), 2θ̂ − q(a). ``tests/test_stats.py``
checks by simulation that at no true effect (a tie included) at most the stated share of studies
is decided.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from statistics import NormalDist
from typing import Callable, Mapping, Sequence

import numpy as np

SUPPORTED, CONTRADICTED, INCONCLUSIVE = "supported", "contradicted", "inconclusive"
NEGLIGIBLE = "negligible"
RESAMPLES = 2000
TAIL_DRAWS = 50  # draws beyond each end of an interval (``resamples_for``)


@dataclass(frozen=True)
class Interval:
    """A point estimate with a percentile-bootstrap interval at ``level``, from ``n`` units."""

    estimate: float
    low: float
    high: float
    level: float
    n: int
    se: float  # bootstrap standard error (the spread of the resampled statistic)
    dropped: int = 0  # resamples whose statistic was not finite (e.g. a denominator at zero), left out
    draws: int = 0  # resamples made (dropped ones included)

    def text(self, digits: int = 3) -> str:
        return f"{self.estimate:+.{digits}f} [{self.low:+.{digits}f}, {self.high:+.{digits}f}]"


def _interval(estimate: float, draws: np.ndarray, level: float, n: int) -> Interval:
    made = draws.size
    draws = draws[np.isfinite(draws)]
    if draws.size == 0:
        return Interval(estimate, math.nan, math.nan, level, n, math.nan, made, made)
    tail = (1 - level) / 2
    low, high = np.quantile(draws, [tail, 1 - tail])
    return Interval(float(estimate), float(low), float(high), level, n, float(np.std(draws, ddof=1)),
                    made - draws.size, made)


def resamples_for(level: float, tail: int = TAIL_DRAWS) -> int:
    """Resamples that leave ``tail`` draws beyond each end of a ``level`` interval, and never fewer
    than ``RESAMPLES``: 2,000 at 95%, 42,000 at 99.76% (Bonferroni over 21 claims).

    Why: an interval end is a quantile of the draws; with a handful of draws beyond it, it moves
    by a sizeable part of its width from one generator seed to the next and can flip a verdict."""
    return max(RESAMPLES, math.ceil(2 * tail / (1 - level) - 1e-9))


def effect_interval(estimates, draws, level: float, n: int, bounds: tuple[float, float] | None = None,
                    method: str = "basic") -> Interval:
    """The interval of ``min(components)`` from the components' observed values ``estimates`` (k,)
    and their paired resamples ``draws`` (resamples, k) (one column: the basic bootstrap interval).

    Lower end: min over components of the basic lower end 2θ̂ − q(1 − a), a = (1 − level)/2 (the
    minimum is below it only if the component that *is* the minimum is below its own, probability
    a). Upper end: min over components of θ̂ + c·se, c the (1 − a) quantile over resamples of the
    largest studentized deviation max_j (θ̂_j − θ̂*_j)/se_j, which bounds every component at once
    (probability a that any lies above). Resamples with a non-finite component are left out and
    counted (``Interval.dropped``). ``bounds``: the statistic's range (a correlation's [-1, 1]);
    the ends are clipped to it (the true value lies inside, so coverage is unchanged).
    ``method="percentile"`` (one component only): the percentile interval instead, for a bounded
    statistic that sits at its bound (a rank correlation of 1: every resample is at or below it,
    and the basic interval, reflecting them, would claim [1, 1])."""
    est = np.atleast_1d(np.asarray(estimates, dtype=float))
    d = np.asarray(draws, dtype=float).reshape(-1, est.size)
    made = d.shape[0]
    d = d[np.isfinite(d).all(axis=1)]
    point = float(est.min()) if np.isfinite(est).all() else math.nan
    if d.shape[0] < 2 or not math.isfinite(point):
        return Interval(point, math.nan, math.nan, level, n, math.nan, made - d.shape[0], made)
    a = (1 - level) / 2
    if method == "percentile":
        if est.size != 1:
            raise ValueError("a percentile interval is for one component (a minimum's needs the basic bounds)")
        low, high = (float(x) for x in np.quantile(d[:, 0], [a, 1 - a]))
        return Interval(point, low, high, level, n, float(np.std(d[:, 0], ddof=1)), made - d.shape[0], made)
    lows = 2 * est - np.quantile(d, 1 - a, axis=0)
    se = d.std(axis=0, ddof=1)
    if est.size == 1:
        high = float(2 * est[0] - np.quantile(d[:, 0], a))
    else:
        safe = np.where(se > 0, se, 1.0)
        c = float(np.quantile(((est - d) / safe).max(axis=1), 1 - a))
        high = float(np.min(est + c * se))
    low = float(lows.min())
    if bounds is not None:
        low, high = min(max(low, bounds[0]), bounds[1]), min(max(high, bounds[0]), bounds[1])
    spread = float(np.std(d.min(axis=1), ddof=1))
    return Interval(point, low, high, level, n, spread, made - d.shape[0], made)


def interval_of(estimate: float, draws: np.ndarray, level: float, n: int) -> Interval:
    """The percentile interval of bootstrap ``draws`` around ``estimate`` (draws computed elsewhere,
    e.g. by ``bootstrap_scores``, so that one set of resamples serves several claims)."""
    return _interval(float(estimate), np.asarray(draws, dtype=float), level, n)


def resample_weights(rng: np.random.Generator, sizes: Sequence[int], count: int) -> np.ndarray:
    """``count`` bootstrap resamples as weights: how often each unit is drawn, shape (count, sum of
    sizes). Each stratum (an evaluation split) is resampled on its own, with its own size.

    Why weights rather than index arrays: a statistic of ``S`` plans on ``n`` documents is then one
    matrix product (count, n) @ (n, S) instead of ``S`` gathers of (count, n)."""
    parts = []
    for n in sizes:
        idx = rng.integers(0, n, size=(count, n)) + (np.arange(count) * n)[:, None]
        parts.append(np.bincount(idx.ravel(), minlength=count * n).reshape(count, n))
    return np.concatenate(parts, axis=1).astype(float)


@dataclass(frozen=True)
class Scorer:
    """A task's units (``sizes``: documents, or rows per evaluation split) and ``score(weights,
    rng)``: every series' task score under each resample's weights, (count, series). It is called
    once with weights of all ones and ``rng=None`` for the observed scores, then with resamples
    and the generator (for any further resampling of its own, e.g. over training seeds)."""

    sizes: tuple[int, ...]
    score: Callable[[np.ndarray, np.random.Generator], np.ndarray]


def generator(*what) -> np.random.Generator:
    """A generator seeded by *what it resamples* (a task's name and sizes, a cell's key and its
    seeds), never by the order of the calls: the same store gives the same draws, whatever else
    the report computes first or in which order a set is iterated."""
    return np.random.default_rng([zlib.crc32(repr(w).encode()) for w in what])


def bootstrap_scores(scorers: Mapping[str, Scorer], *, resamples: int = RESAMPLES, seed: int = 0,
                     budget: int = 2_000_000) -> dict[str, np.ndarray]:
    """Every task's scores, (1 + resamples, series): row 0 observed, then the resamples, documents
    drawn within each task and shared by every series (paired), from a generator seeded by the task's
    name and sizes (``generator``), so the draws depend on nothing else. Resamples are made in chunks of
    about ``budget`` weights, so a 40,000-row task never holds 2000 x 40,000 numbers at once."""
    out = {}
    for name in sorted(scorers):
        sc = scorers[name]
        rng = generator(seed, name, *sc.sizes)
        n = sum(sc.sizes)
        step = max(1, budget // max(1, n))
        rows = [sc.score(np.ones((1, n)), None)]
        for start in range(0, resamples, step):
            rows.append(sc.score(resample_weights(rng, sc.sizes, min(step, resamples - start)), rng))
        out[name] = np.concatenate(rows, axis=0)
    return out


def paired_bootstrap(a: Sequence[float], b: Sequence[float], statistic: Callable[[np.ndarray], np.ndarray] | None = None,
                     *, level: float = 0.95, resamples: int = RESAMPLES, seed: int = 0) -> Interval:
    """``statistic(a) - statistic(b)`` over the same units (documents, rows), resampled together.

    ``statistic`` maps an array of shape (resamples, n) to (resamples,); the default is the mean.
    For a metric that does not decompose (MCC, F1) pass one that recomputes it per resample."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"paired scores need two equal-length non-empty series, got {a.shape} and {b.shape}")
    stat = statistic or (lambda x: x.mean(axis=-1))
    idx = np.random.default_rng(seed).integers(0, a.size, size=(resamples, a.size))
    draws = stat(a[idx]) - stat(b[idx])
    return _interval(float(stat(a[None])[0] - stat(b[None])[0]), draws, level, a.size)


def grouped_bootstrap(groups: Mapping[str, np.ndarray], statistic: Callable[[Mapping[str, np.ndarray]], np.ndarray],
                      *, level: float = 0.95, resamples: int = RESAMPLES, seed: int = 0) -> Interval:
    """A statistic of per-group means, documents resampled within each group, series paired.

    ``groups[task]`` is an array (series, documents): e.g. rows = plan A, plan B, the full model,
    all scored on the task's documents. ``statistic`` gets ``{task: means}`` with ``means`` of
    shape (resamples, series) and returns (resamples,); it is also called once on the observed
    means (shape (1, series)) for the estimate."""
    rng = np.random.default_rng(seed)
    observed, drawn = {}, {}
    for name in sorted(groups):
        x = np.asarray(groups[name], dtype=float)
        if x.ndim != 2 or x.shape[1] == 0:
            raise ValueError(f"group {name}: expected (series, documents), got shape {x.shape}")
        observed[name] = x.mean(axis=1)[None]
        idx = rng.integers(0, x.shape[1], size=(resamples, x.shape[1]))
        drawn[name] = x[:, idx].mean(axis=2).T  # (resamples, series)
    n = sum(np.asarray(g).shape[1] for g in groups.values())
    return _interval(float(statistic(observed)[0]), np.asarray(statistic(drawn), dtype=float), level, n)


def normalized_median_difference(groups: Mapping[str, np.ndarray], chance: Mapping[str, float]) -> Callable:
    """The statistic for "plan A's normalized median minus plan B's" with series (A, B, full):
    per task (mean - chance) / (mean_full - chance), the median over tasks, A minus B."""
    def stat(means: Mapping[str, np.ndarray]) -> np.ndarray:
        rel = []
        for name, m in means.items():
            with np.errstate(divide="ignore", invalid="ignore"):
                rel.append((m[:, :2] - chance[name]) / (m[:, 2:3] - chance[name]))
        r = np.stack(rel, axis=2)  # (resamples, 2, tasks)
        med = np.median(r, axis=2)
        return med[:, 0] - med[:, 1]

    return stat


def bonferroni(level: float, comparisons: int) -> float:
    """The per-comparison level that keeps the family-wise error of ``comparisons`` at 1 - level."""
    return 1 - (1 - level) / max(1, comparisons)


def verdict(interval: Interval, claimed_sign: int = +1, sesoi: float = 0.0) -> str:
    """The rule of the module docstring, with smallest effect of interest ``sesoi`` (δ ≥ 0):

    * supported: the interval lies above zero and the estimate reaches δ (in the claimed direction);
    * negligible: the interval lies inside (−δ, +δ) (only when δ > 0);
    * contradicted: the interval lies below zero and the estimate reaches −δ;
    * inconclusive: otherwise, including when there is no interval.

    Why the estimate and not the interval's end must reach δ for "supported": the interval
    excluding zero controls the chance of a false direction at the stated level; δ only keeps an
    effect too small to matter from being called support (a 0.01 margin measured on many documents
    excludes zero but says nothing about the paper's claim). The one function every claim, and
    every cell of a future relayering heatmap, is decided by."""
    lo, hi = sorted((claimed_sign * interval.low, claimed_sign * interval.high))
    est = claimed_sign * interval.estimate
    if not (math.isfinite(lo) and math.isfinite(hi) and math.isfinite(est)):
        return INCONCLUSIVE
    if sesoi > 0 and -sesoi < lo and hi < sesoi:
        return NEGLIGIBLE
    if lo > 0 and (sesoi <= 0 or est >= sesoi - 1e-6):
        return SUPPORTED
    if hi < 0 and (sesoi <= 0 or est <= -sesoi + 1e-6):
        return CONTRADICTED
    return INCONCLUSIVE


def docs_needed(interval: Interval, power: float = 0.8, sesoi: float = 0.0) -> int | None:
    """Documents for the verdict the observed effect points to, with probability ``power`` if it is
    the true one: the standard error shrinks as 1/sqrt(n), so n' = n ((z_a + z_p) se / d)^2 with d
    the distance to cross: |effect| (excluding zero) when |effect| ≥ ``sesoi``, else
    ``sesoi`` − |effect| (the interval inside ±sesoi: negligible). None when there is no such
    distance (an estimate of zero with no sesoi) or no standard error."""
    d, se = abs(interval.estimate), interval.se
    if sesoi > 0 and d < sesoi:
        d = sesoi - d
    if not (d > 0 and math.isfinite(se) and se > 0):
        return None
    z = NormalDist().inv_cdf(1 - (1 - interval.level) / 2) + NormalDist().inv_cdf(power)
    return max(interval.n, math.ceil(interval.n * (z * se / d) ** 2))


DECIDABLE, UNDECIDABLE, OPEN = "decidable at the full set", "undecidable at the full set", "open"


@dataclass(frozen=True)
class Outlook:
    """What the full benchmarks could say about an inconclusive claim (``outlook``)."""

    status: str  # DECIDABLE / UNDECIDABLE / OPEN
    available: int  # documents (rows) the full benchmarks hold
    text: str


def outlook(interval: Interval, available: int | None, power: float = 0.8, sesoi: float = 0.0) -> Outlook | None:
    """Could the *full* benchmarks decide a claim this subset left inconclusive?

    Why: a subset that decides nothing is only informative if it says whether running everything
    would. The standard error shrinks as 1/sqrt(n) (documents added in the proportions the subset
    has), so at ``available`` documents the interval's half-width would be ``z se sqrt(n /
    available)``. Three answers:

    * **decidable at the full set**: at the observed effect, ``docs_needed`` ≤ ``available``;
    * **undecidable at the full set**: even the largest effect the interval allows (its far end)
      is inside the full set's half-width, so no outcome of the full run could exclude zero, and
      that half-width is at least ``sesoi``, so none could lie inside ±sesoi either — the model
      and benchmarks cannot decide the claim; also when the subset already *is* the full set;
    * **open**: the full set decides it only if the true effect is at least that half-width.

    None when the full set's size is unknown or the interval has no standard error."""
    if available is None or not (math.isfinite(interval.se) and interval.se > 0 and interval.n > 0):
        return None
    if available <= interval.n:
        return Outlook(UNDECIDABLE, available, f"the full set ({available:,}) is what was run")
    z = NormalDist().inv_cdf(1 - (1 - interval.level) / 2)
    half = z * interval.se * math.sqrt(interval.n / available)
    need = docs_needed(interval, power, sesoi)
    if need is not None and need <= available:
        return Outlook(DECIDABLE, available, f"~{need:,} of the full set's {available:,} at the observed effect")
    reach = max(abs(interval.low), abs(interval.high))
    if math.isfinite(reach) and reach < half and half >= sesoi:
        return Outlook(UNDECIDABLE, available, f"the full set ({available:,}) leaves ±{half:.2f}, more than "
                       f"any effect the interval allows (≤ {reach:.2f})")
    return Outlook(OPEN, available, f"the full set ({available:,}) decides it only if |effect| ≥ {half:.2f} "
                   f"(observed {abs(interval.estimate):.2f})")
