"""Classification and correlation metrics under bootstrap weights, for many resamples at once.

Why: a paired bootstrap over GLUE's evaluation rows recomputes each task's metric (accuracy, F1,
Matthews correlation, Pearson, Spearman) on thousands of resamples of the rows. A resample is a
weight per row (how often it was drawn, ``stats.resample_weights``), and every metric here is a
function of weighted sums, so all resamples are computed in a few matrix products instead of a
Python loop. With all weights 1 each equals the usual metric (sklearn / scipy conventions, as the
GLUE track's ``glue_metric`` computes them: F1 and MCC are 0 where undefined; a correlation is NaN
when one side is constant); ``tests/test_weighted_metrics.py`` checks them against those.

Shapes: ``w`` is (resamples, rows); predictions and labels are (rows,); each function returns
(resamples,).
"""

from __future__ import annotations

import numpy as np


def _wsum(w: np.ndarray, x) -> np.ndarray:
    return w @ np.asarray(x, dtype=float)


def accuracy(w, pred, label) -> np.ndarray:
    return _wsum(w, np.asarray(pred) == np.asarray(label)) / w.sum(axis=1)


def f1(w, pred, label) -> np.ndarray:
    """F1 of the positive class (label 1)."""
    p, y = np.asarray(pred) == 1, np.asarray(label) == 1
    tp, fp, fn = _wsum(w, p & y), _wsum(w, p & ~y), _wsum(w, ~p & y)
    den = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, 2 * tp / np.where(den > 0, den, 1), 0.0)


def matthews(w, pred, label) -> np.ndarray:
    """Matthews correlation, the multiclass form (sklearn's ``matthews_corrcoef``)."""
    pred, label = np.asarray(pred), np.asarray(label)
    classes = np.union1d(pred, label)
    s = w.sum(axis=1)
    c = _wsum(w, pred == label)
    t = np.stack([_wsum(w, label == k) for k in classes], axis=1)
    p = np.stack([_wsum(w, pred == k) for k in classes], axis=1)
    cov_pt = c * s - (t * p).sum(axis=1)
    den = (s ** 2 - (p * p).sum(axis=1)) * (s ** 2 - (t * t).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, cov_pt / np.sqrt(np.where(den > 0, den, 1)), 0.0)


def pearson(w, x, y) -> np.ndarray:
    """Weighted Pearson correlation; ``x``/``y`` are (rows,) or per resample (resamples, rows)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    s = w.sum(axis=1)

    def m(a):
        return (w * a).sum(axis=1) / s

    mx, my = m(x), m(y)
    dx = x - mx[:, None]
    dy = y - my[:, None]
    cov, vx, vy = m(dx * dy), m(dx * dx), m(dy * dy)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = cov / np.sqrt(vx * vy)
    scale = np.maximum(np.abs(mx), 1.0) ** 2 * 1e-12  # a constant side: rounding, not spread
    return np.where((vx > scale) & (vy > np.maximum(np.abs(my), 1.0) ** 2 * 1e-12), r, np.nan)


def weighted_ranks(w, x) -> np.ndarray:
    """Each row's rank within each resample, ties (and a row drawn several times) averaged, as
    ``scipy.stats.rankdata``'s "average" method would rank the resampled values: (resamples, rows)."""
    x = np.asarray(x, dtype=float)
    order = np.argsort(x, kind="stable")
    xs = x[order]
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    group = np.cumsum(np.r_[True, xs[1:] != xs[:-1]]) - 1  # group id of each sorted position
    wg = np.add.reduceat(w[:, order], starts, axis=1)
    rank_g = np.cumsum(wg, axis=1) - wg + (wg + 1) / 2
    ranks = np.empty_like(w, dtype=float)
    ranks[:, order] = rank_g[:, group]
    return ranks


def spearman(w, x, y) -> np.ndarray:
    return pearson(w, weighted_ranks(w, x), weighted_ranks(w, y))


METRICS = {"accuracy": accuracy, "f1": f1, "matthews_correlation": matthews, "pearson": pearson,
           "spearmanr": spearman}


def _pearson_fixed(w, x, y) -> np.ndarray:
    """Weighted Pearson of fixed columns ``x`` (rows, series) against fixed ``y`` (rows,): every
    moment is one matrix product (both centred on their plain means first, so the one-pass
    variance loses no precision). (resamples, series)."""
    x = x - x.mean(axis=0)
    y = y - y.mean()
    s = w.sum(axis=1)[:, None]
    mx, my = (w @ x) / s, (w @ y)[:, None] / s
    vx = (w @ (x * x)) / s - mx ** 2
    vy = (w @ (y * y))[:, None] / s - my ** 2
    cov = (w @ (x * y[:, None])) / s - mx * my
    with np.errstate(invalid="ignore", divide="ignore"):
        r = cov / np.sqrt(vx * vy)
    return np.where((vx > 1e-12 * np.maximum(np.abs(x).max(axis=0), 1.0) ** 2) & (vy > 1e-12), r, np.nan)


def many(metric: str, w, preds: list, label) -> np.ndarray:
    """``METRICS[metric]`` of several prediction series against one label column at once:
    (resamples, series). Why: a report scores every plan and seed on the same resampled rows; the
    counts of all of them are one matrix product, and a rank correlation ranks the labels once."""
    label = np.asarray(label)
    P = np.stack([np.asarray(p) for p in preds], axis=1)  # (rows, series)
    s = w.sum(axis=1)[:, None]
    if metric == "accuracy":
        return (w @ (P == label[:, None]).astype(float)) / s
    if metric == "f1":
        p, y = P == 1, (label == 1)[:, None]
        tp, fp, fn = (w @ (p & y).astype(float)), (w @ (p & ~y).astype(float)), (w @ (~p & y).astype(float))
        den = 2 * tp + fp + fn
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, 2 * tp / np.where(den > 0, den, 1), 0.0)
    if metric == "matthews_correlation":
        classes = np.union1d(P, label)
        c = w @ (P == label[:, None]).astype(float)
        t = np.stack([w @ (label == k).astype(float) for k in classes], axis=1)  # (resamples, classes)
        pk = np.stack([w @ (P == k).astype(float) for k in classes], axis=2)  # (resamples, series, classes)
        cov = c * s - (pk * t[:, None, :]).sum(axis=2)
        den = (s ** 2 - (pk * pk).sum(axis=2)) * (s ** 2 - (t * t).sum(axis=1)[:, None])
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, cov / np.sqrt(np.where(den > 0, den, 1)), 0.0)
    if metric == "pearson":
        return _pearson_fixed(w, P.astype(float), label.astype(float))
    if metric == "spearmanr":
        # weighted average ranks of s drawn rows always average (s + 1)/2, so after centring on it
        # the correlation needs only Σ w rx ry, Σ w rx² and Σ w ry² (the labels' ranked once)
        mid = (s + 1) / 2
        ry = weighted_ranks(w, label) - mid
        wy = w * ry
        vy = np.einsum("ij,ij->i", wy, ry)[:, None]
        out = np.empty((w.shape[0], P.shape[1]))
        for j in range(P.shape[1]):
            rx = weighted_ranks(w, P[:, j]) - mid
            vx = np.einsum("ij,ij->i", w * rx, rx)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[:, j] = np.einsum("ij,ij->i", wy, rx) / np.sqrt(vx * vy[:, 0])
            out[:, j] = np.where((vx > 1e-9 * s[:, 0] ** 3) & (vy[:, 0] > 1e-9 * s[:, 0] ** 3), out[:, j], np.nan)
        return out
    raise KeyError(metric)
