"""The paper's figures, drawn with matplotlib from ``Group``s (our own records), never from the
paper's numbers.

=========  ===============================================================================
Fig. 2     skip-one and switch-with-next: score per layer index i, per benchmark + summary
Fig. 3     hidden-state cosine similarity heatmaps (``reports/similarity_*.json``)
Figs. 4–9  one figure per variant: score over N per benchmark, and the summary (decoder: the
           normalized median; GLUE: the unnormalized average), per GLUE mode
Fig. 10    looped parallel: rows = layers run in parallel, columns = iterations k; the best k
           of each row is boxed
Fig. 11    every variant's summary over N on one plot
=========  ===============================================================================

Uncertainty: Figs. 4–9 and 11 draw the normalized median (the findings' scale, ``paired.py``) with
its 95% band, a percentile bootstrap over documents (GLUE: evaluation rows and seeds) per N, and
Figs. 4–9 put the per-benchmark curves, each with its band, in a panel next to it; Fig. 10 writes
each cell's interval under its value. Records without per-document scores get no bands (the
caption says so); a cell with several seeds then shows ± one standard deviation over seeds, as
before. A benchmark where the full model is at chance (``Group.flagged``) is marked ‡ in every
plot: the decoder plots leave it out (its normalized score is not computed) and say so in the
plot; GLUE plots draw it dashed (the paper's unnormalized average keeps it; the findings'
normalized median does not).

Readability: PNGs at ``DPI`` (200: sharp on a high-DPI screen at the size the HTML shows them),
legends outside the axes, and lines that could coincide drawn so that each shows: every line has
its own marker and dash pattern and a small horizontal offset (``_OFFSET`` of an N step per line).
Fig. 2 spans the page's full width.

Each ``draw_*`` returns a ``Figure`` or raises ``NotDrawn`` with the reason, which the report lists.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from painters.report.data import Cell, Group
from painters.report.similarity_claim import Similarity
from painters.report.paired import resampled

N_VARIANTS = ("skip", "middle_repeat", "reverse", "random", "parallel", "looped_parallel")
PAPER_FIG = {"skip": "4", "middle_repeat": "5", "reverse": "6", "random": "7", "parallel": "8",
             "looped_parallel": "9"}
DPI = 200
MEDIAN_BAND = "#e66101"  # the normalized median's band: one colour no other line uses (tests look for it)
MEDIAN_BAND_ALPHA = 0.3
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
DASHES = ("-", "--", "-.", ":")
_OFFSET = 0.05


class NotDrawn(Exception):
    """A figure the records cannot support (the message says why)."""


@dataclass
class Figure:
    fig_id: str  # "fig2", "fig3", "fig4-9:skip", "fig10", "fig11"
    name: str  # file stem
    title: str
    caption: str
    png: bytes
    group: str | None = None  # Group.slug (None: similarity)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    # one layout pass (tight_layout) instead of bbox_inches="tight", which renders twice
    note = getattr(fig, "_painters_note", False)
    fig.tight_layout(rect=(0, 0.06 if note else 0, 1, 1))
    buf = io.BytesIO()
    # no "Software" text chunk (it names the matplotlib version): the same store, the same bytes
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    _plt().close(fig)
    return buf.getvalue()


def _flag_note(g: Group) -> str:
    if not g.flagged:
        return ""
    what = "not plotted, left out of the median" if g.track == "decoder" else \
        "dashed; in the paper's average, not in the findings"
    lower_better = {r.get("task") for r in g.records if r.get("higher_is_better") is False}  # e.g. perplexity

    def reason(t: str) -> str:
        return "no chance level" if t in lower_better else "full model at chance"

    return f"‡ {what}: " + ", ".join(f"{t} ({reason(t)})" for t in g.flagged)


def _reference(ax, g: Group) -> None:
    if g.track == "decoder":
        ax.axhline(1.0, color="0.5", lw=0.8, ls="--")
        ax.axhline(0.0, color="0.7", lw=0.8, ls=":")
    else:
        full = g.full()
        if full is not None and full.headline.mean is not None:
            ax.axhline(full.headline.mean, color="0.5", lw=0.8, ls="--")


def _line(ax, xs, stats, label, bands=None, index: int = 0, of: int = 1, band_color=None, **kw):
    """A line through the means with its band: ``bands`` (a 95% interval per point) where given,
    else ± std where there are several seeds. ``index`` of ``of`` lines picks its marker, dashes and
    small x offset, so lines with equal values stay visible."""
    pts = [(x, s, b) for x, s, b in zip(xs, stats, bands or [None] * len(xs)) if s.mean is not None]
    if not pts:
        return
    shift = (index - (of - 1) / 2) * _OFFSET if of > 1 else 0.0
    x = [p[0] + shift for p in pts]
    m = [p[1].mean for p in pts]
    kw.setdefault("ls", DASHES[index % len(DASHES)])
    (line,) = ax.plot(x, m, marker=MARKERS[index % len(MARKERS)], ms=3.5, label=label, **kw)
    color = band_color or line.get_color()
    if bands and any(p[2] is not None for p in pts):
        keep = [(xx, p[2]) for xx, p in zip(x, pts) if p[2] is not None]
        ax.fill_between([k[0] for k in keep], [k[1][0] for k in keep], [k[1][1] for k in keep], color=color,
                        alpha=MEDIAN_BAND_ALPHA if band_color else 0.15, lw=0)
    elif any(p[1].std is not None for p in pts):
        lo = [p[1].mean - (p[1].std or 0) for p in pts]
        hi = [p[1].mean + (p[1].std or 0) for p in pts]
        ax.fill_between(x, lo, hi, color=color, alpha=0.18, lw=0)


def median_band_rgb() -> tuple[int, int, int]:
    """The median band's colour on a white background, as the PNG holds it (browser tests)."""
    from matplotlib.colors import to_rgb

    return tuple(round(255 * (1 - MEDIAN_BAND_ALPHA + MEDIAN_BAND_ALPHA * c)) for c in to_rgb(MEDIAN_BAND))


