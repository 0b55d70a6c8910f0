"""The decoder track's held-out split: a task's documents cut into a scan part and a held-out part
before anything is scored, the scan's winners picked from the scan records, and their re-estimate
on the held-out part (the split and the rule: ``glue_painters.holdout``).

A sweep with ``holdout: {fraction: 0.3, seed: 0}`` scores every row on each task's scan part,
then the full model, each task's best plan and the best plan across tasks on that task's held-out
part. Each part is its own ``DocumentPart``: the task's items at those positions, with a record
key whose ``subset`` names the part (``selection``), so held-out and scan records of one plan are
two records that no summary pools.
"""

from __future__ import annotations

from dataclasses import dataclass

from glue_painters.errors import UserError
from glue_painters.holdout import Pick, check_fraction, part_of, pick, selection, split_documents
from glue_painters.variants import VariantSpec

from .summary import reliability


def read_holdout(v, where) -> dict | None:
    """``holdout:``: a bare fraction, or ``{fraction: F, seed: S}`` (seed 0 by default)."""
    if v is None:
        return None
    if isinstance(v, dict):
        unknown = sorted(map(str, set(v) - {"fraction", "seed"}))
        if unknown or "fraction" not in v:
            raise UserError(f"{where} is a fraction or {{fraction: F, seed: S}}, got {v!r}")
        seed = v.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise UserError(f"{where}: seed must be a non-negative integer, got {seed!r}")
        return {"fraction": check_fraction(v["fraction"], where), "seed": seed}
    return {"fraction": check_fraction(v, where), "seed": 0}


@dataclass
class DocumentPart:
    """One part of a task's evaluated documents: what the evaluator needs of a ``TaskData``
    (``task``, ``items``, ``subset``). ``subset`` is the whole set's plus ``selection``."""

    task: object
    items: list
    subset: dict


def split_task(data, fraction: float, seed: int, where: str = "") -> dict[str, DocumentPart]:
    """``{"scan": part, "holdout": part}`` of one task's loaded data."""
    try:
        scan, held = split_documents(len(data.items), fraction, seed)
    except UserError as e:
        raise UserError(f"{where}{data.task.name}: {e}") from None
    base = dict(data.subset)
    return {part: DocumentPart(data.task, [data.items[d] for d in ids],
                               {**base, "selection": selection(part, fraction, seed, len(data.items))})
            for part, ids in (("scan", scan), ("holdout", held))}


def split_tasks(data: dict, holdout: dict, where: str = "") -> tuple[dict, dict]:
    """Every task's (scan parts, held-out parts)."""
    parts = {name: split_task(d, holdout["fraction"], holdout["seed"], where) for name, d in data.items()}
    return {n: p["scan"] for n, p in parts.items()}, {n: p["holdout"] for n, p in parts.items()}


def choose(records: list[dict]) -> Pick:
    """The scan's winners from its records (one model, one selection; ``glue_painters.holdout.pick``).

    The difference to the full model is of the task's primary metric; for a metric that is a mean
    over documents (every accuracy) it equals the mean of the documents' paired differences. The
    overall rule divides by the full model's margin over chance where the summary trusts it
    (``summary.reliability``: margin above 3 standard errors), and leaves the other tasks out."""
    full = {r["task"]: r for r in records if r["variant"] == "full"}
    diffs: dict[str, dict[str, float]] = {}
    scale: dict[str, float | None] = {}
    cost: dict[str, float] = {}
    for r in records:
        t, text = r["task"], r["plan"]["text"]
        if r["variant"] == "full" or t not in full or text == full[t]["plan"]["text"]:
            continue
        sign = -1.0 if r.get("higher_is_better") is False else 1.0
        primary = full[t]["primary_metric"]
        diffs.setdefault(t, {})[text] = sign * (r["metrics"][primary] - full[t]["metrics"][primary])
        cost[text] = r.get("executions", 0)
    for t, rec in full.items():
        rel = reliability(t, rec)
        scale[t] = (rel.full - rel.chance) if rel.ok else None
    return pick(diffs, scale, cost)


def render(choice: Pick, scan: list[dict], held: list[dict]) -> str:
    """Lines for the end of a sweep: each held-out plan's difference to the full model on the scan
    part and on the held-out part (a point estimate; ``painters report`` gives paired intervals)."""
    def by(records):
        return {(r["task"], r["plan"]["text"]): r for r in records}

    scan_at, held_at = by(scan), by(held)
    label = {r["plan"]["text"]: VariantSpec.of(r["variant"], **(r.get("params") or {})).text for r in scan}
    full = {r["task"]: r["plan"]["text"] for r in scan if r["variant"] == "full"}
    lines = [f"Held-out re-estimate (winner across tasks: {label.get(choice.overall, choice.overall or '-')}; "
             f"rule: {choice.rule}); differences to the full model:"]
    for task, text in sorted({(t, p) for t in full for p in choice.plans_for(t)}):
        f = full[task]
        cells = []
        for name, at in (("scan", scan_at), ("held-out", held_at)):
            a, b = at.get((task, text)), at.get((task, f))
            if a is None or b is None:
                cells.append(f"{name} -")
                continue
            primary = b["primary_metric"]
            cells.append(f"{name} {a['metrics'][primary] - b['metrics'][primary]:+.3f} (n={a['n']})")
        lines.append(f"  {task:16} {label.get(text, text):28} " + ", ".join(cells))
    return "\n".join(lines)


__all__ = ["DocumentPart", "choose", "part_of", "read_holdout", "render", "split_task", "split_tasks"]
