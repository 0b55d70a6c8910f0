"""The GLUE summary: one Markdown table per (model, mode, recipe), variant x N rows, task columns.

Records come one per label (``records``), so each row is read straight from its records. A store
that holds both an old-format record and the per-label copy made of it (``migrated_from``) shows
the copy only. A cell's mean ± std pools records that differ in the training seed alone: records of
another recipe (epochs, max length, batch size, learning rate, train/eval rows, weights, ...: the
record key less plan, task and seed, ``glue_painters.recipes``) go to a table of their own, titled
by the settings that set it apart, and each table states its whole recipe.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

from glue_painters import recipes
from glue_painters.results import atomic_write_text

from . import tasks as T
from .config import MODES, SWEEP_VARIANTS
from .metrics import glue_average


def _mean_std(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return None, None, 0
    if any(isinstance(v, float) and math.isnan(v) for v in vals):
        return float("nan"), None, len(vals)
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else None), len(vals)


def _fmt(mean, std):
    if mean is None:
        return "–"
    if isinstance(mean, float) and math.isnan(mean):
        return "nan"
    return f"{mean:.1f}" if std is None else f"{mean:.1f} ± {std:.1f}"


def _label_order(label: str):
    name, _, rest = label.partition(":")
    order = list(SWEEP_VARIANTS)
    n = 0
    for part in rest.split(","):
        if part.startswith("n="):
            n = int(part[2:])
    return (order.index(name) if name in order else len(order), n, label)


def summary_table(records: list[dict], tasks: list[str] | None = None) -> str:
    """Markdown: one table per (model, mode, recipe); rows variant x N, columns tasks and the average.

    Cells are the task score (mean of the official metrics x 100) as mean ± std over seeds of one
    recipe; the average column is the paper's unnormalized mean of the task means over the tasks
    shown. A row whose seeds are not the table's names its own in the ``seeds`` column.
    """
    lines = []
    keyed: dict = {}
    for r in _without_superseded(records):
        keyed.setdefault((r.get("model_name"), r["mode"], recipes.recipe_id(r.get("key"), ("mode",))), []).append(r)
    apart: dict = {}
    for (model, mode, rid) in keyed:
        apart.setdefault((model, mode), []).append(json.loads(rid))
    for (model, mode, rid), recs in sorted(keyed.items(), key=lambda kv: (str(kv[0][0]), MODES.index(kv[0][1]), kv[0][2])):
        task_list = tasks or [t for t in T.TASKS if any(r["task"] == t for r in recs)]
        seeds = sorted({r["seed"] for r in recs})
        recipe = json.loads(rid)
        differs = recipes.distinguishing(apart[(model, mode)])
        title = f"{model} — {mode}" + (f", {recipes.describe(recipe, differs)}" if differs else "")
        lines += [f"### {title} (task score ×100, mean ± std over seeds {seeds})", "",
                  f"Recipe: {recipes.describe(recipe)}.", ""]
        lines.append("| variant | plan | seeds | " + " | ".join(task_list) + " | avg |")
        lines.append("|---|---|---|" + "---:|" * (len(task_list) + 1))
        for label in sorted({r["label"] for r in recs}, key=_label_order):
            rows = [r for r in recs if r["label"] == label]
            plans = sorted({r["plan_text"] for r in rows})
            plan_txt = plans[0] if len(plans) == 1 else f"{len(plans)} plans (seeded)"
            own = sorted({r["seed"] for r in rows})
            cells, means = [], {}
            for t in task_list:
                m, s, _ = _mean_std([r["score"] for r in rows if r["task"] == t])
                cells.append(_fmt(m, s))
                if m is not None:
                    means[t] = m
            avg = glue_average(means) if len(means) == len(task_list) else None
            lines.append(f"| {label} | `{plan_txt}` | {'' if own == seeds else own} | " + " | ".join(cells)
                         + f" | {_fmt(avg, None)} |")
        lines.append("")
    return "\n".join(lines)


def write_report(path, records, header: str) -> None:
    atomic_write_text(Path(path), header.rstrip() + "\n\n" + summary_table(records) + "\n")

def _without_superseded(records: list[dict]) -> list[dict]:
    """The records less each old-format one that a per-label copy of the same label replaces."""
    copied = {(r["migrated_from"], r["label"]) for r in records if r.get("migrated_from")}
    return [r for r in records if (r.get("key_hash"), r["label"]) not in copied]