def _key(c: Cell) -> tuple:
    return (c.variant, c.n, c.k, c.i)


def _median_line(ax, g: Group, cells: list[Cell], xs, label=None, index=0, of=1, **kw) -> bool:
    """The normalized median over N with its 95% band; False when there are no bands."""
    res = resampled(g)
    bands = [res.band(_key(c)) for c in cells]
    kw = {"lw": 2.4, "color": "black", "band_color": MEDIAN_BAND, **kw} if of == 1 else {"lw": 1.6, **kw}
    _line(ax, xs, [c.relative for c in cells], label or "normalized median", bands, index, of, **kw)
    return any(b is not None for b in bands)


def _task_lines(ax, g: Group, cells: list[Cell], xs) -> None:
    res = resampled(g)
    shown = [t for t in g.tasks if not (t in g.flagged and g.track == "decoder")]
    for i, t in enumerate(shown):
        flagged = t in g.flagged
        stats = [c.task_stat(t) for c in cells]
        bands = [res.task_band(_key(c), t, g.track == "decoder") for c in cells]
        _line(ax, xs, stats, f"{t} ‡" if flagged else t, bands, i, len(shown), lw=1.0, alpha=0.85,
              **({"ls": "--"} if flagged else {}))


def _headline(ax, g: Group, cells: list[Cell], xs) -> None:
    _line(ax, xs, [c.headline for c in cells], g.headline_name, lw=2.4, color="black")


def _finish(ax, fig, g: Group, xlabel: str, title: str) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(g.value_name if g.track == "glue" else "normalized score (1 = full, 0 = chance)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    if len(ax.get_legend_handles_labels()[0]) > 1:  # off the data: to the right of the axes
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, frameon=False)
    _add_note(fig, g)


def _add_note(fig, g: Group) -> None:
    """The ‡ line naming the at-chance benchmarks, once per figure, below the axes."""
    note = _flag_note(g)
    if note and not getattr(fig, "_painters_note", False):
        fig.text(0.01, 0.01, note, fontsize=7, color="firebrick", ha="left", va="bottom", wrap=True)
        fig._painters_note = True


def draw_per_layer(g: Group) -> Figure:
    """Fig. 2: skip_one (layer i left out) and switch (i and i+1 swapped), over i."""
    panels = [(v, sorted((c for c in g.cells.values() if c.variant == v and c.i is not None), key=lambda c: c.i))
              for v in ("skip_one", "switch")]
    panels = [(v, cells) for v, cells in panels if cells]
    if not panels:
        raise NotDrawn("no skip_one / switch records")
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(7.2 * len(panels), 4.2), squeeze=False)
    for ax, (v, cells) in zip(axes[0], panels):
        xs = [c.i for c in cells]
        _reference(ax, g)
        _task_lines(ax, g, cells, xs)
        _headline(ax, g, cells, xs)
        _finish(ax, fig, g, "layer i", f"{v}: " + ("layer i skipped" if v == "skip_one" else "layers i and i+1 switched"))
    fig.suptitle(f"Fig. 2 — {g.title}", fontsize=10)
    return Figure("fig2", f"fig2_{g.slug}", f"Fig. 2: skip one layer / switch adjacent layers — {g.title}",
                  f"Per benchmark ({g.value_name}) and {g.headline_name}, over the layer index.", _png(fig), g.slug)


