"""The relayering scan's heatmap numbers and verdicts (issue 26, item 3).

A scan (``duplicate:i=I,j=J,times=K`` rows, ``glue_painters.variants.duplicate``) scores every
block duplication of a model on the same documents as the full model. For each task and each cell
(block start i, width j − i, run count times) this gives the difference to the full model, the
mean over the documents of (cell − full) on the task's primary metric (in its own units: an
accuracy difference of 0.02 is two points), with a paired interval, and decides it.

**Which correction, and why.** A heatmap marks cells by their intervals, so the intervals must
hold for every cell at once: each is Bonferroni-adjusted over the cells scanned for that task
(``glue_painters.relayer_stats.family_differences``; a scan of m cells has each interval at
1 − 0.05/m, simultaneous coverage at least 95%). Holm's procedure would decide as many cells or
more, but gives no interval per cell; a false discovery rate bounds a proportion, not each marked
cell. The family is **every cell scanned for the task**, with or without per-document scores, never
the cells that look interesting afterwards; per task because each task is its own heatmap and its
own question ("which blocks help on ARC-Easy"), as the sweep picks a winner per task.

**Verdicts**: ``glue_painters.stats.verdict`` with the smallest effect of interest ``SESOI``
(``--sesoi``): supported (a gain: the interval above zero and the estimate at least δ),
contradicted (a loss), negligible (the interval inside ±δ), else inconclusive. The first three
are *decided* and marked on the heatmap.

**The winner's curse.** The best cell of a scan is the one whose noise was luckiest, so its scan
estimate is biased upward. A sweep with a held-out split (``holdout:`` in its config,
``glue_painters.holdout``) re-scores the full model and the winners on documents the scan never
used; here each such plan's gain is re-estimated on those held-out records only, with an
*unadjusted* 95% paired interval (the plan was chosen before those documents were looked at, so
there is one comparison, not m), beside its scan estimate. Without held-out records the report
says so and names the config line that makes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from glue_painters import stats
from glue_painters.relayer_stats import family_differences
from glue_painters.variants import VariantSpec, block_of
from painters.report.per_document import Plan, Unit, load_units, units_of

LEVEL = 0.95
SESOI = 0.02
SESOI_WHY = ("two points of the task's primary metric (an accuracy of 0.02): the smallest gain the relayering "
             "reports are read for (their published gains are 2–6 points, on probes where one answer moves a "
             "score by 2–6), and below it a duplicated block is not worth the compute it adds")
HOLDOUT_HOW = ("add `holdout: {fraction: 0.3, seed: 0}` to the scan's sweep config and run it again with "
               "`painters decoder run CONFIG` (the scan's records are reused; the full model and the scan's "
               "winners are then scored on the held-out documents)")
MARK = {stats.SUPPORTED: "+", stats.CONTRADICTED: "−", stats.NEGLIGIBLE: "="}


@dataclass
class Cell:
    i: int
    j: int
    times: int
    label: str
    executions: int | None
    plan_text: str = ""
    interval: stats.Interval | None = None  # None: no per-document scores (counted in the family all the same)
    status: str = stats.INCONCLUSIVE

    @property
    def width(self) -> int:
        return self.j - self.i

    @property
    def decided(self) -> bool:
        return self.status in MARK


@dataclass
class HeldOut:
    """A plan the sweep re-scored on the held-out documents: its scan and held-out estimates."""

    label: str
    scan: stats.Interval | None  # the scan's estimate and its family-adjusted interval (None: not a scan cell)
    held: stats.Interval  # unadjusted 95%, held-out documents only
    best: bool  # the task's best scan cell


@dataclass
class TaskScan:
    task: str
    metric: str
    split: str  # the scan's documents: scan, or all (a store without a held-out split)
    docs: int
    cells: list[Cell]
    family: int  # cells scanned for this task: the Bonferroni family
    level: float  # each interval's level
    sesoi: float
    held: list[HeldOut] = field(default_factory=list)
    held_note: str | None = None  # why there is no held-out re-estimate
    notes: list[str] = field(default_factory=list)

    @property
    def best(self) -> Cell | None:
        """The cell with the largest scan estimate (ties: fewer executions, then plan text), as the
        sweep's ``glue_painters.holdout.pick`` chooses among the cells."""
        scored = [c for c in self.cells if c.interval is not None]
        return min(scored, key=lambda c: (-c.interval.estimate, c.executions or 0, c.plan_text)) if scored else None

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in (stats.SUPPORTED, stats.CONTRADICTED, stats.NEGLIGIBLE, stats.INCONCLUSIVE)}
        for c in self.cells:
            out[c.status] += 1
        return out


@dataclass
class Scan:
    model: str
    title: str
    num_layers: int | None
    tasks: list[TaskScan]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (task, why it has no heatmap)


def cell_of(p: Plan) -> tuple[int, int, int] | None:
    """(i, j, times) of a duplicate plan (``variants.block_of``), None for any other plan."""
    r = p.record
    if r.get("variant") != "duplicate":
        return None
    try:
        return block_of(VariantSpec.of("duplicate", **(r.get("params") or {})))
    except Exception:
        return None


def _interval_of(unit: Unit, plan: Plan, full: Plan, name: str, level: float, family: int):
    a, b = unit.values(plan), unit.values(full)
    if a is None or b is None or a.shape != b.shape:
        return None
    return family_differences(a[None], b, name=name, level=level, family=family)[0]


