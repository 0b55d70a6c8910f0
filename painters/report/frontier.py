"""Accuracy vs. latency: each plan of a decoder group placed at its decode ms/token (measured by
``benchmarks/latency.py``) and its normalized median (the group's headline, computed by
``decoder_eval.summary``), with the Pareto-optimal plans marked.

Why a separate join: accuracy comes from the results store (a sweep, any machine), latency from a
benchmark JSON (one machine, one dtype); they meet on the plan text, the one thing both record
exactly. A plan the benchmark ran under several parallel modes (loop, batched) is placed at its
fastest; a cell with several plans (random order, one per seed) at the median of its plans that
were timed.

Which latency file goes with which group: ``reports/latency_<model>_<device>.json`` files whose
``model`` is the group's model. A file given explicitly (``painters report --latency FILE``) whose
model is no group's model is joined with every decoder group (e.g. timings of a random-weight
``smollm2-135m`` shape for the ``smollm2`` records); the plot names the file's model and device.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from glue_painters.errors import UserError
from painters.report.data import Group


@dataclass
class Latency:
    path: Path
    model: str
    device_tag: str
    device_name: str
    dtype: str
    batch: int | None  # the decode batch the ms/token are of (the first of the benchmark's)
    context: int | None
    ms: dict[str, tuple[float, str]]  # plan text -> (decode ms/token, parallel mode it was fastest in)
    explicit: bool = False


@dataclass
class Point:
    label: str
    plans: list[str]
    ms: float
    score: float
    parallel: str
    pareto: bool = False


@dataclass
class Frontier:
    group: Group
    latency: Latency
    points: list[Point] = field(default_factory=list)

    @property
    def pareto(self) -> list[Point]:
        return sorted((p for p in self.points if p.pareto), key=lambda p: p.ms)


def read_latency(path: Path, explicit: bool = False) -> Latency:
    try:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: cannot read a latency report ({e})") from None
    if not isinstance(d, dict) or not isinstance(d.get("rows"), list):
        raise UserError(f"{path}: not a latency report of benchmarks/latency.py (no 'rows')")
    ms: dict[str, tuple[float, str]] = {}
    batch = context = None
    for row in d["rows"]:
        decode = row.get("decode") or []
        if not decode:
            continue
        first = decode[0]
        batch, context = first.get("batch"), first.get("context")
        value = first["ms_per_token"]
        plan = row["plan"]
        if plan not in ms or value < ms[plan][0]:
            ms[plan] = (value, row.get("parallel", "loop"))
    return Latency(Path(path), str(d.get("model", Path(path).stem)), str(d.get("device_tag", d.get("device", "?"))),
                   str(d.get("device_name", "")), str(d.get("dtype", "")), batch, context, ms, explicit)


def load_latencies(folder: Path | None, files: list | None = None) -> list[Latency]:
    """The explicit files, else every ``latency_*.json`` of ``folder`` (the report's output folder)."""
    if files:
        return [read_latency(Path(f), explicit=True) for f in files]
    if folder is None or not Path(folder).is_dir():
        return []
    return [read_latency(p) for p in sorted(Path(folder).glob("latency_*.json"))]


def pairs(groups: list[Group], latencies: list[Latency]) -> list[tuple[Group, Latency]]:
    decoder = [g for g in groups if g.track == "decoder"]
    models = {g.model for g in decoder}
    out = []
    for lat in latencies:
        for g in decoder:
            if lat.model == g.model or (lat.explicit and lat.model not in models):
                out.append((g, lat))
    return out


def mark_pareto(points: list[Point]) -> None:
    """A point is Pareto-optimal if no other is at least as fast and at least as good, and
    strictly better in one of the two."""
    for p in points:
        p.pareto = not any(q is not p and q.ms <= p.ms and q.score >= p.score and (q.ms < p.ms or q.score > p.score)
                           for q in points)


def frontier(g: Group, lat: Latency) -> Frontier:
    """One point per distinct timed plan (set): cells that run the same plan - e.g. reverse, random
    and parallel of a one-layer middle are all the full plan - share a point, labelled by the first
    cell (in the report's order) with a count of the others."""
    by_plans: dict[tuple, list] = {}
    for c in g.cells.values():
        if c.headline.mean is None:
            continue
        timed = tuple(p for p in sorted(str(x) for x in c.plans) if p in lat.ms)
        if timed:
            by_plans.setdefault(timed, []).append(c)
    points = []
    for plans, cells in by_plans.items():
        cells.sort(key=_order)
        ms = statistics.median(lat.ms[p][0] for p in plans)
        modes = "/".join(sorted({lat.ms[p][1] for p in plans}))
        label = cells[0].label + (f" (+{len(cells) - 1} same plan)" if len(cells) > 1 else "")
        points.append(Point(label, list(plans), ms, cells[0].headline.mean, modes))
    mark_pareto(points)
    return Frontier(g, lat, sorted(points, key=lambda p: p.ms))


def _order(c) -> tuple:
    from painters.report.data import SWEEP_ORDER

    base = c.variant if c.variant in SWEEP_ORDER else "~" + c.variant
    return (SWEEP_ORDER.index(base) if base in SWEEP_ORDER else len(SWEEP_ORDER), c.n or 0, c.k or 0, c.i or 0)


def draw_frontier(f: Frontier):
    """The figure: x = decode ms/token, y = normalized median; Pareto-optimal plans ringed and joined."""
    from painters.report.figures import Figure, NotDrawn, _plt, _png

    g, lat = f.group, f.latency
    if len(f.points) < 2:
        raise NotDrawn(f"fewer than two distinct plans of the group were timed in {lat.path.name} "
                       f"({len(lat.ms)} plans there; run benchmarks/latency.py with --plans listing them)")
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.2, 3.9))
    ax.axhline(1.0, color="0.5", lw=0.8, ls="--")
    ax.axhline(0.0, color="0.7", lw=0.8, ls=":")
    others = [p for p in f.points if not p.pareto]
    front = f.pareto
    ax.scatter([p.ms for p in others], [p.score for p in others], s=18, color="0.55", label="plan", zorder=2)
    ax.plot([p.ms for p in front], [p.score for p in front], "-o", color="C3", ms=6, lw=1.2,
            label="Pareto-optimal", zorder=3)
    for p in f.points:
        ax.annotate(p.label + (" (batched)" if p.parallel == "batched" else ""), (p.ms, p.score), fontsize=6,
                    xytext=(3, 3), textcoords="offset points", color="C3" if p.pareto else "0.3")
    ax.set_xlabel(f"decode ms/token (batch {lat.batch}, context {lat.context}; {lat.model} on {lat.device_tag}, "
                  f"{lat.dtype})", fontsize=8)
    ax.set_ylabel(g.headline_name)
    ax.set_title(f"Accuracy vs. latency — {g.title}", fontsize=9)
    ax.margins(x=0.18)  # room for the labels of the slowest plans
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    front_text = "; ".join(f"{p.label} ({p.ms:.2f} ms, {p.score:.2f})" for p in front)
    slug = f"{g.slug}_{lat.model}_{lat.device_tag}".replace("/", "_")
    return Figure("frontier", f"frontier_{slug}", f"Accuracy vs. latency: {g.title} ({lat.device_tag})",
                  f"one point per plan: decode ms/token from {lat.path.name} (fastest parallel mode), "
                  f"{g.headline_name} from the records; Pareto-optimal: {front_text}.", _png(fig), g.slug)
