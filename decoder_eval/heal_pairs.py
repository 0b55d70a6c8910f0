"""Healed and unhealed scores side by side: one table for the heal command and the summary.

Why pairs and not two tables: the summary splits records by healed state (one table each, as it
splits by dtype), so the number a reader wants - what healing bought for this plan on this task -
sat in two tables far apart. A healed record's twin is the record with the same key except
``healed``/``heal`` (same model weights, plan, task, subset, dtype, scoring version): exactly the
"before" score the heal command computed or reused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

_HEAL_FIELDS = ("healed", "heal")


@dataclass(frozen=True)
class PairRow:
    plan: str  # the plan's name in the sweep's words (variant spec or plan text)
    healing: str  # the healing settings, short
    task: str
    metric: str
    before: float | None
    after: float

    @property
    def delta(self) -> float | None:
        return None if self.before is None else self.after - self.before


def plan_label(variant: str, params: dict | None, plan_text: str | None = None) -> str:
    params = {k: v for k, v in (params or {}).items() if k != "plan" and v is not None}
    if variant == "custom":
        return plan_text or (params or {}).get("plan") or "custom"
    return variant + (":" + ",".join(f"{k}={v}" for k, v in params.items()) if params else "")


def healing_label(heal: dict | None) -> str:
    h = heal or {}
    return f"{h.get('steps')} steps, r={h.get('rank')}, lr={h.get('lr')}" + (
        f", {h['max_docs']} docs" if h.get("max_docs") else "")


def score_rows(plan: str, healing: str, before: dict, after: dict) -> list[PairRow]:
    """Every metric of every task (the heal command's own output)."""
    return [PairRow(plan, healing, task, metric, (before.get(task) or {}).get(metric), value)
            for task, metrics in after.items() for metric, value in metrics.items()]


def _twin_key(key: dict) -> str:
    return json.dumps({k: v for k, v in key.items() if k not in _HEAL_FIELDS}, sort_keys=True, default=str)


def heal_pairs(records: list[dict]) -> list[PairRow]:
    """A row per healed record (its primary metric), with its unhealed twin's score when the
    store holds one."""
    unhealed = {_twin_key(r["key"]): r for r in records if not r["key"].get("healed")}
    rows = []
    for r in records:
        if not r["key"].get("healed"):
            continue
        twin = unhealed.get(_twin_key(r["key"]))
        metric = r["primary_metric"]
        plan_text = r["plan"].get("text") if isinstance(r.get("plan"), dict) else None
        rows.append(PairRow(f"{r.get('model', '?')} {plan_label(r['variant'], r.get('params'), plan_text)}",
                            healing_label(r["key"].get("heal")), r["task"], metric,
                            twin["metrics"].get(metric) if twin else None, r["metrics"][metric]))
    return sorted(rows, key=lambda x: (x.plan, x.healing, x.task, x.metric))


def _num(x: float | None, sign: bool = False) -> str:
    if x is None:
        return "–"
    return f"{x:+.4f}" if sign else f"{x:.4f}"


def render_pairs(rows: list[PairRow]) -> str:
    """Markdown: plan | healing | task | metric | unhealed | healed | Δ."""
    lines = ["| plan | healing | task | metric | unhealed | healed | Δ |", "|---|---|---|---|---:|---:|---:|"]
    lines += [f"| {r.plan} | {r.healing} | {r.task} | {r.metric} | {_num(r.before)} | {_num(r.after)} | "
              f"{_num(r.delta, sign=True)} |" for r in rows]
    return "\n".join(lines)
