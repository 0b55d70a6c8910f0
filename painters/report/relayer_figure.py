"""The relayering scan as people read it: a heatmap per task and the tables beside it.

The heatmap (``draw``): x = the duplicated block's first layer i, y = its width j − i, colour = the
difference to the full model on the task's primary metric (blue a gain, red a loss, white none;
each panel's scale symmetric around zero), one panel per task (and per run count, when a scan has
several). A decided cell is outlined and marked ``+`` (supported gain), ``−`` (contradicted: a
loss) or ``=`` (negligible: inside ±δ); an undecided cell is left plain, a cell not scanned blank
grey. The best cell (largest scan estimate) is named in the panel's title with its interval.

Byte for byte: the intervals come from generators seeded by what they resample (``stats``), the
PNG has no "Software" chunk (``figures._png``), so the same store gives the same file.
"""

from __future__ import annotations

import numpy as np

from glue_painters import stats
from painters.report.figures import DPI, Figure, NotDrawn, _plt, _png
from painters.report.html import Table
from painters.report.relayer import HOLDOUT_HOW, MARK, SESOI_WHY, Scan, TaskScan
from painters.report.section import Section

ANCHOR = "relayering"


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-." else "_" for ch in text).strip("_")


def draw(scan: Scan) -> Figure:
    """One figure of a model's scan (see the module docstring); ``NotDrawn`` when no cell has an
    interval."""
    plt = _plt()
    from matplotlib import patches

    panels = [(t, times) for t in scan.tasks for times in sorted({c.times for c in t.cells})
              if any(c.interval is not None and c.times == times for c in t.cells)]
    if not panels:
        raise NotDrawn("no cell of the scan has per-document scores")
    T = max([scan.num_layers or 0] + [c.j for t, _ in panels for c in t.cells])
    wmax = max(c.width for t, _ in panels for c in t.cells)
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 0.9 + 0.28 * wmax * rows + 1.2 * rows), squeeze=False,
                             dpi=DPI)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax, (t, times) in zip(axes.flat, panels):
        grid = np.full((wmax, T), np.nan)
        cells = [c for c in t.cells if c.times == times]
        for c in cells:
            if c.interval is not None:
                grid[c.width - 1, c.i] = c.interval.estimate
        lim = float(np.nanmax(np.abs(grid))) or 1e-9
        cmap = plt.get_cmap("RdBu").with_extremes(bad="0.85")
        im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=-lim, vmax=lim, origin="lower", aspect="auto",
                       extent=(-0.5, T - 0.5, 0.5, wmax + 0.5), interpolation="nearest")
        for c in cells:
            if c.decided:
                ax.add_patch(patches.Rectangle((c.i - 0.5, c.width - 0.5), 1, 1, fill=False, ec="black", lw=0.8))
                ax.text(c.i, c.width, MARK[c.status], ha="center", va="center", fontsize=7, color="black")
        best = t.best
        head = f"{t.task} ({t.metric})" + (f", block run {times}×" if times != 2 else "")
        if best is not None and best.times == times:
            head += f"\nbest i={best.i}, width {best.width}: {best.interval.text(3)}"
        ax.set_title(head, fontsize=8)
        ax.set_xlabel("first layer of the duplicated block (i)", fontsize=8)
        ax.set_ylabel("block width (j − i)", fontsize=8)
        ax.set_yticks(range(1, wmax + 1))
        ax.tick_params(labelsize=7)
        bar = fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
        bar.ax.tick_params(labelsize=6)
        bar.set_label("cell − full", fontsize=7)
    caption = (f"{scan.title}: difference to the full model per duplicated block (cell − full, the task's primary "
               f"metric, mean over the scan's documents); outlined cells are decided at the Bonferroni-adjusted level "
               f"over each task's cells (+ gain supported, − loss, = negligible within ±{panels[0][0].sesoi:g}); grey: "
               f"not scanned.")
    return Figure("relayer", f"relayer_{_slug(scan.model)}", f"Relayering scan: {scan.title}", caption, _png(fig))


def _iv(iv: stats.Interval | None, digits: int = 3) -> str:
    return "–" if iv is None else iv.text(digits)


