"""Does our data support the paper's claims? Each claim is a fixed decision rule over numbers.

Why rules rather than prose: a report regenerated from new records must be able to change its
verdicts, and a reader must be able to check them. Every finding is ``supported``,
``not supported`` or ``not enough data`` and carries the numbers that decided it.

All comparisons use ``Cell.relative``: the median over the unflagged benchmarks of
(score − chance) / (full − chance), the seeds' mean for random order (for the decoder this is
exactly the decoder track's normalized median; for GLUE the same normalization of the task
scores, see ``data.py``). Benchmarks where the full model is at chance are never used.

A "majority of N" below means at least ``MAJORITY`` (3/4) of the N values where every variant
compared has a score. N values whose middle is a single layer are left out of the pairwise
comparisons (there reverse, random, middle_repeat, parallel and looped parallel run the same
plan as the full model, so no ordering between them can be observed).

Claims and rules:

(i)    first and last layers differ from a uniform middle — per similarity report: with the three
       contiguous groups of ``similarity.segments``, the middle group holds at least half of the
       boundaries and its mean within-group cosine exceeds its mean cosine with the first group
       and with the last group.
(ii)   middle layers can be skipped with graceful degradation — skip keeps a normalized median
       ≥ ``GRACEFUL_FLOOR`` (0.5) at every N that removes at most ``GRACEFUL_FRACTION`` (1/4) of
       the layers, and ≥ ``GRACEFUL_TOP`` (0.8) at the N that removes the fewest.
(iii)  middle_repeat is the most harmful — middle_repeat has the lowest median among the
       N-variants present (at least two others) at a majority of N.
(iv)   random order beats reverse and skip — random > reverse and random > skip at a majority of N.
(v)    parallel beats skip — parallel > skip at a majority of N.
(vi-a) looping helps parallel — looped_parallel (k=3, else the smallest k > 1) > parallel at a
       majority of N.
(vi-b) the best k grows with the number of parallel layers — over the Fig. 10 grid rows (at least
       ``MIN_ROWS`` rows with two or more k), Spearman's rank correlation between the layers in
       parallel and the row's best k is ≥ ``RHO_MIN`` (0.5).
(vii)  math (GSM8K) and ARC degrade fastest — decoder only: averaged over every N-variant cell
       where all unflagged benchmarks have a score, each of GSM8K / ARC-Easy / ARC-Challenge that
       is not at chance scores below every other unflagged benchmark.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from .data import Cell, Group, Similarity

SUPPORTED, NOT_SUPPORTED, NO_DATA = "supported", "not supported", "not enough data"
MAJORITY = 0.75
GRACEFUL_FLOOR, GRACEFUL_TOP, GRACEFUL_FRACTION = 0.5, 0.8, 0.25
MIN_ROWS, RHO_MIN = 3, 0.5
N_VARIANTS = ("skip", "middle_repeat", "reverse", "random", "parallel", "looped_parallel")
CLAIM_TASKS = ("gsm8k", "arc_easy", "arc_challenge")

CLAIMS = {
    "i": "first and last layers differ from a uniform middle",
    "ii": "middle layers can be skipped with graceful degradation",
    "iii": "middle_repeat is the most harmful variant",
    "iv": "random order beats reverse and skip",
    "v": "parallel beats skip",
    "vi-a": "looping helps parallel",
    "vi-b": "the best k grows with the number of parallel layers",
    "vii": "math (GSM8K) and ARC degrade fastest",
}


@dataclass
class Finding:
    claim: str  # key of CLAIMS
    subject: str  # group title or similarity model
    status: str
    evidence: str  # the numbers that decided it
    numbers: dict = field(default_factory=dict)

    @property
    def text(self) -> str:
        return CLAIMS[self.claim]


def _f(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"


# ---- (i) -----------------------------------------------------------------------------------------------
def similarity_finding(sim: Similarity) -> Finding:
    m, groups = sim.matrix, sim.groups
    if len(groups) != 3 or len(m) < 4:
        return Finding("i", sim.model, NO_DATA, f"{len(groups)} groups over {len(m)} boundaries (needs 3 groups)")
    (a0, a1), (b0, b1), (c0, c1) = groups

    def mean_between(r0, r1, s0, s1, same=False):
        vals = [m[i][j] for i in range(r0, r1 + 1) for j in range(s0, s1 + 1) if not (same and i == j)]
        return statistics.fmean(vals) if vals else None

    within = mean_between(b0, b1, b0, b1, same=True)
    first = mean_between(a0, a1, b0, b1)
    last = mean_between(c0, c1, b0, b1)
    size, total = b1 - b0 + 1, len(m)
    nums = {"groups": groups, "middle_share": size / total, "within_middle": within, "middle_vs_first": first,
            "middle_vs_last": last}
    ev = (f"groups {a0}–{a1} | {b0}–{b1} | {c0}–{c1}: middle holds {size}/{total} boundaries; mean cosine "
          f"within middle {_f(within)}, middle↔first {_f(first)}, middle↔last {_f(last)}")
    if within is None:
        return Finding("i", sim.model, NO_DATA, ev + " (middle group has one boundary)", nums)
    ok = size / total >= 0.5 and within > first and within > last
    return Finding("i", sim.model, SUPPORTED if ok else NOT_SUPPORTED, ev, nums)


# ---- helpers over a group --------------------------------------------------------------------------------
def _middle(g: Group, n: int) -> int | None:
    return None if g.num_layers is None else g.num_layers - 2 * n - 1


def _rel(g: Group, variant: str, k: int | None = None) -> dict[int, float]:
    """N -> relative headline of one variant (looped_parallel at iteration count k)."""
    return {c.n: c.relative.mean for c in g.series(variant, k) if c.relative.mean is not None}


def _missing(g: Group, variants) -> str:
    """Why these variants have no normalized median: no records, or records with no scale."""
    absent = [v for v in variants if not any(c.variant == v for c in g.cells.values())]
    if absent:
        return f"no {', '.join(absent)} records"
    if g.full() is None:
        return f"{', '.join(variants)} records but no full-model record to normalize by"
    if not g.reliable:
        return f"{', '.join(variants)} records, but every benchmark is at chance for the full model (‡)"
    return f"{', '.join(variants)} records miss some of the benchmarks above chance ({', '.join(g.reliable)})"


def _default_k(g: Group) -> int | None:
    ks = [k for k in g.ks("looped_parallel") if k > 1]
    return (3 if 3 in ks else ks[0]) if ks else None


def _comparable(g: Group, *series: dict[int, float]) -> list[int]:
    common = set(series[0])
    for s in series[1:]:
        common &= set(s)
    return sorted(n for n in common if (_middle(g, n) or 2) > 1)


def _beats(g: Group, claim: str, winner: str, losers: list[str], w: dict, ls: list[dict]) -> Finding:
    ns = _comparable(g, w, *ls)
    if not ns:
        return Finding(claim, g.title, NO_DATA, f"no N where {winner} and {', '.join(losers)} all have a score "
                       f"(with a middle of two or more layers)")
    wins = [n for n in ns if all(w[n] > l[n] for l in ls)]
    margins = {lo: statistics.fmean(w[n] - l[n] for n in ns) for lo, l in zip(losers, ls)}
    ev = (f"{winner} higher at {len(wins)}/{len(ns)} N ({', '.join(map(str, ns))}); mean margin " +
          ", ".join(f"vs {lo} {m:+.2f}" for lo, m in margins.items()))
    status = SUPPORTED if len(wins) >= MAJORITY * len(ns) else NOT_SUPPORTED
    return Finding(claim, g.title, status, ev, {"n": ns, "wins": wins, "mean_margin": margins})


# ---- (ii)–(vii) --------------------------------------------------------------------------------------------
def skip_finding(g: Group) -> Finding:
    skip = _rel(g, "skip")
    T = g.num_layers
    if not skip or T is None:
        return Finding("ii", g.title, NO_DATA, _missing(g, ["skip"]) if not skip else "no full-model record (T unknown)")
    frac = {n: (T - 2 * n - 1) / T for n in skip}
    small = sorted((n for n in skip if frac[n] <= GRACEFUL_FRACTION), key=lambda n: frac[n])
    if not small:
        return Finding("ii", g.title, NO_DATA, f"no skip record removing ≤ {GRACEFUL_FRACTION:.0%} of the "
                       f"{T} layers (smallest removes {min(frac.values()):.0%})")
    top = small[0]
    worst = min(small, key=lambda n: skip[n])
    ok = skip[top] >= GRACEFUL_TOP and all(skip[n] >= GRACEFUL_FLOOR for n in small)
    ev = (f"skip median {skip[top]:.2f} with {T - 2 * top - 1}/{T} layers removed (N={top}); lowest "
          f"{skip[worst]:.2f} at N={worst} ({T - 2 * worst - 1}/{T} removed) among N removing ≤ "
          f"{GRACEFUL_FRACTION:.0%}; rule: ≥ {GRACEFUL_TOP} and ≥ {GRACEFUL_FLOOR}")
    return Finding("ii", g.title, SUPPORTED if ok else NOT_SUPPORTED, ev,
                   {"by_n": {n: skip[n] for n in small}, "T": T})


def repeat_finding(g: Group) -> Finding:
    mr = _rel(g, "middle_repeat")
    if not mr:
        return Finding("iii", g.title, NO_DATA, _missing(g, ["middle_repeat"]))
    others = {v: _rel(g, v, _default_k(g) if v == "looped_parallel" else None)
              for v in N_VARIANTS if v != "middle_repeat"}
    others = {v: s for v, s in others.items() if s}
    ns = [n for n in sorted(mr) if (_middle(g, n) or 2) > 1 and sum(n in s for s in others.values()) >= 2]
    if not ns:
        return Finding("iii", g.title, NO_DATA, "no N where middle_repeat and two other variants have a score")
    lowest = [n for n in ns if all(mr[n] < s[n] for s in others.values() if n in s)]
    runner = {n: min((s[n], v) for v, s in others.items() if n in s) for n in ns}
    ev = (f"middle_repeat lowest at {len(lowest)}/{len(ns)} N; " +
          "; ".join(f"N={n}: {mr[n]:.2f} vs next {runner[n][1]} {runner[n][0]:.2f}" for n in ns[:6]) +
          (" …" if len(ns) > 6 else ""))
    status = SUPPORTED if len(lowest) >= MAJORITY * len(ns) else NOT_SUPPORTED
    return Finding("iii", g.title, status, ev, {"n": ns, "lowest": lowest})


def random_finding(g: Group) -> Finding:
    r, rev, sk = _rel(g, "random"), _rel(g, "reverse"), _rel(g, "skip")
    missing = [v for v, s in (("random", r), ("reverse", rev), ("skip", sk)) if not s]
    if missing:
        return Finding("iv", g.title, NO_DATA, _missing(g, missing))
    return _beats(g, "iv", "random", ["reverse", "skip"], r, [rev, sk])


def parallel_finding(g: Group) -> Finding:
    p, sk = _rel(g, "parallel"), _rel(g, "skip")
    missing = [v for v, s in (("parallel", p), ("skip", sk)) if not s]
    if missing:
        return Finding("v", g.title, NO_DATA, _missing(g, missing))
    return _beats(g, "v", "parallel", ["skip"], p, [sk])


def looping_finding(g: Group) -> Finding:
    k = _default_k(g)
    p = _rel(g, "parallel")
    if k is None or not p:
        return Finding("vi-a", g.title, NO_DATA, _missing(g, ["parallel"]) if not p else "no looped_parallel records with k > 1")
    return _beats(g, "vi-a", f"looped_parallel k={k}", ["parallel"], _rel(g, "looped_parallel", k), [p])


def relative_grid(g: Group) -> dict[int, dict[int, float]]:
    """{layers in parallel: {k: relative headline}}, k=1 being the parallel variant."""
    if g.num_layers is None:
        return {}
    grid: dict[int, dict[int, float]] = {}
    for c in g.cells.values():
        if c.n is None or c.i is not None or c.relative.mean is None:
            continue
        k = 1 if c.variant == "parallel" else c.k if c.variant == "looped_parallel" else None
        if k is not None:
            grid.setdefault(g.num_layers - 2 * c.n - 1, {})[k] = c.relative.mean
    return grid


def best_k_finding(g: Group) -> Finding:
    from scipy.stats import spearmanr

    grid = {m: row for m, row in relative_grid(g).items() if len(row) >= 2 and m > 1}
    if len(grid) < MIN_ROWS:
        have = [v for v in ("parallel", "looped_parallel") if any(c.variant == v for c in g.cells.values())]
        why = "" if grid or not have else f"; {_missing(g, have)}"
        return Finding("vi-b", g.title, NO_DATA, f"{len(grid)} grid row(s) with two or more k "
                       f"(needs {MIN_ROWS}; parallel counts as k=1){why}")
    rows = sorted(grid)
    best = {m: max(grid[m], key=grid[m].get) for m in rows}
    ev = "best k by layers in parallel: " + ", ".join(f"{m}→{best[m]}" for m in rows)
    if len(set(best.values())) == 1:
        return Finding("vi-b", g.title, NOT_SUPPORTED, ev + f" (the same k in every row)", {"best": best, "rho": None})
    rho = float(spearmanr(rows, [best[m] for m in rows]).statistic)
    ev += f"; Spearman ρ = {rho:+.2f} (rule: ≥ {RHO_MIN})"
    return Finding("vi-b", g.title, SUPPORTED if rho >= RHO_MIN else NOT_SUPPORTED, ev, {"best": best, "rho": rho})


def _cells_all_tasks(g: Group) -> list[Cell]:
    return [c for c in g.cells.values() if c.variant in N_VARIANTS
            and all(c.per_task.get(t) for t in g.reliable)]


def task_finding(g: Group) -> Finding:
    claimed = [t for t in CLAIM_TASKS if t in g.tasks]
    at_chance = [t for t in claimed if t in g.flagged]
    judged = [t for t in claimed if t not in g.flagged]
    others = [t for t in g.reliable if t not in CLAIM_TASKS]
    note = (" (not judged: " + "; ".join(f"{t}: {g.flagged[t]}" for t in at_chance) + ")") if at_chance else ""
    if not judged or not others:
        why = "no GSM8K/ARC benchmark with a normalized score" if not judged else \
            "no other benchmark with a normalized score"
        return Finding("vii", g.title, NO_DATA, why + note)
    cells = _cells_all_tasks(g)
    if not cells:
        return Finding("vii", g.title, NO_DATA, "no N-variant cell with every benchmark scored" + note)
    mean = {t: statistics.fmean(c.task_stat(t).mean for c in cells) for t in g.reliable}
    ok = max(mean[t] for t in judged) < min(mean[t] for t in others)
    ranked = sorted(g.reliable, key=mean.get)
    ev = (f"mean normalized score over {len(cells)} variant×N cells: " +
          ", ".join(f"{t} {mean[t]:.2f}" for t in ranked) + note)
    return Finding("vii", g.title, SUPPORTED if ok else NOT_SUPPORTED, ev, {"mean": mean, "judged": judged})


def group_findings(g: Group) -> list[Finding]:
    out = [skip_finding(g), repeat_finding(g), random_finding(g), parallel_finding(g), looping_finding(g),
           best_k_finding(g)]
    if g.track == "decoder":
        out.append(task_finding(g))
    return out


def all_findings(groups: list[Group], sims: list[Similarity]) -> list[Finding]:
    out = [similarity_finding(s) for s in sims]
    if not sims:
        out.append(Finding("i", "—", NO_DATA, "no similarity_*.json report"))
    for g in groups:
        out += group_findings(g)
    order = list(CLAIMS)
    return sorted(out, key=lambda f: order.index(f.claim))


def markdown_table(findings: list[Finding]) -> str:
    lines = ["| claim | subject | verdict | numbers |", "|---|---|---|---|"]
    for f in findings:
        lines.append(f"| ({f.claim}) {f.text} | {f.subject} | **{f.status}** | {f.evidence.replace('|', '/')} |")
    return "\n".join(lines)