def _unscannable(unit: Unit) -> str | None:
    """Why a task's primary metric cannot be a mean of per-document differences, or None."""
    from decoder_eval.tasks import TASKS

    full = unit.full
    if full is None:
        return "no full-model record on these documents"
    if full.record.get("higher_is_better") is False:
        return f"{unit.primary} is lower-is-better (a perplexity is not a mean of per-document scores)"
    if unit.task in TASKS and TASKS[unit.task].aggregation.get(unit.primary) == "perplexity":
        return f"{unit.primary} is a perplexity, not a mean of per-document scores"
    if unit.values(full) is None:
        return "the full model's record has no per-document scores (re-run with this version)"
    return None


def task_scan(scan: Unit, held: list[Unit], sesoi: float = SESOI, level: float = LEVEL) -> TaskScan:
    """One task's heatmap: every duplicate cell of ``scan`` against its full model, decided at the
    Bonferroni-adjusted level, and the re-estimate of each plan ``held`` (held-out units of the
    same model and task) has besides the full model."""
    full = scan.full
    found = [(cell_of(p), p) for p in scan.plans]
    found = sorted([(c, p) for c, p in found if c is not None], key=lambda cp: (cp[0][2], cp[0][1] - cp[0][0], cp[0][0]))
    family = len(found)
    base = scan.values(full)
    rows, order, cells = [], [], []
    for (i, j, times), p in found:
        cell = Cell(i, j, times, p.label, p.executions, (p.record.get("plan") or {}).get("text", ""))
        v = scan.values(p)
        if v is not None and v.shape == base.shape:
            rows.append(v)
            order.append(cell)
        cells.append(cell)
    name = f"relayer/{scan.task}/{scan.split}"
    if rows:
        for cell, iv in zip(order, family_differences(np.stack(rows), base, name=name, level=level, family=family)):
            cell.interval, cell.status = iv, stats.verdict(iv, +1, sesoi)
    out = TaskScan(scan.task, scan.primary, scan.split, int(base.size), cells, family,
                   stats.bonferroni(level, family), sesoi)
    lacking = [c.label for c in cells if c.interval is None]
    if lacking:
        out.notes.append(f"{len(lacking)} cell(s) without per-document scores on the full model's documents, "
                         f"counted in the family, not decided: {', '.join(lacking[:8])}" + (" …" if len(lacking) > 8 else ""))
    _held_out(out, scan, held, level)
    return out


def _held_out(out: TaskScan, scan: Unit, held: list[Unit], level: float) -> None:
    """Fill ``out.held`` from the held-out units: each plan there besides the full model, its gain
    on those documents alone (unadjusted: chosen before they were looked at)."""
    best = out.best
    by_label = {c.label: c for c in out.cells}
    for unit in held:
        full = unit.full
        if full is None or unit.values(full) is None:
            continue
        for p in unit.plans:
            if p is full:
                continue
            iv = _interval_of(unit, p, full, f"relayer/{unit.task}/holdout", level, 1)
            if iv is None:
                continue
            cell = by_label.get(p.label)
            twin = next((q for q in scan.plans if q.label == p.label), None)
            # a heatmap cell keeps its family-adjusted interval; another winner (a plan that is no
            # duplication) was one comparison of its own
            scan_iv = cell.interval if cell is not None else None if twin is None else _interval_of(
                scan, twin, scan.full, f"relayer/{scan.task}/{scan.split}", level, 1)
            out.held.append(HeldOut(p.label, scan_iv, iv, best is not None and p.label == best.label))
    if not out.held:
        if scan.split == "all":
            out.held_note = f"no held-out records: this scan used every document; to re-estimate its best cell, {HOLDOUT_HOW}"
        else:
            out.held_note = ("no held-out records for this task yet (the sweep scores them after the scan): run the "
                             "sweep again with `painters decoder run CONFIG` to finish its held-out round")
    elif best is not None and not any(h.best for h in out.held):
        out.held_note = (f"the best scan cell on {out.task} ({best.label}) has no held-out record; the plans below are "
                         f"the ones the sweep re-scored (its winners)")


def scans_of(units: list[Unit], sesoi: float = SESOI, level: float = LEVEL) -> list[Scan]:
    """Every model's relayering scan in these units (models without a duplicate record: none)."""
    by_model: dict[str, list[Unit]] = {}
    for u in units:
        by_model.setdefault(u.title, []).append(u)
    out = []
    for title, us in by_model.items():
        scan = Scan(us[0].model, title, us[0].num_layers, [])
        for task in dict.fromkeys(u.task for u in us):
            mine = [u for u in us if u.task == task]
            scanning = [u for u in mine if u.split != "holdout" and any(cell_of(p) for p in u.plans)]
            if not scanning:
                continue
            # the scan's documents: its scan part if the sweep split them, else every document
            # (the subset holding the most duplicate cells)
            first = min(scanning, key=lambda u: (u.split != "scan", -sum(cell_of(p) is not None for p in u.plans)))
            why = _unscannable(first)
            if why:
                scan.skipped.append((task, why))
                continue
            scan.tasks.append(task_scan(first, [u for u in mine if u.split == "holdout"], sesoi, level))
        if scan.tasks or scan.skipped:
            out.append(scan)
    return out


def load_scans(results, models: list[str] | None = None, tasks: list[str] | None = None,
               sesoi: float = SESOI) -> list[Scan]:
    """The relayering scans of a results store."""
    return scans_of(load_units(results, models, tasks), sesoi)


__all__ = ["Cell", "HeldOut", "LEVEL", "SESOI", "Scan", "TaskScan", "load_scans", "scans_of", "task_scan", "units_of"]
