"""Every cell of a report group scored on the same bootstrap resamples of each task's documents.

Why one resampling per group: the findings compare cells (random against reverse, parallel
against skip, ...) and the figures draw each cell's normalized median with a band; all of them are
functions of the cells' task scores. Drawing the documents once per task and scoring *every* cell
on that draw keeps each comparison paired (a plan is compared with another on the same documents,
``glue_painters.stats``) and costs one matrix product per task.

What a cell's task score is, per resample and per seed of the cell (several seeds: random order's
permutation seeds in the decoder track, training seeds in GLUE):

* decoder: the mean over the drawn documents of its per-document primary metric (record field
  ``per_item``), for perplexity exp(-mean loglikelihood).
* GLUE: the task score (×100, the mean of the task's official metrics over its evaluation
  splits) recomputed from the drawn rows' predictions and labels (record fields ``predictions``
  / ``labels``; ``glue_painters.weighted_metrics``), each split drawn on its own.

**One definition of a cell**, the one its table row and the findings' pattern use
(``decoder_eval.summary``, ``data.py``): the normalized median of a cell is the *mean over its
seeds of each seed's median over the tasks* of (score − chance) / (full − chance), over the seeds
that ran every task; a per-task value is the mean over the seeds of that task. In every resample
the seeds are drawn with replacement too (seed-to-seed variation is part of the uncertainty: a
permutation or a training run is a sample), one draw per cell shared by all its tasks (a seed is
one permutation / one run on every task), from a generator seeded by the cell and its seeds; the
full model's score (the denominator) is its own seeds' mean, drawn the same way. Documents are
drawn from a generator seeded by the task and its sizes. So nothing depends on the order in which
cells, groups or claims are computed: the same store gives the same draws.

A normalization whose denominator (the full model's margin over chance) has an interval reaching
zero at the report's level is refused (``denominators``): its ratios would be unbounded.

Row 0 of every array is the observed value, rows 1.. the resamples. A cell whose records carry no
per-document scores (written before they were kept) has none here: ``Resampled.why`` says so
with ``per_item.NO_SCORES``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from glue_painters import stats
from glue_painters.datadir import data_root, track_dir
from glue_painters.jsonl import jsonl_records
from glue_painters.per_item import NO_SCORES, column
from painters.report.data import Group

LEVEL = 0.95


def _seed_order(seed) -> tuple:
    return (seed is not None, seed if isinstance(seed, int) else 0, repr(seed))


@dataclass
class Resampled:
    tasks: list[str]  # the group's tasks above chance that have per-document scores
    columns: dict[str, dict[tuple, dict]]  # task -> cell key -> seed -> column of ``scores[task]``
    scorers: dict[str, stats.Scorer]  # task -> its scorer over those columns
    units: dict[str, int]  # documents / evaluation rows per task
    resamples: int = stats.RESAMPLES
    available: dict[str, int | None] = field(default_factory=dict)  # what the full benchmark holds (None: unknown)
    why: dict[tuple, str] = field(default_factory=dict)  # cell key -> why it has no scores
    reliable: list[str] = field(default_factory=list)
    chance: dict[str, float] = field(default_factory=dict)
    full: tuple | None = ("full", None, None, None)

    @cached_property
    def scores(self) -> dict[str, np.ndarray]:
        """task -> (1 + resamples, columns): each (cell, seed)'s task score, observed then resampled."""
        return stats.bootstrap_scores(self.scorers, resamples=self.resamples)

    def _seeds(self, key, task: str | None = None) -> list:
        """The seeds of a cell on ``task``, or (None) those that ran every task above chance."""
        if task is not None:
            return sorted((self.columns.get(task) or {}).get(key, {}), key=_seed_order)
        sets = [set((self.columns.get(t) or {}).get(key, {})) for t in self.reliable]
        return sorted(set.intersection(*sets), key=_seed_order) if sets else []

    @property
    def seeds(self) -> dict[tuple, int]:
        """Seeds behind each cell's normalized median."""
        keys = {k for t in self.reliable for k in self.columns.get(t, {})}
        return {k: len(self._seeds(k)) for k in keys}

    def has(self, key) -> bool:
        """Scores on every task above chance, for this cell and the full model (a seed of each that
        ran them all)."""
        return bool(self.reliable) and all(self._seeds(c) for c in (key, self.full))

    def missing(self, keys) -> str | None:
        """Why some of ``keys`` cannot be compared (None when all can)."""
        lacking = [k for k in keys if not self.has(k)]
        if not lacking:
            return None
        reasons = {self.why.get(k) or self.why.get(self.full) or NO_SCORES for k in lacking}
        return "; ".join(sorted(reasons))

    def _picks(self, key, seeds: list) -> np.ndarray:
        """(resamples, seeds): which of the cell's seeds each resample draws (with replacement)."""
        cache = self.__dict__.setdefault("_pick_cache", {})
        tag = (key, tuple(seeds))
        if tag not in cache:
            cache[tag] = stats.generator("seeds", key, tuple(seeds)).integers(0, len(seeds), (self.resamples, len(seeds)))
        return cache[tag]

    def _seed_mean(self, values: np.ndarray, key, seeds: list) -> np.ndarray:
        """(1 + resamples, seeds) -> (1 + resamples,): the seeds' mean, observed then over the drawn seeds."""
        if values.shape[1] == 1:
            return values[:, 0]
        drawn = np.take_along_axis(values[1:], self._picks(key, seeds), axis=1).mean(axis=1)
        return np.concatenate([values[:1].mean(axis=1), drawn])

    def _per_seed(self, key, task: str, seeds: list) -> np.ndarray:
        cols = self.columns[task][key]
        return self.scores[task][:, [cols[s] for s in seeds]]

    def denominator(self, task: str) -> np.ndarray:
        """The full model's margin over chance on ``task``: (1 + resamples,)."""
        cache = self.__dict__.setdefault("_den_cache", {})
        if task not in cache:
            seeds = self._seeds(self.full, task)
            cache[task] = self._seed_mean(self._per_seed(self.full, task, seeds), (self.full, task), seeds) \
                - self.chance[task]
        return cache[task]

    def denominators(self, level: float) -> dict[str, stats.Interval]:
        """task -> the ``level`` interval of its denominator, for the tasks where it reaches zero
        (their normalization is refused: a ratio to a margin that may be nil is unbounded)."""
        out = {}
        for t in self.reliable:
            d = self.denominator(t)
            iv = stats.effect_interval(d[:1], d[1:, None], level, self.units[t])
            if not (iv.low > 0):
                out[t] = iv
        return out

    def _norm_seeds(self, key, task: str, seeds: list) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return (self._per_seed(key, task, seeds) - self.chance[task]) / self.denominator(task)[:, None]

    def norm(self, key, task: str) -> np.ndarray:
        """A cell's normalized score on one task, the mean over its seeds there: (1 + resamples,)."""
        seeds = self._seeds(key, task)
        return self._seed_mean(self._norm_seeds(key, task, seeds), (key, task), seeds)

    def rel(self, key) -> np.ndarray:
        """The normalized median of a cell: the mean over its seeds of each seed's median over the
        tasks above chance (the module docstring), (1 + resamples,)."""
        cache = self.__dict__.setdefault("_rel_cache", {})
        if key not in cache:
            seeds = self._seeds(key)
            per_seed = np.median(np.stack([self._norm_seeds(key, t, seeds) for t in self.reliable]), axis=0)
            cache[key] = self._seed_mean(per_seed, key, seeds)
        return cache[key]

    @property
    def docs(self) -> int:
        return sum(self.units[t] for t in self.reliable)

    @property
    def full_docs(self) -> int | None:
        """Documents (rows) the full benchmarks behind ``docs`` hold; None when one is unknown."""
        sizes = [self.available.get(t) for t in self.reliable]
        return None if not sizes or None in sizes else sum(sizes)

    def seed_text(self, keys) -> str:
        seeds = self.seeds
        counts = sorted({seeds.get(k, 1) for k in keys})
        return str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"

    def band(self, key, level: float = LEVEL) -> tuple[float, float] | None:
        """The pointwise ``level`` interval of a cell's normalized median (figures)."""
        return self._band(self.rel(key), level) if self.has(key) else None

    def task_band(self, key, task: str, normalized: bool, level: float = LEVEL) -> tuple[float, float] | None:
        """The interval of a cell's score on one task (normalized, or the raw task score)."""
        if not self.has(key) or task not in self.columns:
            return None
        if normalized:
            values = self.norm(key, task)
        else:
            seeds = self._seeds(key, task)
            values = self._seed_mean(self._per_seed(key, task, seeds), (key, task), seeds)
        return self._band(values, level)

    def _band(self, values: np.ndarray, level: float) -> tuple[float, float] | None:
        iv = stats.interval_of(0.0, values[1:], level, self.docs)
        return (iv.low, iv.high) if np.isfinite(iv.low) else None


