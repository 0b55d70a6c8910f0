"""Does our data support the paper's claims? Each claim is an effect with a paired interval.

Why intervals rather than counts of wins: every plan is scored on the same documents, so a
difference of a few documents between two plans is noise unless the documents say otherwise. Each
claim (ii)–(vii) is turned into one number, its *effect* (positive = the claim's direction), and
that number is recomputed on bootstrap resamples of the documents and seeds (GLUE: evaluation
rows and training seeds; ``paired.py``). The **verdict rule** (``verdict.RULE``, one function for
every claim, ``stats.verdict``): with the claim's smallest effect of interest δ
(``verdict.SESOI``), **supported** when the interval, Bonferroni-adjusted over the claims of the
report that have one, lies above zero and the estimate reaches δ; **negligible** when it lies
inside ±δ; **contradicted** when it lies below zero and the estimate reaches −δ; otherwise
**inconclusive**, with the documents that would decide it if the observed effect were the true one
(``stats.docs_needed``, 80% power) and whether the full benchmarks could (``stats.outlook``). A
claim whose records carry no per-document scores is inconclusive and says so; one with no
records to compare is ``not enough data``. Claim (i) is a property of one similarity matrix, not a
comparison of plans; its effect is resampled over the documents of the similarity text (each
report keeps every document's sums, ``similarity.py``) and decided by the same rule.

**The verdict is on the quantity the claim names, and so is the pattern.** Each effect below is
computed twice: from the tables' numbers (``Cell.relative``, the mean over seeds of the per-seed
normalized median) for the *pattern* column (``holds`` when it reaches δ), and on the resamples
for the interval (``paired.Resampled.rel``, the same definition). Counts such as "higher at 5/7 N"
are evidence only; they decide nothing.

**Minima.** A claim that something beats *every* rival (every N, both thresholds, ...) has as its
effect the smallest of its components, each a smooth statistic of the cells; its interval comes
from the components (``stats.effect_interval``: valid where components nearly tie, as a
percentile interval of a resampled minimum is not).

All comparisons use the normalized score (score − chance) / (full − chance) over the unflagged
benchmarks. Benchmarks where the full model is at chance are never used. N values whose middle is
a single layer are left out of the pairwise comparisons (there reverse, random, middle_repeat,
parallel and looped parallel run the same plan as the full model, so no ordering between them can
be observed).

Claims and their effects (components of a minimum in brackets):

(i)    first and last layers differ from a uniform middle — per similarity report: with the three
       contiguous groups of ``similarity.middle_groups`` (least within-group scatter, the middle
       holding at least half of the boundaries): min[within − first, within − last], the middle's
       mean within-group cosine over its mean cosine with each end (groups fixed at the observed
       matrix's). δ on the cosine scale.
(ii)   middle layers can be skipped with graceful degradation — skip's normalized median over the
       thresholds at every N that removes at most ``GRACEFUL_FRACTION`` (1/4) of the layers:
       min[skip − ``GRACEFUL_TOP`` (0.8) at the N that removes the fewest, skip −
       ``GRACEFUL_FLOOR`` (0.5) at each other such N].
(iii)  middle_repeat is the most harmful — over the N where middle_repeat and at least two other
       N-variants are present: min over the other variants [mean over N of (variant −
       middle_repeat)] (middle_repeat below every other variant on average over N).
(iv)   random order beats reverse and skip — min[mean over N of (random − reverse), mean over N of
       (random − skip)].
(v)    parallel beats skip — mean over N of (parallel − skip).
(vi-a) looping helps parallel — mean over N of (looped_parallel − parallel) (k=3, else the
       smallest k > 1).
(vi-b) the best k grows with the number of parallel layers — over the Fig. 10 grid rows (at least
       ``MIN_ROWS`` rows with two or more k), Spearman's rank correlation between the layers in
       parallel and the row's best k (0 when the best k is the same in every row); δ on the
       correlation scale (0.5, the paper-reading rule ``RHO_MIN``, overridable as its δ). A
       statistic of argmaxes, bounded and often at its bound: its interval is the percentile one.
(vii)  math (GSM8K) and ARC degrade fastest — decoder only: averaged over every N-variant cell
       where all unflagged benchmarks have a score: min over (other benchmark, GSM8K / ARC-Easy /
       ARC-Challenge not at chance) of (the other's mean normalized score − GSM8K's / ARC's).
"""

from __future__ import annotations

import statistics

import numpy as np

