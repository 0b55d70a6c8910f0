"""Bootstrap-weighted metrics (``glue_painters.weighted_metrics``) against the GLUE track's own
scoring (the ``evaluate`` module) with weights 1, and against explicit resamples otherwise."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr

from glue_painters import stats as S
from glue_painters import weighted_metrics as W


def _data(seed=0, n=120):
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n)
    pred = np.where(rng.random(n) < 0.7, label, 1 - label)
    x = np.round(rng.normal(size=n), 1)                       # ties on purpose
    y = np.round(x + rng.normal(scale=0.8, size=n), 1)
    return pred, label, x, y


@pytest.mark.parametrize("task", ["mrpc", "cola", "stsb"])
def test_weights_of_one_give_the_tracks_metrics(task):
    from glue_eval.metrics import score_split

    pred, label, x, y = _data()
    if task == "stsb":
        pred, label = x, y
    want = score_split(task, "validation", pred, label)
    ones = np.ones((1, len(pred)))
    for name, value in want.items():
        assert W.METRICS[name](ones, pred, label)[0] == pytest.approx(value, abs=1e-6), name


def test_weights_equal_the_metric_of_the_explicit_resample():
    from sklearn.metrics import f1_score, matthews_corrcoef

    pred, label, x, y = _data(1)
    rng = np.random.default_rng(5)
    w = S.resample_weights(rng, [len(pred)], 6)
    for r in range(6):
        idx = np.repeat(np.arange(len(pred)), w[r].astype(int))
        one = w[r:r + 1]
        assert W.accuracy(one, pred, label)[0] == pytest.approx(np.mean(pred[idx] == label[idx]))
        assert W.f1(one, pred, label)[0] == pytest.approx(f1_score(label[idx], pred[idx]))
        assert W.matthews(one, pred, label)[0] == pytest.approx(matthews_corrcoef(label[idx], pred[idx]))
        assert W.pearson(one, x, y)[0] == pytest.approx(pearsonr(x[idx], y[idx]).statistic)
        assert W.spearman(one, x, y)[0] == pytest.approx(spearmanr(x[idx], y[idx]).statistic)


def test_undefined_cases_follow_the_conventions():
    ones = np.ones((1, 4))
    assert W.f1(ones, [0, 0, 0, 0], [0, 0, 0, 0])[0] == 0.0
    assert W.matthews(ones, [1, 1, 1, 1], [0, 1, 0, 1])[0] == 0.0
    assert np.isnan(W.pearson(ones, [1.0, 1.0, 1.0, 1.0], [0.0, 1.0, 2.0, 3.0])[0])


def test_bootstrap_scores_row_zero_is_observed_and_strata_are_resampled_apart():
    seen = []

    def score(w, rng):
        seen.append(w)
        return np.stack([w[:, :3].sum(1), w[:, 3:].sum(1)], axis=1)

    out = S.bootstrap_scores({"t": S.Scorer((3, 5), score)}, resamples=50, budget=80)
    assert out["t"].shape == (51, 2) and list(out["t"][0]) == [3, 5]
    assert (out["t"][:, 0] == 3).all() and (out["t"][:, 1] == 5).all()  # each split keeps its size
    assert len(seen) > 2  # chunked under the budget


@pytest.mark.parametrize("metric", ["accuracy", "f1", "matthews_correlation", "pearson", "spearmanr"])
def test_many_series_at_once_equal_each_series_alone(metric):
    """``many`` scores every plan's predictions on the same resampled rows in one pass; each column
    equals ``METRICS[metric]`` of that series (constant predictions included: NaN / 0 alike)."""
    rng = np.random.default_rng(3)
    n = 80
    if metric in ("pearson", "spearmanr"):
        label = rng.integers(0, 6, n).astype(float)
        preds = [label + rng.normal(0, s, n) for s in (0.5, 2.0)] + [np.full(n, 2.5)]
    else:
        label = rng.integers(0, 2 if metric == "f1" else 3, n)
        preds = [np.where(rng.random(n) < q, label, rng.integers(0, 3, n)) for q in (0.9, 0.4)] + [np.zeros(n, int)]
    w = S.resample_weights(rng, (n,), 50)
    got = W.many(metric, w, preds, label)
    for j, p in enumerate(preds):
        np.testing.assert_allclose(got[:, j], W.METRICS[metric](w, p, label), rtol=1e-9, atol=1e-12, equal_nan=True)