def resampled(g: Group, resamples: int | None = None) -> Resampled:
    """The group's resampled scores (kept on ``g.paired``): at ``resamples`` (None: whatever count
    it has, else ``stats.RESAMPLES``, what a 95% band needs). The draws themselves are made on
    first use, so asking which cells can be compared costs no resampling."""
    if g.paired is None:
        g.paired = _build(g, resamples or stats.RESAMPLES)
    elif resamples is not None and g.paired.resamples != resamples:
        g.paired = _build(g, resamples)
    return g.paired


def _build(g: Group, resamples: int) -> Resampled:
    keys = list(g.cells)
    out = Resampled([], {}, {}, {}, resamples, reliable=[], chance={t: g.chance.get(t) for t in g.reliable})
    for t in g.reliable:
        made = _decoder_task(g, t, keys, out) if g.track == "decoder" else _glue_task(g, t, keys, out)
        if made is not None:
            out.scorers[t], out.columns[t] = made
            out.tasks.append(t)
    out.reliable = list(g.reliable) if len(out.tasks) == len(g.reliable) else []
    return out


def _seed_records(cell, task: str, seed_of) -> dict:
    """seed -> the cell's record on ``task`` (the first one, should a seed appear twice)."""
    out = {}
    for r in cell.records:
        if r.get("task") == task:
            out.setdefault(seed_of(r), r)
    return out


