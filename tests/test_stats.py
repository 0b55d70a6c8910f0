"""Paired bootstrap intervals and the verdict rule (``glue_painters.stats``), against cases whose
answer is known in closed form."""

import math

import numpy as np
import pytest

from glue_painters import stats as S


def test_pairing_makes_a_shared_noise_difference_decidable():
    rng = np.random.default_rng(1)
    difficulty = rng.normal(0, 1, 400)            # most noise is which documents the task holds
    a = difficulty + 0.10 + rng.normal(0, 0.05, 400)
    b = difficulty + rng.normal(0, 0.05, 400)
    iv = S.paired_bootstrap(a, b)
    assert iv.low > 0.09 - 0.02 and iv.high < 0.11 + 0.02 and S.verdict(iv) == S.SUPPORTED
    # unpaired, the same difference hides in the documents' spread: the paired SE is far smaller
    unpaired_se = math.sqrt(a.var(ddof=1) / 400 + b.var(ddof=1) / 400)
    assert iv.se < unpaired_se / 5


def test_interval_matches_the_normal_approximation_for_a_mean():
    rng = np.random.default_rng(2)
    a, b = rng.binomial(1, 0.6, 2000).astype(float), rng.binomial(1, 0.5, 2000).astype(float)
    iv = S.paired_bootstrap(a, b, resamples=4000)
    se = np.std(a - b, ddof=1) / math.sqrt(2000)
    assert iv.se == pytest.approx(se, rel=0.1)
    assert iv.low == pytest.approx(iv.estimate - 1.96 * se, abs=0.01)
    assert iv.estimate == pytest.approx(a.mean() - b.mean())


@pytest.mark.parametrize("low,high,sign,expected", [
    (0.01, 0.2, +1, S.SUPPORTED), (-0.2, -0.01, +1, S.CONTRADICTED), (-0.1, 0.1, +1, S.INCONCLUSIVE),
    (-0.2, -0.01, -1, S.SUPPORTED), (0.0, 0.3, +1, S.INCONCLUSIVE), (math.nan, math.nan, +1, S.INCONCLUSIVE),
])
def test_verdict_needs_the_interval_to_exclude_zero(low, high, sign, expected):
    assert S.verdict(S.Interval(0.05, low, high, 0.95, 100, 0.05), sign) == expected


def test_docs_needed_scales_with_the_inverse_square_of_the_effect():
    iv = S.Interval(0.02, -0.02, 0.06, 0.95, 100, 0.02)
    n = S.docs_needed(iv)
    assert n == math.ceil(100 * ((1.959964 + 0.841621) * 0.02 / 0.02) ** 2)
    assert S.docs_needed(S.Interval(0.04, 0, 0, 0.95, 100, 0.02)) == pytest.approx(n / 4, abs=1)
    assert S.docs_needed(S.Interval(0.0, -0.1, 0.1, 0.95, 100, 0.05)) is None


def test_the_full_set_outlook_decidable_undecidable_or_open():
    iv = S.Interval(0.02, -0.02, 0.06, 0.95, 100, 0.02)  # needs 785 documents at this effect
    assert S.outlook(iv, 1000).status == S.DECIDABLE and "~785 of the full set's 1,000" in S.outlook(iv, 1000).text
    # 400 documents: half-width 1.96 * 0.02 * sqrt(100/400) = 0.0196 < 0.06, the interval's far end: open
    o = S.outlook(iv, 400)
    assert o.status == S.OPEN and "|effect| ≥ 0.02" in o.text
    # a tiny, precisely bounded effect: even at 120 documents the noise exceeds every effect allowed
    tight = S.Interval(0.001, -0.01, 0.012, 0.95, 100, 0.02)
    assert S.outlook(tight, 120).status == S.UNDECIDABLE
    assert S.outlook(iv, 100).status == S.UNDECIDABLE and "is what was run" in S.outlook(iv, 100).text
    assert S.outlook(iv, None) is None and S.outlook(S.Interval(0.0, 0, 0, 0.95, 100, math.nan), 500) is None


def test_bonferroni_widens_each_interval():
    assert S.bonferroni(0.95, 5) == pytest.approx(0.99)
    rng = np.random.default_rng(3)
    a, b = rng.normal(0.1, 1, 300), rng.normal(0, 1, 300)
    assert S.paired_bootstrap(a, b, level=0.99).low < S.paired_bootstrap(a, b, level=0.95).low


def test_normalized_median_difference_is_paired_within_tasks():
    rng = np.random.default_rng(4)
    groups, chance = {}, {}
    for t, c in [("arc", 0.25), ("lambada", 0.0), ("hs", 0.25)]:
        full = rng.binomial(1, 0.7, 300).astype(float)
        a = np.where(rng.random(300) < 0.9, full, 1 - full)   # a keeps 90% of the full model's answers
        b = np.where(rng.random(300) < 0.7, full, 1 - full)
        groups[t], chance[t] = np.stack([a, b, full]), c
    iv = S.grouped_bootstrap(groups, S.normalized_median_difference(groups, chance))
    rel = lambda x, f, c: (x.mean() - c) / (f.mean() - c)  # noqa: E731
    want = np.median([rel(g[0], g[2], chance[t]) for t, g in groups.items()]) - \
        np.median([rel(g[1], g[2], chance[t]) for t, g in groups.items()])
    assert iv.estimate == pytest.approx(want) and iv.n == 900 and S.verdict(iv) == S.SUPPORTED


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="equal-length"):
        S.paired_bootstrap([1, 2], [1])
    with pytest.raises(ValueError, match="expected"):
        S.grouped_bootstrap({"t": np.zeros(3)}, lambda m: m["t"][:, 0])