def draw_similarity(sim: Similarity) -> Figure:
    """Fig. 3: the similarity heatmap with the contiguous groups of ``similarity.segments``."""
    import matplotlib.patches as patches

    if len(sim.matrix) < 2 or any(len(row) != len(sim.matrix) for row in sim.matrix):
        raise NotDrawn(f"{sim.path}: the matrix is not square with two or more boundaries")
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.8, 4.1))
    vmin = min(0.0, min(map(min, sim.matrix)))
    im = ax.imshow(sim.matrix, cmap="viridis", vmin=vmin, vmax=1.0)
    for a, b in sim.groups:
        ax.add_patch(patches.Rectangle((a - 0.5, a - 0.5), b - a + 1, b - a + 1, fill=False, ec="white", lw=1.2))
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("layer boundary (0 = embeddings)")
    ax.set_ylabel("layer boundary")
    ax.set_title(f"Fig. 3 — {sim.model} ({sim.n_tokens} tokens)", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    groups = ", ".join(f"{a}–{b}" for a, b in sim.groups)
    return Figure("fig3", f"fig3_{sim.model}", f"Fig. 3: hidden-state cosine similarity — {sim.model}",
                  f"Cosine similarity between layer boundaries of {sim.model} (plan {sim.plan}); boxed: the "
                  f"contiguous groups {groups}.", _png(fig))


def draw_variant(g: Group, variant: str) -> Figure:
    """Figs. 4–9: one variant over N, per benchmark and summarised."""
    ks = g.ks(variant)
    k = (3 if 3 in ks else ks[0]) if ks else None
    cells = g.series(variant, k)
    if not cells:
        raise NotDrawn(f"no {variant} records")
    if len(cells) < 2:
        raise NotDrawn(f"{variant} has one N only (N={cells[0].n}): a curve needs two")
    plt = _plt()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11.0, 4.0))
    xs = [c.n for c in cells]
    what = variant + (f" (k={k})" if k is not None else "")
    left.axhline(1.0, color="0.5", lw=0.8, ls="--")
    left.axhline(0.0, color="0.7", lw=0.8, ls=":")
    banded = _median_line(left, g, cells, xs)
    if g.track == "glue":
        _headline(right, g, cells, xs)
    _reference(right, g)
    _task_lines(right, g, cells, xs)
    fig_no = PAPER_FIG.get(variant, "4–9")
    _finish(left, fig, g, "N (layers 0..N and T−N..T−1 kept)", f"Fig. {fig_no}-style — {what}: normalized median")
    left.set_ylabel("normalized median (1 = full, 0 = chance)")
    _finish(right, fig, g, "N (layers 0..N and T−N..T−1 kept)", f"per benchmark — {g.title}")
    return Figure(f"fig4-9:{variant}", f"fig_{variant}_{g.slug}", f"{what} over N — {g.title}",
                  f"Left: the normalized median over {', '.join(g.reliable) or 'no benchmark'}; right: per benchmark "
                  f"({g.value_name})" + (f" and the {g.headline_name} (black)" if g.track == "glue" else "") + ". "
                  + _band_caption(g, cells, banded), _png(fig), g.slug)


def _band_caption(g: Group, cells: list[Cell], banded: bool) -> str:
    if banded:
        unit = "evaluation rows and seeds" if g.track == "glue" else "documents"
        return f"Bands: 95% paired bootstrap intervals over {unit}, per N."
    why = resampled(g).missing([_key(c) for c in cells]) or "no normalized median"
    seeds = max(c.headline.seeds for c in cells)
    return f"No 95% bands: {why}." + (f" Band: ± one std over {seeds} seeds." if seeds > 1 else "")


def looped_grid(g: Group):
    """Fig. 10's numbers: {parallel layers: {k: headline}}, k=1 being the parallel variant."""
    T = g.num_layers
    if T is None:
        return {}
    grid: dict[int, dict[int, float]] = {}
    for c in g.cells.values():
        if c.n is None or c.headline.mean is None or c.i is not None:
            continue
        if c.variant == "parallel":
            k = 1
        elif c.variant == "looped_parallel" and c.k is not None:
            k = c.k
        else:
            continue
        grid.setdefault(T - 2 * c.n - 1, {})[k] = c.headline.mean
    return grid


