"""Every cell of a report group scored on the same bootstrap resamples of each task's documents.

Why one resampling per group: the findings compare cells (random against reverse, parallel
against skip, ...) and the figures draw each cell's normalized median with a band; all of them are
functions of the cells' task scores. Drawing the documents once per task and scoring *every* cell
on that draw keeps each comparison paired (a plan is compared with another on the same documents,
``glue_painters.stats``) and costs one matrix product per task.

What a cell's task score is, per resample:

* decoder: the mean over the drawn documents of its per-document primary metric (record field
  ``per_item``), for perplexity exp(-mean loglikelihood). A cell with several permutation seeds
  (random order) is first averaged over its seeds document by document (same documents).
* GLUE: the task score (×100, the mean of the task's official metrics over its evaluation
  splits) recomputed from the drawn rows' predictions and labels (record fields ``predictions``
  / ``labels``; ``glue_painters.weighted_metrics``), each split drawn on its own; a cell with
  several training seeds also has its seeds drawn with replacement in every resample (seed-to-seed
  variation is part of the uncertainty), then their scores averaged.

Normalized as the findings use it: (score − chance) / (full − chance) with the full model's score
*on the same resample*, median over the group's tasks above chance. Row 0 of every array is the
observed value, rows 1.. the resamples.

A cell whose records carry no per-document scores (written before they were kept) has none here:
``Resampled.why`` says so with ``per_item.NO_SCORES``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from glue_painters import stats
from glue_painters.datadir import data_root, track_dir
from glue_painters.jsonl import jsonl_records
from glue_painters.per_item import NO_SCORES, column
from painters.report.data import Group

LEVEL = 0.95


@dataclass
class Resampled:
    tasks: list[str]  # the group's tasks above chance that have per-document scores
    columns: dict[tuple, int]  # cell key -> column of ``scores``
    scores: dict[str, np.ndarray]  # task -> (1 + resamples, cells); NaN where a cell has no scores
    units: dict[str, int]  # documents / evaluation rows per task
    available: dict[str, int | None] = field(default_factory=dict)  # what the full benchmark holds (None: unknown)
    seeds: dict[tuple, int] = field(default_factory=dict)
    why: dict[tuple, str] = field(default_factory=dict)  # cell key -> why it has no scores
    reliable: list[str] = field(default_factory=list)
    chance: dict[str, float] = field(default_factory=dict)
    full: tuple | None = ("full", None, None, None)

    def has(self, key) -> bool:
        """Scores on every task above chance, for this cell and the full model."""
        if not self.reliable or self.full not in self.columns or key not in self.columns:
            return False
        return all(t in self.scores and np.isfinite(self.scores[t][0, self.columns[c]])
                   for t in self.reliable for c in (key, self.full))

    def missing(self, keys) -> str | None:
        """Why some of ``keys`` cannot be compared (None when all can)."""
        lacking = [k for k in keys if not self.has(k)]
        if not lacking:
            return None
        reasons = {self.why.get(k) or self.why.get(self.full) or NO_SCORES for k in lacking}
        return "; ".join(sorted(reasons))

    def norm(self, key, task: str) -> np.ndarray:
        s = self.scores[task]
        with np.errstate(divide="ignore", invalid="ignore"):
            return (s[:, self.columns[key]] - self.chance[task]) / (s[:, self.columns[self.full]] - self.chance[task])

    def rel(self, key) -> np.ndarray:
        """The normalized median of a cell over the tasks above chance: (1 + resamples,)."""
        return np.median(np.stack([self.norm(key, t) for t in self.reliable]), axis=0)

    @property
    def docs(self) -> int:
        return sum(self.units[t] for t in self.reliable)

    @property
    def full_docs(self) -> int | None:
        """Documents (rows) the full benchmarks behind ``docs`` hold; None when one is unknown."""
        sizes = [self.available.get(t) for t in self.reliable]
        return None if not sizes or None in sizes else sum(sizes)

    def seed_text(self, keys) -> str:
        counts = sorted({self.seeds.get(k, 1) for k in keys})
        return str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"

    def band(self, key, level: float = LEVEL) -> tuple[float, float] | None:
        """The pointwise ``level`` interval of a cell's normalized median (figures)."""
        return self._band(self.rel(key), level) if self.has(key) else None

    def task_band(self, key, task: str, normalized: bool, level: float = LEVEL) -> tuple[float, float] | None:
        """The interval of a cell's score on one task (normalized, or the raw task score)."""
        if not self.has(key) or task not in self.scores:
            return None
        return self._band(self.norm(key, task) if normalized else self.scores[task][:, self.columns[key]], level)

    def _band(self, values: np.ndarray, level: float) -> tuple[float, float] | None:
        iv = stats.interval_of(0.0, values[1:], level, self.docs)
        return (iv.low, iv.high) if np.isfinite(iv.low) else None


def resampled(g: Group, resamples: int = stats.RESAMPLES) -> Resampled:
    """The group's resampled scores, computed once per group (kept on ``g.paired``)."""
    if g.paired is None:
        g.paired = _build(g, resamples)
    return g.paired


