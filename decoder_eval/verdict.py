"""The plan search's benchmark verdict: the plans found, on the benchmarks, next to equal-cost baselines.

The core's search (``glue_painters.search``) finds plans by calibration loss; whether they hold
up is this track's question, so the verdict lives here: it evaluates every plan with the decoder
engine and stores the results as this track's records (``sweep.save_result``, track
``decoder``), so the report draws them with the paper's variants on its accuracy-vs-cost plots
and a plan a decoder sweep already evaluated costs nothing. ``painters search verdict`` is its
command (``verdict_cli``); ``verdict_report`` writes its summary page and plot.
"""

from __future__ import annotations

import math
from typing import Sequence

from tqdm.auto import tqdm

from glue_painters.errors import UserError
from glue_painters.plans import Plan
from glue_painters.variants import VariantSpec

from .evaluate import Evaluator
from .summary import reliability
from .sweep import TRACK, PlanSpec, key_fields, save_result


def normalized(score: float, full: float, chance: float) -> float:
    """The paper's normalized score: (score - random) / (full - random)."""
    return (score - chance) / (full - chance)


def _spec(row_name: str, plan: Plan):
    """The decoder track's ``PlanSpec`` for a verdict row: a paper variant keeps its name and
    parameters (so its record is the one a decoder sweep of that variant writes, and is shared),
    anything else is a ``custom`` plan keyed by its text."""
    name = row_name.split(" [")[0]
    if name == "full" or name.partition(":")[0] in ("skip", "parallel", "looped_parallel"):
        return PlanSpec(VariantSpec.parse(name), plan)
    return PlanSpec(VariantSpec.parse(plan.text), plan)


def verdict(model, tokenizer, rows: Sequence[dict], tasks: dict, store, *, model_key: str, model_name: str,
            losses: dict[str, float], dtype: str = "float32", evaluate=None, batch_size: int = 16,
            calibration: dict | None = None) -> dict:
    """Benchmark every plan of ``rows`` (dicts with ``budget``, ``name``, ``plan`` text; one named
    ``full``) on ``tasks`` (``{name: decoder_eval TaskData}``) and store the results as the decoder
    track's records (``decoder_eval.sweep.save_result``, track ``decoder``), so the report draws
    them with the paper's variants on its accuracy-vs-cost plots. A record that exists is reused,
    so a re-run resumes and a plan a decoder sweep already evaluated costs nothing. Each record
    carries ``search``: the calibration loss and the rows (method or baseline, budget) it is.

    Returns the rows with executions, depth, calibration loss/perplexity, each task's primary score
    and standard error, the normalized scores and their median. A task where the full model does not
    clear chance by the decoder track's margin (``decoder_eval.summary.reliability``) is *flagged*:
    its normalized score would divide noise by noise, so it is left out of the median.
    ``evaluate(model, tokenizer, plans, {task: data}, batch_size=)`` returns ``{plan text: {task:
    TaskResult}}``; by default the decoder engine's ``Evaluator`` with a progress bar (tests pass a
    stand-in).
    """
    evaluate = evaluate or _evaluate_with_progress
    if not any(r["name"] == "full" for r in rows):
        raise UserError("the verdict needs the full model among its rows")
    specs, labels = {}, {}
    for r in rows:
        plan = Plan.parse(r["plan"])
        specs.setdefault((r["name"] if r["name"] == "full" or ":" in r["name"] else "custom", plan.text),
                         _spec(r["name"], plan))
        labels.setdefault(plan.text, []).append({"budget": r["budget"], "name": r["name"]})
    key = {(spec.variant, spec.params, task): key_fields(model_key, spec, task, tasks[task].subset, dtype)
           for spec in specs.values() for task in tasks}
    for task, data in tasks.items():
        todo = [s for s in specs.values() if not store.has(TRACK, key[(s.variant, s.params, task)])]
        if not todo:
            continue
        plans = list({s.plan.text: s.plan for s in todo}.values())
        results = evaluate(model, tokenizer, plans, {task: data}, batch_size=batch_size)
        for s in todo:
            save_result(store, key[(s.variant, s.params, task)], s, results[s.plan.text][task], model_name=model_name,
                        extra={"search": {"calibration_loss": losses.get(s.plan.text), "calibration": calibration,
                                          "rows": labels[s.plan.text]}})

    def record(row, task):
        plan = Plan.parse(row["plan"])
        s = _spec(row["name"], plan)
        return store.get(TRACK, key[(s.variant, s.params, task)])

    full_row = next(r for r in rows if r["name"] == "full")
    full = {t: record(full_row, t) for t in tasks}
    rel = {t: reliability(t, full[t]) for t in tasks}
    primary = {t: full[t]["primary_metric"] for t in tasks}
    usable = [t for t in tasks if rel[t].ok]
    out = []
    for row in rows:
        recs = {t: record(row, t) for t in tasks}
        plan = Plan.parse(row["plan"])
        score = {t: recs[t]["metrics"][primary[t]] for t in tasks}
        norm = {t: normalized(score[t], rel[t].full, rel[t].chance) for t in usable}
        loss = losses.get(plan.text)
        out.append(dict(row, executions=plan.executions, depth=plan.depth, calibration_loss=loss,
                        calibration_perplexity=None if loss is None else (math.exp(loss) if loss < 700 else math.inf),
                        scores=score, stderr={t: recs[t]["stderr"].get(primary[t]) for t in tasks},
                        metrics={t: recs[t]["metrics"] for t in tasks},
                        normalized=norm, normalized_median=_median(list(norm.values()))))
    return {"rows": out, "primary": primary, "usable": usable,
            "flagged": {t: rel[t].why for t in tasks if not rel[t].ok},
            "n": {t: full[t]["n"] for t in tasks}, "track": TRACK}


def _evaluate_with_progress(model, tokenizer, plans, tasks, batch_size: int = 16) -> dict:
    """``decoder_eval.evaluate_plans`` for one task, with a progress bar over its batches."""
    (name, data), = tasks.items()
    evaluator = Evaluator(model, tokenizer, batch_size)
    with tqdm(total=evaluator.work_units(data, len(plans)), desc=f"{name}: {len(plans)} plans", unit="batch") as bar:
        evaluator.progress = bar.update
        results = evaluator.run(data, plans)
    return {text: {name: r} for text, r in results.items()}


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    v = sorted(values)
    mid = len(v) // 2
    return v[mid] if len(v) % 2 else (v[mid - 1] + v[mid]) / 2


__all__ = ["normalized", "verdict"]