def _decoder_seed(r: dict):
    return (r.get("params") or {}).get("seed")


def _decoder_task(g: Group, task: str, keys, out: Resampled):
    """A decoder task's scorer over the (cell, seed) pairs with per-document scores, and their columns."""
    from decoder_eval.tasks import TASKS

    rows, cols, n = [], {}, None
    for k in keys:
        recs = _seed_records(g.cells[k], task, _decoder_seed)
        if not recs:
            continue
        seeds = sorted(recs, key=_seed_order)
        values = [column(recs[s], recs[s].get("primary_metric", g.primary.get(task))) for s in seeds]
        if any(v is None for v in values):
            out.why[k] = NO_SCORES
            continue
        if n is None:
            n = len(values[0])
        if any(len(v) != n for v in values):
            out.why[k] = f"{task}: per-document scores over different documents"
            continue
        cols[k] = {}
        for s, v in zip(seeds, values):
            cols[k][s] = len(rows)
            rows.append(v)
    if not cols:
        return None
    x = np.asarray(rows, dtype=float)
    ppl = TASKS[task].aggregation.get(g.primary.get(task)) == "perplexity" if task in TASKS else False
    out.units[task] = n
    out.available[task] = _decoder_available(g.cells[next(iter(cols))].records, task, n)

    def score(w, rng):
        mean = (w @ x.T) / w.sum(axis=1)[:, None]
        return np.exp(-mean) if ppl else mean

    return stats.Scorer((n,), score), cols


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
    """A GLUE task's scorer: the task score of each (cell, training seed) from its row predictions."""
    from glue_eval.tasks import get_task

    from glue_painters import weighted_metrics as WM

    spec = get_task(task)
    splits = list(spec.eval_splits)
    labels, series, cols = None, [], {}
    for k in keys:
        recs = _seed_records(g.cells[k], task, lambda r: r.get("seed"))
        if not recs:
            continue
        seeds = sorted(recs, key=_seed_order)
        if any(not recs[s].get("predictions") or not recs[s].get("labels") for s in seeds):
            out.why[k] = NO_SCORES
            continue
        if labels is None:
            labels = {s: np.asarray(recs[seeds[0]]["labels"][s]) for s in splits}
        if any(len(recs[s]["predictions"][sp]) != len(labels[sp]) for s in seeds for sp in splits):
            out.why[k] = f"{task}: predictions over different evaluation rows"
            continue
        cols[k] = {}
        for s in seeds:
            cols[k][s] = len(series)
            series.append({sp: np.asarray(recs[s]["predictions"][sp]) for sp in splits})
    if not cols:
        return None
    sizes = tuple(len(labels[s]) for s in splits)
    out.units[task] = sum(sizes)
    out.available[task] = _glue_available(g.cells[next(iter(cols))].records, task, splits, sum(sizes))
    bounds = np.cumsum((0,) + sizes)

    def score(w, rng):
        total = np.zeros((w.shape[0], len(series)))
        for i, s in enumerate(splits):
            ws = w[:, bounds[i]:bounds[i + 1]]
            for m in spec.metrics:
                total += WM.many(m, ws, [p[s] for p in series], labels[s])
        return 100.0 * total / (len(splits) * len(spec.metrics))

    return stats.Scorer(sizes, score), cols
