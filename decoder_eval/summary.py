"""The paper's normalized score and median, with DESIGN.md's guard against chance-level tasks.

normalized = (score - chance) / (full - chance), per benchmark on its primary metric (an
accuracy: a mean of 0/1 item scores); the summary of a plan is the median over benchmarks. The
ratio only means something where the full model is clearly above chance: a benchmark where the
full model's margin over chance is not more than ``FACTOR`` (3) times its standard error is
**flagged** (‡) in every table, shown as its raw score in parentheses, and left out of the
median. Each table says which benchmarks were left out and why.

The standard error used here is the larger of two: the Agresti-Coull error of the full model's
accuracy, sqrt(p~(1-p~)/(n+4)) with p~ = (correct+2)/(n+4), and the error of guessing,
sqrt(c(1-c)/n) for chance level c. Not the plain sample error lm-eval reports (it is kept in
every record too): that one is 0 when every item is right, and would wave a 2-item subset through.
A task whose primary metric is lower-is-better (a perplexity: the record says
``higher_is_better: false``) has no chance level to normalize by and is flagged the same way.

Random-order plans are summarised over their seeds: per benchmark the mean of the seeds'
normalized scores, and for the median the mean ± standard deviation of the per-seed medians.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field

from glue_painters.variants import VARIANTS

FACTOR = 3.0


@dataclass
class Reliability:
    task: str
    full: float | None
    chance: float | None
    stderr: float | None
    ok: bool
    note: str = ""

    @property
    def why(self) -> str:
        if self.note:
            return self.note
        if self.full is None:
            return "no full-model record"
        if self.stderr is None:
            return "no standard error"
        return f"full {self.full:.3f} vs chance {self.chance:.3f}, margin {self.full - self.chance:+.3f} " \
               f"≤ {FACTOR:g}×SE ({self.stderr:.3f})"


@dataclass
class SummaryRow:
    variant: str
    n: int | None
    k: int | None
    label: str
    seeds: int
    median: float | None
    median_std: float | None
    scores: dict[str, float | None] = field(default_factory=dict)  # normalized (reliable tasks)
    raw: dict[str, float | None] = field(default_factory=dict)  # primary metric, mean over seeds
    plan: str = ""  # the plan text (random: one per permutation seed, so their count)
    stderr: dict[str, float | None] = field(default_factory=dict)  # of ``raw``: the records' stderr, combined


@dataclass
class Summary:
    tasks: list[str]
    primary: dict[str, str]
    reliability: dict[str, Reliability]
    rows: list[SummaryRow]
    subset: dict[str, dict]

    @property
    def flagged(self) -> list[str]:
        return [t for t in self.tasks if not self.reliability[t].ok]


def accuracy_stderr(p: float, n: int, chance: float = 0.0) -> float:
    """Standard error for the chance test: max(Agresti-Coull error of accuracy ``p`` over ``n``
    items, error of guessing at ``chance``). Never 0."""
    p_adj = (p * n + 2) / (n + 4)
    return max(math.sqrt(p_adj * (1 - p_adj) / (n + 4)), math.sqrt(chance * (1 - chance) / n))


def reliability(task: str, full_record: dict | None) -> Reliability:
    if full_record is None:
        return Reliability(task, None, None, None, False)
    primary = full_record["primary_metric"]
    full, chance = full_record["metrics"][primary], full_record["chance"]
    if full_record.get("higher_is_better") is False:  # e.g. a perplexity: no chance level to normalize by
        return Reliability(task, full, chance, None, False, f"{primary}: lower is better, no chance level")
    se = accuracy_stderr(full, full_record["n"], chance)
    return Reliability(task, full, chance, se, (full - chance) > FACTOR * se)


def _row_key(rec: dict) -> tuple:
    p = rec.get("params") or {}
    block = (p["j"], p.get("times", 2)) if "j" in p else None  # duplicate's block end and run count
    return rec["variant"], p.get("n"), p.get("k"), p.get("i"), p.get("plan"), block


def _label(variant, n, k, i, plan, block=None) -> str:
    bits = [variant]
    if plan:
        bits.append(plan)
    if i is not None:
        bits.append(f"i={i}")
    if block is not None:
        bits.append(f"j={block[0]}" + (f" ×{block[1]}" if block[1] != 2 else ""))
    return " ".join(bits)


def summarize(records: list[dict], tasks: list[str] | None = None) -> Summary:
    """Build the table for one model's records (one subset per task; see ``group_records``)."""
    tasks = tasks or sorted({r["task"] for r in records})
    full = {r["task"]: r for r in records if r["variant"] == "full"}
    rel = {t: reliability(t, full.get(t)) for t in tasks}
    primary = {t: full[t]["primary_metric"] if t in full else
               next((r["primary_metric"] for r in records if r["task"] == t), "?") for t in tasks}
    groups: dict[tuple, dict] = defaultdict(lambda: defaultdict(dict))  # row key -> seed -> task -> rec
    for r in records:
        if r["task"] in rel:
            groups[_row_key(r)][(r.get("params") or {}).get("seed")][r["task"]] = r
    order = {name: i for i, name in enumerate(VARIANTS)}
    rows = []
    for key in sorted(groups, key=lambda k: (order.get(k[0], 99), k[0], k[1] if k[1] is not None else -1,
                                             k[2] or 0, k[3] if k[3] is not None else -1, k[4] or "", k[5] or ())):
        variant, n, k, i, plan, block = key
        by_seed = groups[key]
        norm: dict[str, list[float]] = defaultdict(list)
        raw: dict[str, list[float]] = defaultdict(list)
        errors: dict[str, list[float | None]] = defaultdict(list)
        plans = {r["plan"]["text"] if isinstance(r.get("plan"), dict) else str(r.get("plan"))
                 for recs in by_seed.values() for r in recs.values()}
        medians = []
        for seed_records in by_seed.values():
            seed_norm = []
            for t in tasks:
                rec = seed_records.get(t)
                if rec is None:
                    continue
                score = rec["metrics"][rec["primary_metric"]]
                raw[t].append(score)
                errors[t].append((rec.get("stderr") or {}).get(rec["primary_metric"]))
                info = rel[t]
                if info.ok:
                    value = (score - info.chance) / (info.full - info.chance)
                    norm[t].append(value)
                    seed_norm.append(value)
            if seed_norm and all(t in seed_records for t in tasks if rel[t].ok):
                medians.append(statistics.median(seed_norm))
        rows.append(SummaryRow(
            variant, n, k, _label(variant, n, k, i, plan, block), len(by_seed),
            statistics.mean(medians) if medians else None,
            statistics.stdev(medians) if len(medians) > 1 else None,
            {t: statistics.mean(norm[t]) if norm[t] else None for t in tasks},
            {t: statistics.mean(raw[t]) if raw[t] else None for t in tasks},
            next(iter(plans)) if len(plans) == 1 else f"{len(plans)} plans", {t: _mean_se(errors[t]) for t in tasks}))
    subset = {t: full[t]["key"]["subset"] if t in full else None for t in tasks}
    return Summary(tasks, primary, rel, rows, subset)


