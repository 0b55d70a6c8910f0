"""The statistics of a relayering scan and of per-document paths, on plain arrays.

Two questions, both asked of per-document scores every plan of a sweep has on the same documents:

**Which cells of a scan differ from the full model** (``family_differences``). A scan of block
duplications is a family of comparisons, one per cell, all against the same full model on the same
documents. Each cell's effect is the mean over the documents of (cell − full), with a paired
basic-bootstrap interval (``stats.effect_interval``; documents resampled once and shared by every
cell, ``stats.bootstrap_scores``). The intervals are **Bonferroni-adjusted over the family** (each
at 1 − (1 − level)/m for m cells, ``stats.bonferroni``), and the family is every cell scanned,
not the cells that look interesting afterwards. Why Bonferroni and not Holm or a false discovery
rate: a heatmap marks cells by their *intervals*, and only a correction that widens every interval
gives intervals that hold for all cells at once (simultaneous coverage ≥ level), so any set of
marked cells is right at once with that probability. Holm's step-down procedure decides at least as
many cells but yields no interval per cell, and a false discovery rate says nothing about a single
cell. Bonferroni is conservative where cells are correlated (neighbouring blocks are), which costs
power, never validity. The resample count grows with the level (``stats.resamples_for``) so each
end of every interval has ``stats.TAIL_DRAWS`` draws beyond it.

**How many of the full model's errors some other plan gets right, and how many chance alone
would** (``oracle_fixes``, ``chance_fixes``). Given right/wrong per (plan, document), the oracle
counts the documents the full model gets wrong that at least one eligible plan gets right. With
many plans and noisy documents that count is large even if no plan knows anything the full model
does not: a document on the edge is got right by some plan by luck. The chance baseline permutes
each document's outcomes across *all* plans (the full model included: the null hypothesis is that
which plan got a document right carries no information, so the full model is one of the plans
like the others) and counts again; many permutations give its mean and a range. Under that null
the oracle count and the permuted count have the same distribution, which the tests check; a real
gain is the oracle count above the range.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from glue_painters import stats

BLOCK_FLOATS = 16_000_000  # resampled values held at once (128 MB): cells are scored in blocks of this


def family_differences(scores, base, *, name: str, level: float = 0.95, family: int | None = None,
                       resamples: int | None = None) -> list[stats.Interval]:
    """Each row of ``scores`` (cells, documents) minus ``base`` (documents,), the mean over the
    documents, with a paired basic-bootstrap interval Bonferroni-adjusted over ``family`` cells
    (default: the rows given; a caller that scored only some cells of a scan passes the scan's
    size). Every block of cells is scored on the same resampled documents (the generator is seeded
    by ``name`` and the document count, ``stats.generator``), so the intervals are paired across
    cells too and do not depend on the block size. ``resamples``: default ``stats.resamples_for``
    the adjusted level. Intervals carry that adjusted level in ``Interval.level``."""
    x = np.asarray(scores, dtype=float)
    b = np.asarray(base, dtype=float)
    if x.ndim != 2 or b.ndim != 1 or x.shape[1] != b.size or b.size == 0:
        raise ValueError(f"scores (cells, documents) and base (documents,) must agree, got {x.shape} and {b.shape}")
    m = x.shape[0] if family is None else family
    if m < x.shape[0]:
        raise ValueError(f"family of {m} is smaller than the {x.shape[0]} cells given")
    adjusted = stats.bonferroni(level, m)
    count = resamples or stats.resamples_for(adjusted)
    diff = x - b[None, :]
    n = b.size
    out: list[stats.Interval] = []
    block = max(1, BLOCK_FLOATS // (count + 1))
    for start in range(0, diff.shape[0], block):
        part = diff[start:start + block]

        def score(w, rng, part=part):
            return (w @ part.T) / w.sum(axis=1)[:, None]

        drawn = stats.bootstrap_scores({name: stats.Scorer((n,), score)}, resamples=count)[name]
        for c in range(part.shape[0]):
            out.append(stats.effect_interval(drawn[0, c], drawn[1:, c:c + 1], adjusted, n))
    return out


def oracle_fixes(right, full: int, eligible: Sequence[bool]) -> np.ndarray:
    """(documents,) bool: the documents the full model (row ``full`` of ``right``, (plans,
    documents) bool) gets wrong and at least one ``eligible`` plan gets right. The full model is
    never its own fix, whatever ``eligible`` says."""
    r = np.asarray(right, dtype=bool)
    el = _eligible(eligible, r.shape[0], full)
    return ~r[full] & r[el].any(axis=0)


def _eligible(eligible, plans: int, full: int) -> np.ndarray:
    el = np.asarray(eligible, dtype=bool).copy()
    if el.shape != (plans,):
        raise ValueError(f"eligible must have one flag per plan ({plans}), got shape {el.shape}")
    el[full] = False
    return el


def chance_fixes(right, full: int, eligible: Sequence[bool], permutations: int = stats.RESAMPLES, *,
                 rng: np.random.Generator, chunk: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """The oracle count under the null that plans are exchangeable: each document's outcomes
    permuted across all plans (the full model's row included, see the module docstring), then
    counted as ``oracle_fixes`` counts. Returns (fixed, errors), each (permutations,): the count
    and the permuted full row's errors in each permutation."""
    r = np.asarray(right, dtype=bool)
    el = _eligible(eligible, r.shape[0], full)
    fixed, errors = [], []
    cols = r.T  # (documents, plans): a document's outcomes, the axis that is permuted
    for start in range(0, permutations, chunk):
        arr = np.repeat(cols[None], min(chunk, permutations - start), axis=0)
        rng.permuted(arr, axis=2, out=arr)
        wrong = ~arr[:, :, full]
        fixed.append((wrong & arr[:, :, el].any(axis=2)).sum(axis=1))
        errors.append(wrong.sum(axis=1))
    return np.concatenate(fixed), np.concatenate(errors)


def summary_range(values, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): the mean and the central ``level`` range of a permutation count."""
    v = np.asarray(values, dtype=float)
    a = (1 - level) / 2
    low, high = np.quantile(v, [a, 1 - a])
    return float(v.mean()), float(low), float(high)