def _build(g: Group, resamples: int) -> Resampled:
    keys = list(g.cells)
    columns = {k: i for i, k in enumerate(keys)}
    out = Resampled([], columns, {}, {}, reliable=[], chance={t: g.chance.get(t) for t in g.reliable})
    scorers = {}
    for t in g.reliable:
        made = _decoder_task(g, t, keys, out) if g.track == "decoder" else _glue_task(g, t, keys, out)
        if made is not None:
            scorers[t] = made
    drawn = stats.bootstrap_scores({t: sc for t, (sc, _) in scorers.items()}, resamples=resamples)
    for t, (_, present) in scorers.items():
        full = np.full((resamples + 1, len(keys)), np.nan)
        full[:, [columns[k] for k in present]] = drawn[t]
        out.scores[t] = full
        out.tasks.append(t)
    out.reliable = list(g.reliable) if len(out.tasks) == len(g.reliable) else []
    return out


def _seed_records(cell, task: str) -> list[dict]:
    return [r for r in cell.records if r.get("task") == task]


def _decoder_task(g: Group, task: str, keys, out: Resampled):
    """A decoder task's scorer over the cells with per-document scores (and their keys)."""
    from decoder_eval.tasks import TASKS

    rows, present, n = [], [], None
    for k in keys:
        recs = _seed_records(g.cells[k], task)
        if not recs:
            continue
        cols = [column(r, r.get("primary_metric", g.primary.get(task))) for r in recs]
        if any(c is None for c in cols):
            out.why[k] = NO_SCORES
            continue
        if n is None:
            n = len(cols[0])
        if any(len(c) != n for c in cols):
            out.why[k] = f"{task}: per-document scores over different documents"
            continue
        rows.append(np.mean(cols, axis=0))  # seeds averaged document by document
        present.append(k)
        out.seeds[k] = len(recs)
    if not present:
        return None
    x = np.stack(rows)
    ppl = TASKS[task].aggregation.get(g.primary.get(task)) == "perplexity" if task in TASKS else False
    out.units[task] = n
    out.available[task] = _decoder_available(g.cells[present[0]].records, task, n)

    def score(w, rng):
        mean = (w @ x.T) / w.sum(axis=1)[:, None]
        return np.exp(-mean) if ppl else mean

    return stats.Scorer((n,), score), present


def _lines(path: Path) -> int | None:
    """Documents in a local JSON Lines split (``jsonl_records``' rule: one per non-blank line)."""
    return sum(1 for _ in jsonl_records(path)) if path.is_file() else None


def _subset(records: list[dict], task: str) -> dict:
    rec = next(r for r in records if r.get("task") == task)
    return (rec.get("key") or {}).get("subset") or {}


def _decoder_available(records: list[dict], task: str, n: int) -> int | None:
    """The documents of the whole split a decoder record's subset was taken from: ``n`` when no
    limit cut it, else the local file's documents (one JSON line each); None for a hub split."""
    sub = _subset(records, task)
    if sub.get("limit") is None:
        return n
    source = str(sub.get("split") or "")
    return _lines(data_root() / source[len("local:"):]) if source.startswith("local:") else None


def _glue_available(records: list[dict], task: str, splits: list[str], rows: int) -> int | None:
    """The evaluation rows of the whole validation split(s): ``rows`` when no limit cut them."""
    sub = _subset(records, task)
    if sub.get("eval") is None and sub.get("eval_first") is None:  # a random sample or the first N cut them
        return rows
    folder = track_dir("glue", marker="cola") / task
    sizes = [_lines(folder / f"{s}.jsonl") for s in splits]
    return None if None in sizes else sum(sizes)


def _glue_task(g: Group, task: str, keys, out: Resampled):
    """A GLUE task's scorer: the task score from each seed's row predictions, seeds drawn too."""
    from glue_eval.tasks import get_task

    from glue_painters.weighted_metrics import METRICS

    spec = get_task(task)
    splits = list(spec.eval_splits)
    labels, series, present = None, [], []
    for k in keys:
        recs = _seed_records(g.cells[k], task)
        if not recs:
            continue
        if any(not r.get("predictions") or not r.get("labels") for r in recs):
            out.why[k] = NO_SCORES
            continue
        if labels is None:
            labels = {s: np.asarray(recs[0]["labels"][s]) for s in splits}
        if any(len(r["predictions"][s]) != len(labels[s]) for r in recs for s in splits):
            out.why[k] = f"{task}: predictions over different evaluation rows"
            continue
        series.append([{s: np.asarray(r["predictions"][s]) for s in splits} for r in recs])
        present.append(k)
        out.seeds[k] = len(recs)
    if not present:
        return None
    sizes = tuple(len(labels[s]) for s in splits)
    out.units[task] = sum(sizes)
    out.available[task] = _glue_available(g.cells[present[0]].records, task, splits, sum(sizes))
    bounds = np.cumsum((0,) + sizes)

    def seed_score(w, preds):
        vals = [METRICS[m](w[:, bounds[i]:bounds[i + 1]], preds[s], labels[s])
                for i, s in enumerate(splits) for m in spec.metrics]
        return 100.0 * np.mean(vals, axis=0)

    def score(w, rng):
        cols = []
        for seeds in series:
            per_seed = np.stack([seed_score(w, p) for p in seeds], axis=1)  # (count, seeds)
            if rng is not None and len(seeds) > 1:
                pick = rng.integers(0, len(seeds), size=per_seed.shape)
                per_seed = np.take_along_axis(per_seed, pick, axis=1)
            cols.append(per_seed.mean(axis=1))
        return np.stack(cols, axis=1)

    return stats.Scorer(sizes, score), present