from painters.report.data import Cell, Group
from painters.report.paired import Resampled, resampled
from painters.report.similarity_claim import Similarity, similarity_finding
from painters.report.verdict import (CLAIMS, INCONCLUSIVE, NO_DATA, SESOI, Finding, Refused, adjusted_level, decide,
                                    pattern)

GRACEFUL_FLOOR, GRACEFUL_TOP, GRACEFUL_FRACTION = 0.5, 0.8, 0.25
MIN_ROWS, RHO_MIN = 3, SESOI["correlation"]
N_VARIANTS = ("skip", "middle_repeat", "reverse", "random", "parallel", "looped_parallel")
CLAIM_TASKS = ("gsm8k", "arc_easy", "arc_challenge")

def _judge(f: Finding, g: Group, keys, effect, point: float, bounds=None, method: str = "basic") -> Finding:
    """``f`` with its pattern (``point``, the effect from the tables' numbers, against δ) and its
    measure: ``effect(resampled)``, the effect's components over the cells ``keys``, made once
    the report's level is known (``verdict.decide``; here at 95%, for a claim asked on its own)."""
    if f.status == NO_DATA:
        return f
    f.point, f.status = point, INCONCLUSIVE
    f.pattern = pattern(point, SESOI[f.scale])
    res = resampled(g)  # which cells can be compared: no resampling yet
    why = res.missing(list(keys))
    if why:
        f.evidence = f"{why}; {f.evidence}"
        return f
    f.units, f.seeds, f.available, f.bounds, f.method = res.docs, res.seed_text(keys), res.full_docs, bounds, method
    f.unit_name = "evaluation rows" if g.track == "glue" else "documents"
    if g.track == "decoder":
        f.cpu_seconds = _cpu_seconds(g, [*keys, res.full], res.reliable)

    def measure(resamples: int, level: float) -> np.ndarray:
        r = resampled(g, resamples)
        refused = r.denominators(level)
        if refused:
            raise Refused("normalization refused: " + "; ".join(
                f"{t}: the full model's margin over chance {iv.text(3)} reaches zero at {level:.2%}"
                for t, iv in refused.items()))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.stack([np.asarray(c, dtype=float) for c in effect(r)], axis=1)

    f.measure = measure
    return decide(f)  # at 95%; ``all_findings`` decides again at the report's adjusted level


def _cpu_seconds(g: Group, keys, tasks) -> float | None:
    """CPU-seconds the records of ``keys`` on ``tasks`` took (each record's share of its pass,
    ``timing.seconds_per_plan``, times the threads it ran on); None when one lacks timing.

    Why only the decoder: its cost grows with the documents scored, so a rate per document says
    what more documents would cost; a GLUE run's cost is its training, not its evaluation rows."""
    total = 0.0
    for key in dict.fromkeys(keys):
        for r in g.cells[key].records if key in g.cells else []:
            if r.get("task") not in tasks:
                continue
            seconds = (r.get("timing") or {}).get("seconds_per_plan")
            if seconds is None:
                return None
            total += seconds * ((r.get("versions") or {}).get("threads") or 1)
    return total or None


def _key(variant: str, n: int, k: int | None = None) -> tuple:
    return (variant, n, k if variant == "looped_parallel" else None, None)


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


