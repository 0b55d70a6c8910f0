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


# ---- the verdict rule with a smallest effect of interest, and intervals valid at their level ----------
@pytest.mark.parametrize("low,high,est,expected", [
    (0.01, 0.2, 0.1, S.SUPPORTED), (0.01, 0.05, 0.03, S.NEGLIGIBLE), (0.005, 0.09, 0.03, S.INCONCLUSIVE),
    (-0.04, 0.04, 0.0, S.NEGLIGIBLE), (-0.3, -0.06, -0.2, S.CONTRADICTED), (-0.08, -0.01, -0.03, S.INCONCLUSIVE),
    (-0.1, 0.2, 0.05, S.INCONCLUSIVE),
])
def test_verdict_with_a_smallest_effect_of_interest(low, high, est, expected):
    """supported: above zero and the estimate reaches δ; negligible: inside ±δ; contradicted: below
    zero and the estimate reaches −δ; inconclusive otherwise (δ = 0.06 here)."""
    assert S.verdict(S.Interval(est, low, high, 0.95, 100, 0.05), +1, sesoi=0.06) == expected


def test_resamples_leave_fifty_draws_beyond_each_end():
    assert S.resamples_for(0.95) == 2000
    level = S.bonferroni(0.95, 21)
    r = S.resamples_for(level)
    assert r * (1 - level) / 2 >= S.TAIL_DRAWS - 1e-6 and r == 42000


def _studies(rng, studies, n, k, shift, resamples):
    """Paired documents of 1 + k plans: (studies, n, 1 + k), plan 0 the subject, plans 1.. its
    rivals at ``shift`` (k,) above it; a shared difficulty per document, as a benchmark has."""
    shared = rng.normal(0, 1, (studies, n, 1))
    x = shared + rng.normal(0, 1, (studies, n, 1 + k))
    x[:, :, 1:] += np.asarray(shift)[None, None, :]
    return x


def _decided(x, level, resamples, rng, sesoi=0.0):
    """The verdict of "every rival is above the subject" (a minimum over k components) per study."""
    out = []
    for study in x:
        n = study.shape[0]
        w = S.resample_weights(rng, (n,), resamples)
        means = np.vstack([study.mean(axis=0, keepdims=True), (w @ study) / n])
        comp = means[:, 1:] - means[:, :1]
        out.append(S.verdict(S.effect_interval(comp[0], comp[1:], level, n), +1, sesoi))
    return out


@pytest.mark.parametrize("k", [1, 3])
def test_at_no_true_effect_a_minimum_is_decided_in_at_most_five_percent_of_studies(k):
    """All rivals tied with the subject: the effect (their smallest margin) is 0. The percentile
    interval of the resampled minimum "contradicts" such a tie in ~25% of studies at a nominal 5%
    (and the basic interval of the minimum in ~10%); ``effect_interval`` decides ≤ 5% (+ Monte
    Carlo: 300 studies, sd 1.3%)."""
    rng = np.random.default_rng(20 + k)
    verdicts = _decided(_studies(rng, 300, 60, k, [0.0] * k, 0), 0.95, 1000, rng)
    decided = sum(v in (S.SUPPORTED, S.CONTRADICTED) for v in verdicts)
    assert decided <= 0.05 * 300 + 2.5 * math.sqrt(0.05 * 0.95 * 300), decided


def test_the_percentile_interval_of_a_minimum_would_not_be_valid():
    """The failure ``effect_interval`` avoids, shown on the same simulated ties: the percentile
    interval of the resampled minimum of three tied margins excludes zero in far more than 5%."""
    rng = np.random.default_rng(7)
    x = _studies(rng, 200, 60, 3, [0.0] * 3, 0)
    wrong = 0
    for study in x:
        w = S.resample_weights(rng, (60,), 1000)
        means = np.vstack([study.mean(axis=0, keepdims=True), (w @ study) / 60])
        m = (means[:, 1:] - means[:, :1]).min(axis=1)
        wrong += S.verdict(S.interval_of(m[0], m[1:], 0.95, 60)) != S.INCONCLUSIVE
    assert wrong > 0.12 * 200, wrong


def test_the_family_wise_rate_the_report_states_holds_by_simulation():
    """Three claims per study, each at the Bonferroni level over three, with the resample count that
    level needs (``resamples_for``) and no true effect in any (one a minimum over two tied rivals):
    the share of studies with *any* claim supported or contradicted stays at most 5% (+ Monte Carlo)."""
    rng = np.random.default_rng(31)
    level = S.bonferroni(0.95, 3)
    studies, wrong = 150, 0
    claims = [_studies(rng, studies, 40, k, [0.0] * k, 0) for k in (1, 1, 2)]
    resamples = S.resamples_for(level)
    for i in range(studies):
        any_decided = False
        for x in claims:
            (v,) = _decided(x[i:i + 1], level, resamples, rng)
            any_decided |= v in (S.SUPPORTED, S.CONTRADICTED)
        wrong += any_decided
    assert wrong <= 0.05 * studies + 2.5 * math.sqrt(0.05 * 0.95 * studies), wrong


def test_at_the_smallest_effect_of_interest_negligible_is_said_in_at_most_five_percent():
    """The equivalence verdict's error: a true effect exactly at δ is called negligible rarely
    (one end of the interval is below δ with probability 2.5%)."""
    rng = np.random.default_rng(41)
    sd = math.sqrt(2 / 200)  # the paired difference's standard error at 200 documents
    delta = 2.0 * sd
    verdicts = _decided(_studies(rng, 300, 200, 1, [delta], 0), 0.95, 1000, rng, sesoi=delta)
    assert sum(v == S.NEGLIGIBLE for v in verdicts) <= 0.05 * 300 + 2.5 * math.sqrt(0.05 * 0.95 * 300)
    # and a true effect of 0 with such an interval is called negligible often: the verdict is reachable
    verdicts = _decided(_studies(rng, 100, 200, 1, [0.0], 0), 0.95, 1000, rng, sesoi=4 * sd)
    assert sum(v == S.NEGLIGIBLE for v in verdicts) > 50


def test_dropped_draws_are_counted_and_a_bound_clips():
    draws = np.r_[np.linspace(-0.5, 0.9, 999), np.nan][:, None]
    iv = S.effect_interval([0.95], draws, 0.9, 30, bounds=(-1.0, 1.0))
    assert iv.dropped == 1 and iv.draws == 1000 and iv.high <= 1.0
    pct = S.effect_interval([1.0], np.linspace(0.2, 1.0, 1000)[:, None], 0.9, 30, method="percentile")
    assert pct.high == pytest.approx(0.96, abs=1e-3) and pct.low == pytest.approx(0.24, abs=1e-3)


def test_generators_are_seeded_by_what_they_resample():
    a = S.generator("task", 100).integers(0, 100, 5)
    assert (S.generator("task", 100).integers(0, 100, 5) == a).all()
    assert not (S.generator("other", 100).integers(0, 100, 5) == a).all()