def summary_table(scan: Scan) -> Table:
    rows = []
    for t in scan.tasks:
        n = t.counts()
        best = t.best
        rows.append([t.task, t.metric, t.split, f"{t.docs:,}", str(t.family), f"{t.level:.4%}",
                     "–" if best is None else f"{best.interval.draws:,}",
                     str(n[stats.SUPPORTED]), str(n[stats.CONTRADICTED]), str(n[stats.NEGLIGIBLE]),
                     str(n[stats.INCONCLUSIVE]), "–" if best is None else best.label,
                     "–" if best is None else f"{_iv(best.interval)} {best.status}"])
    notes = [f"{task}: no heatmap: {why}" for task, why in scan.skipped]
    notes += [f"{t.task}: {n}" for t in scan.tasks for n in t.notes]
    return Table(f"Relayering scan: {scan.title}",
                 ["task", "metric", "documents (split)", "documents", "cells scanned (family)", "each interval at", "resamples",
                  "supported (gain)", "contradicted (loss)", "negligible", "inconclusive", "best cell",
                  "best: cell − full [adjusted interval] verdict"], rows, notes)


def held_table(scan: Scan) -> Table:
    rows, notes = [], []
    for t in scan.tasks:
        for h in t.held:
            rows.append([t.task, h.label + (" (best scan cell)" if h.best else ""), _iv(h.scan),
                         f"{h.held.n:,}", _iv(h.held), stats.verdict(h.held, +1, t.sesoi)])
        if t.held_note:
            notes.append(f"{t.task}: {t.held_note}")
    notes.append("scan estimate: on the scan's documents, with the heatmap's family-adjusted interval (a winner that "
                 "is not a duplication: its own unadjusted 95% interval); held-out: the same difference on the "
                 "held-out documents only (never a scan record), unadjusted 95% paired interval (the plan was chosen "
                 "before these documents were looked at: one comparison). A held-out estimate below the scan's is "
                 "the winner's curse.")
    return Table("Best cells re-estimated on held-out documents", ["task", "plan", "scan: cell − full [interval]",
                 "held-out documents", "held-out: cell − full [95%]", "held-out verdict"], rows, notes)


def cells_table(t: TaskScan) -> Table:
    rows = [[c.label, str(c.i), str(c.width), str(c.times), _iv(c.interval), c.status]
            for c in sorted(t.cells, key=lambda c: (-(c.interval.estimate if c.interval else -np.inf), c.label))]
    return Table(f"{t.task}: every cell, best first", ["cell", "i", "width", "times", "cell − full [adjusted interval]",
                                                         "verdict"], rows)


def method_text(scans: list[Scan]) -> str:
    deltas = sorted({t.sesoi for s in scans for t in s.tasks}) or [None]
    delta = "/".join(f"{d:g}" for d in deltas if d is not None) or "–"
    return ("Each cell is a block duplication (duplicate:i=I,j=J,times=K: layers 0..j−1, the block i..j−1 run "
            "times−1 more times, then j..T−1). Its effect is the mean over the scan's documents of (cell − full) on "
            "the task's primary metric, with a paired basic-bootstrap interval (documents resampled once per task "
            "and shared by every cell). Correction: Bonferroni over the cells scanned for each task, so the "
            "intervals hold for all cells of a heatmap at once (simultaneous 95%), which is what marking cells "
            "needs; Holm's step-down procedure would decide as many or more but gives no interval per cell, and a "
            "false discovery rate bounds a proportion, not each marked cell. Conservative where neighbouring "
            f"blocks are correlated, never liberal. Verdicts: the report's rule (glue_painters.stats.verdict) with "
            f"δ = {delta} ({SESOI_WHY}); supported, contradicted and negligible cells are decided and marked. "
            f"Resamples: enough for {stats.TAIL_DRAWS} draws beyond each end of every interval.")


def section(scans: list[Scan]) -> tuple[Section, list[tuple[str, str, str]]]:
    """The report's relayering section, and the figures it could not draw (id, who, why)."""
    figures, missing = [], []
    for s in scans:
        try:
            figures.append(draw(s))
        except NotDrawn as e:
            missing.append(("relayer", s.title, str(e)))
    tables = [summary_table(s) for s in scans]
    tables.append(Table(held_table(scans[0]).title, held_table(scans[0]).header,
                        [r for s in scans for r in held_table(s).rows],
                        list(dict.fromkeys(n for s in scans for n in held_table(s).notes))))
    details = [cells_table(t) for s in scans for t in s.tasks]
    intro = [method_text(scans)]
    if not any(t.held for s in scans for t in s.tasks):
        intro.append(f"No held-out records in this store, so the best cells' gains are not re-estimated; to do so, "
                     f"{HOLDOUT_HOW}.")
    return Section(ANCHOR, "Relayering scan: every block duplication against the full model", intro, tables, figures,
                   details), missing