def draw_looped_grid(g: Group) -> Figure:
    """Fig. 10: headline per (layers in parallel, iterations k), the best k of each row boxed."""
    import matplotlib.patches as patches

    grid = looped_grid(g)
    ks = sorted({k for row in grid.values() for k in row})
    if not grid or len(ks) < 2:
        raise NotDrawn("needs parallel / looped_parallel records at two or more k" if g.num_layers else
                       "no full-model record to count the layers")
    rows = sorted(grid)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(5.5, 1.8 + 1.0 * len(ks)), max(3.4, 1.4 + 0.5 * len(rows))))
    import numpy as np

    data = np.full((len(rows), len(ks)), np.nan)
    for r, m in enumerate(rows):
        for c, k in enumerate(ks):
            if k in grid[m]:
                data[r, c] = grid[m][k]
    im = ax.imshow(data, cmap="magma", aspect="auto")
    bands = _grid_bands(g, rows, ks)
    for r, m in enumerate(rows):
        for c, k in enumerate(ks):
            if not np.isnan(data[r, c]):
                band = bands.get((m, k))
                text = f"{data[r, c]:.2f}" + (f"\n[{band[0]:.2f}, {band[1]:.2f}]" if band else "")
                ax.text(c, r, text, ha="center", va="center", fontsize=6,
                        color="white" if data[r, c] < np.nanmean(data) else "black")
        best = max(grid[m], key=grid[m].get)
        ax.add_patch(patches.Rectangle((ks.index(best) - 0.5, r - 0.5), 1, 1, fill=False, ec="cyan", lw=2))
    ax.set_xticks(range(len(ks)), [str(k) for k in ks])
    ax.set_yticks(range(len(rows)), [str(m) for m in rows])
    ax.set_xlabel("iterations k (1 = parallel)")
    ax.set_ylabel("layers in parallel")
    ax.set_title(f"Fig. 10 — {g.headline_name} — {g.title}", fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    _add_note(fig, g)
    return Figure("fig10", f"fig10_{g.slug}", f"Fig. 10: looped parallel grid — {g.title}",
                  f"{g.headline_name} by layers run in parallel (rows) and iterations k (columns); "
                  f"boxed: the best k of each row" + ("; under each value the 95% interval of its normalized "
                                                      "median (paired bootstrap)." if bands else
                                                      "; no intervals (no per-document scores)."), _png(fig), g.slug)


def _grid_bands(g: Group, rows, ks) -> dict:
    """(layers in parallel, k) -> the 95% band of that cell's normalized median."""
    out = {}
    for m in rows:
        n = (g.num_layers - m - 1) // 2
        for k in ks:
            key = ("parallel", n, None, None) if k == 1 else ("looped_parallel", n, k, None)
            band = resampled(g).band(key) if key in g.cells else None
            if band is not None:
                out[(m, k)] = band
    return out


def draw_all_variants(g: Group) -> Figure:
    """Fig. 11: the summary of every variant over N on one plot."""
    lines = []
    for v in N_VARIANTS:
        ks = g.ks(v)
        for k in ks or [None]:
            if v == "looped_parallel" and ks and k != (3 if 3 in ks else ks[0]):
                continue
            cells = [c for c in g.series(v, k) if c.relative.mean is not None]
            if cells:
                lines.append((v + (f" (k={k})" if k is not None else ""), cells))
    if len(lines) < 2:
        raise NotDrawn("fewer than two variants with a normalized median over N")
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8.0, 4.4))
    ax.axhline(1.0, color="0.5", lw=0.8, ls="--")
    ax.axhline(0.0, color="0.7", lw=0.8, ls=":")
    banded = [_median_line(ax, g, cells, [c.n for c in cells], label, i, len(lines))
              for i, (label, cells) in enumerate(lines)]
    _finish(ax, fig, g, "N (layers 0..N and T−N..T−1 kept)", f"Fig. 11 — all variants — {g.title}")
    ax.set_ylabel("normalized median (1 = full, 0 = chance)")
    cells = [c for _, cs in lines for c in cs]
    return Figure("fig11", f"fig11_{g.slug}", f"Fig. 11: all variants — {g.title}",
                  "Normalized median of every variant over N. " + _band_caption(g, cells, any(banded)),
                  _png(fig), g.slug)


def draw_group(g: Group) -> tuple[list[Figure], list[tuple[str, str, str]]]:
    """Every figure of one group; returns (figures, [(figure id, group title, why not drawn)])."""
    figures, missing = [], []
    jobs = [("fig2", lambda: draw_per_layer(g))]
    jobs += [(f"fig4-9:{v}", (lambda v=v: draw_variant(g, v))) for v in N_VARIANTS]
    jobs += [("fig10", lambda: draw_looped_grid(g)), ("fig11", lambda: draw_all_variants(g))]
    for fig_id, job in jobs:
        try:
            figures.append(job())
        except NotDrawn as e:
            missing.append((fig_id, g.title, str(e)))
    return figures, missing


__all__ = ["Figure", "NotDrawn", "draw_group", "draw_similarity", "looped_grid"]