def group_records(records: list[dict]) -> dict[tuple, list[dict]]:
    """Split a store's records into tables: one per (model, weights, dtype, healing, scoring
    version), and within it, per task, the subset (data + limit) that most records use.

    The healing slot is the healing settings (the key's ``heal``: steps, lr, rank, corpus, ...) for
    healed records, ``false`` for unhealed ones: two adapters of one plan trained with other
    settings are two recipes, never two seeds of one row (``glue_painters.recipes``)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in records:
        k = r["key"]
        healing = json.dumps(k.get("heal") if k.get("healed") and k.get("heal") else k.get("healed"), sort_keys=True)
        groups[(r.get("model", k["model"]), k["model"], k.get("dtype"), healing, k.get("code"))].append(r)
    out = {}
    for gkey, recs in groups.items():
        per_task: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for r in recs:
            per_task[r["task"]][json.dumps(r["key"]["subset"], sort_keys=True)] += 1
        chosen = {t: max(c, key=lambda s: (c[s], json.loads(s).get("n", 0))) for t, c in per_task.items()}
        out[gkey] = [r for r in recs if json.dumps(r["key"]["subset"], sort_keys=True) == chosen[r["task"]]]
    return out


def _mean_se(errors: list) -> float | None:
    """Standard error of a mean of independent estimates with these errors (None if one is unknown)."""
    if not errors or any(e is None for e in errors):
        return None
    return math.sqrt(sum(e * e for e in errors)) / len(errors)


def _fmt(x: float | None, std: float | None = None) -> str:
    if x is None:
        return "–"
    return f"{x:.2f}" if std is None else f"{x:.2f}±{std:.2f}"


def render(summary: Summary, raw: bool = False) -> str:
    """Markdown table: variant × N (× k) → normalized median and per-task normalized scores
    (flagged tasks: raw score in parentheses). ``raw=True`` gives the raw primary scores."""
    flagged = set(summary.flagged)
    heads = [f"{t} ‡" if t in flagged else t for t in summary.tasks]
    lines = ["| variant | N | k | seeds | plan | " + ("median (norm.)" if not raw else "") + " | " + " | ".join(heads) + " |",
             "|---|---:|---:|---:|---|---:|" + "---:|" * len(summary.tasks)]
    for row in summary.rows:
        cells = []
        for t in summary.tasks:
            se = row.stderr.get(t)
            if raw:
                cells.append(_fmt(row.raw.get(t), se))
            elif t in flagged:
                cells.append(f"({_fmt(row.raw.get(t))})")
            else:
                info = summary.reliability[t]
                cells.append(_fmt(row.scores.get(t), None if se is None else se / (info.full - info.chance)))
        median = "" if raw else _fmt(row.median, row.median_std)
        plan = row.plan if len(row.plan) <= 40 else row.plan[:37] + "…"
        lines.append(f"| {row.label} | {'' if row.n is None else row.n} | {'' if row.k is None else row.k} | "
                     f"{row.seeds if row.seeds > 1 else ''} | `{plan}` | {median} | " + " | ".join(cells) + " |")
    lines.append("")
    used = [t for t in summary.tasks if t not in flagged]
    prim = ", ".join(f"{t}: {summary.primary[t]}" for t in summary.tasks)
    if raw:
        lines.append(f"Raw primary metric per task ({prim}), ± its standard error (lm-eval's, over documents; "
                     f"for several seeds the error of their mean).")
    else:
        lines.append(f"Normalized score = (score − chance) / (full − chance) on each task's primary metric ({prim}), "
                     f"± its standard error over documents; median over {', '.join(used) if used else 'no task'} "
                     f"(± the spread over permutation seeds). Differences between plans: `painters report` gives "
                     f"paired intervals.")
    for t in summary.tasks:
        if t in flagged:
            lines.append(f"‡ {t}: {summary.reliability[t].why}: normalized score not computed, raw score in "
                         f"parentheses, left out of the median.")
    return "\n".join(lines)