def _beats(g: Group, claim: str, winner: str, losers: list[str], w: dict, ls: list[dict], keys=None) -> Finding:
    """``winner`` beats every one of ``losers``: the effect is the smallest over losers of the mean
    margin over the comparable N (each loser one component). ``keys``: N -> cell key, for the
    winner then each loser (default: the variants' own cells)."""
    ns = _comparable(g, w, *ls)
    if not ns:
        return Finding(claim, g.title, NO_DATA, f"no N where {winner} and {', '.join(losers)} all have a score "
                       f"(with a middle of two or more layers)")
    wins = [n for n in ns if all(w[n] > l[n] for l in ls)]
    margins = {lo: statistics.fmean(w[n] - l[n] for n in ns) for lo, l in zip(losers, ls)}
    ev = (f"{winner} higher at {len(wins)}/{len(ns)} N ({', '.join(map(str, ns))}); mean margin over N " +
          ", ".join(f"vs {lo} {m:+.2f}" for lo, m in margins.items()))
    f = Finding(claim, g.title, INCONCLUSIVE, ev, {"n": ns, "wins": wins, "mean_margin": margins})
    keys = keys or [lambda n, v=v: _key(v, n) for v in [winner] + losers]
    cells = [kf(n) for kf in keys for n in ns]

    def effect(res: Resampled):
        return [np.mean([res.rel(keys[0](n)) - res.rel(lk(n)) for n in ns], axis=0) for lk in keys[1:]]

    return _judge(f, g, cells, effect, min(margins.values()))


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
    margin = {n: skip[n] - (GRACEFUL_TOP if n == top else GRACEFUL_FLOOR) for n in small}
    ev = (f"skip median {skip[top]:.2f} with {T - 2 * top - 1}/{T} layers removed (N={top}); lowest "
          f"{skip[worst]:.2f} at N={worst} ({T - 2 * worst - 1}/{T} removed) among N removing ≤ "
          f"{GRACEFUL_FRACTION:.0%}; rule: ≥ {GRACEFUL_TOP} and ≥ {GRACEFUL_FLOOR}")
    f = Finding("ii", g.title, INCONCLUSIVE, ev, {"by_n": {n: skip[n] for n in small}, "T": T})

    def effect(res: Resampled):  # the margin over the threshold at each N (the effect: the smallest)
        return [res.rel(_key("skip", n)) - (GRACEFUL_TOP if n == top else GRACEFUL_FLOOR) for n in small]

    return _judge(f, g, [_key("skip", n) for n in small], effect, min(margin.values()))


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
    over = {v: [n for n in ns if n in s] for v, s in others.items()}
    over = {v: n_list for v, n_list in over.items() if n_list}
    margins = {v: statistics.fmean(others[v][n] - mr[n] for n in n_list) for v, n_list in over.items()}
    ev = (f"middle_repeat lowest at {len(lowest)}/{len(ns)} N; mean margin over N " +
          ", ".join(f"{v} {m:+.2f}" for v, m in margins.items()) + "; " +
          "; ".join(f"N={n}: {mr[n]:.2f} vs next {runner[n][1]} {runner[n][0]:.2f}" for n in ns[:6]) +
          (" …" if len(ns) > 6 else ""))
    f = Finding("iii", g.title, INCONCLUSIVE, ev, {"n": ns, "lowest": lowest, "mean_margin": margins})
    k = _default_k(g)

    def effect(res: Resampled):  # per rival: its mean margin over middle_repeat (the effect: the smallest)
        return [np.mean([res.rel(_key(v, n, k)) - res.rel(_key("middle_repeat", n)) for n in n_list], axis=0)
                for v, n_list in over.items()]

    cells = [_key("middle_repeat", n) for n in ns] + [_key(v, n, k) for v, n_list in over.items() for n in n_list]
    return _judge(f, g, cells, effect, min(margins.values()))


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
    return _beats(g, "vi-a", f"looped_parallel k={k}", ["parallel"], _rel(g, "looped_parallel", k), [p],
                  keys=[lambda n: _key("looped_parallel", n, k), lambda n: _key("parallel", n)])


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
        scaled = all(c.relative.mean is not None for c in g.cells.values() if c.variant in have)
        why = "" if grid or not have or scaled else f"; {_missing(g, have)}"
        T = g.num_layers
        most = None if T is None else sum(1 for n in range(T) if T - 2 * n - 1 > 1)  # rows a T-layer model has
        if most is not None and most < MIN_ROWS:
            why += f"; a {T}-layer model has only {most} (this model cannot decide it)"
        return Finding("vi-b", g.title, NO_DATA, f"{len(grid)} grid row(s) with two or more k "
                       f"(needs {MIN_ROWS}; parallel counts as k=1){why}")
    rows = sorted(grid)
    best = {m: max(grid[m], key=grid[m].get) for m in rows}
    ev = "best k by layers in parallel: " + ", ".join(f"{m}→{best[m]}" for m in rows)
    if len(set(best.values())) == 1:
        rho = None
        f = Finding("vi-b", g.title, INCONCLUSIVE, ev + " (the same k in every row: ρ taken as 0)", {"best": best, "rho": None})
    else:
        rho = float(spearmanr(rows, [best[m] for m in rows]).statistic)
        ev += f"; Spearman ρ = {rho:+.2f}"
        f = Finding("vi-b", g.title, INCONCLUSIVE, ev, {"best": best, "rho": rho})
    T = g.num_layers
    cells = {m: {k: (_key("parallel", (T - m - 1) // 2) if k == 1 else _key("looped_parallel", (T - m - 1) // 2, k))
                 for k in sorted(grid[m])} for m in rows}
    return _judge(f, g, [c for row in cells.values() for c in row.values()], lambda res: [_best_k_rho(res, rows, cells)],
                  rho or 0.0, bounds=(-1.0, 1.0), method="percentile")


def _best_k_rho(res: Resampled, rows: list[int], cells: dict) -> np.ndarray:
    """Spearman's ρ between the layers in parallel and each row's best k, per resample (0 where
    the best k is the same in every row: no growth)."""
    from scipy.stats import rankdata

    best = np.stack([np.asarray(list(cells[m]))[np.argmax(np.stack([res.rel(c) for c in cells[m].values()], axis=1),
                                                           axis=1)] for m in rows], axis=1).astype(float)
    rk = rankdata(best, axis=1)
    rr = rankdata(np.asarray(rows, dtype=float))
    dx, dy = rk - rk.mean(axis=1, keepdims=True), rr - rr.mean()
    den = np.sqrt((dx ** 2).sum(axis=1) * (dy ** 2).sum())
    return np.where(den > 0, (dx * dy).sum(axis=1) / np.where(den > 0, den, 1), 0.0)


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
    ranked = sorted(g.reliable, key=mean.get)
    ev = (f"mean normalized score over {len(cells)} variant×N cells: " +
          ", ".join(f"{t} {mean[t]:.2f}" for t in ranked) + note)
    f = Finding("vii", g.title, INCONCLUSIVE, ev, {"mean": mean, "judged": judged})
    keys = [(c.variant, c.n, c.k, c.i) for c in cells]

    def effect(res: Resampled):  # each other benchmark's mean minus each of GSM8K / ARC's (the effect: the smallest)
        m = {t: np.mean([res.norm(k, t) for k in keys], axis=0) for t in g.reliable}
        return [m[o] - m[j] for o in others for j in judged]

    return _judge(f, g, keys, effect, min(mean[o] for o in others) - max(mean[j] for j in judged))


def group_findings(g: Group) -> list[Finding]:
    judged, note = judged_group(g)
    out = [skip_finding(judged), repeat_finding(judged), random_finding(judged), parallel_finding(judged),
           looping_finding(judged), best_k_finding(judged)]
    if g.track == "decoder":
        out.append(task_finding(judged))
    for f in out:
        f.subject = g.title
        if note:
            f.evidence = f"{note}; {f.evidence}"
    return out


def judged_group(g: Group) -> tuple[Group, str]:
    """The group claims (ii)–(vii) are judged on: only the benchmarks above chance that every
    N-variant cell ran, and a note naming the ones left out ("" when none is).

    Why: a sweep may run the variants on fewer benchmarks than the full model (MiniLM's
    fine-tunes: the variants on STS-B, the full model on CoLA too). Requiring every benchmark
    left each claim with no data; a median over different benchmarks for different plans would
    compare unlike things. The group is rebuilt from its records on the kept benchmarks, so the
    pattern and the interval use the same ones."""
    from painters.report.data import decoder_groups, glue_groups

    cells = [c for c in g.cells.values() if c.variant in N_VARIANTS]
    if not cells:
        return g, ""
    ran = set.intersection(*({r.get("task") for r in c.records} for c in cells))
    left = [t for t in g.reliable if t not in ran]
    if not left or len(left) == len(g.reliable):
        return g, ""
    records = [r for c in g.cells.values() for r in c.records]
    rebuilt = (glue_groups if g.track == "glue" else decoder_groups)(records, [t for t in g.tasks if t not in left])
    if len(rebuilt) != 1:
        raise AssertionError(f"{g.title}: its records on fewer benchmarks made {len(rebuilt)} groups, not one")
    kept = [t for t in g.reliable if t not in left]
    return rebuilt[0], f"judged on {', '.join(kept)} only ({', '.join(left)}: not run for the variants)"


def all_findings(groups: list[Group], sims: list[Similarity], sesoi: dict | None = None) -> list[Finding]:
    """Every finding, its verdict decided at the Bonferroni-adjusted level of the report (``level``),
    with the smallest effects of interest ``sesoi`` (``verdict.parse_sesoi``; None: the defaults)."""
    out = [similarity_finding(s) for s in sims]
    if not sims:
        out.append(Finding("i", "—", NO_DATA, "no similarity_*.json report"))
    for g in groups:
        out += group_findings(g)
    level = adjusted_level(out)
    for f in out:
        decide(f, level, sesoi)
    order = list(CLAIMS)
    return sorted(out, key=lambda f: order.index(f.claim))


