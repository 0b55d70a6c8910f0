"""Evaluate plans on benchmarks: the API the sweep, the CLI and LoRA healing call.

    from decoder_eval import evaluate_plan, evaluate_plans
    scores = evaluate_plan(model, tokenizer, "0-9,20-29", ["arc_easy", "lambada_openai"], limit=100)
    # {"arc_easy": {"acc": ..., "acc_norm": ...}, "lambada_openai": {"acc": ..., "perplexity": ...}}

``evaluate_plans`` takes many plans and shares work between them (see ``loglikelihood``); it
returns full ``TaskResult``s (metrics, standard errors, chance level, per-item scores, optional
per-item samples). A caller that evaluates one model per plan (a LoRA-healed model, say) calls
``evaluate_plan`` once per model; ``sweep.save_result`` then stores it with ``healed=True``.

The model is used as given (device, dtype); nothing is left rewired afterwards.
"""

from __future__ import annotations

import time
from pathlib import Path
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from glue_painters.errors import UserError
from glue_painters.plans import Plan
from glue_painters.rewire import num_layers
from glue_painters.variants import resolve

from .generation_engine import BatchGenerator
from .loglikelihood import LoglikelihoodScorer
from .progress import GenerationProgress, PassProgress
from .tasks import TASKS, TaskData, get_task, sample_record


@dataclass
class TaskResult:
    task: str
    metrics: dict[str, float]
    stderr: dict[str, float | None]
    chance: float  # expected primary score of guessing, averaged over items
    primary: str
    n: int
    per_item: list[dict] = field(repr=False)
    samples: list[dict] | None = field(default=None, repr=False)
    seconds: float = 0.0  # wall time of the pass that produced it, shared by its plans
    plans_in_pass: int = 1
    higher_is_better: bool = True  # of the primary metric (a perplexity is not; the summary flags it)


def load_tasks(names: Sequence[str], data_dir=None, limit: int | Mapping[str, int | None] | None = None,
               options=None) -> dict[str, TaskData]:
    """Read and check every task's data up front (a bad file fails before any model work).
    ``limit``: one number for all tasks, or a mapping task -> number (key ``default`` for the rest).
    ``options``: ``lm_eval_loading.LmEvalOptions`` (task folders, few-shot, gen_kwargs, chance).

    With lm-eval installed every task, our six included, is built by lm-eval (``lm_eval_loading``);
    without it the six hand-written tasks (``tasks.TASKS``) run and other names are refused."""
    from .data import resolve_data_dir

    limits = {name: limit.get(name, limit.get("default")) if isinstance(limit, Mapping) else limit for name in names}
    if _have_lm_eval():
        from . import lm_eval_loading

        return lm_eval_loading.load(names, data_dir, limits, options)
    where = resolve_data_dir(data_dir)
    for name in names:
        if name not in TASKS:
            raise UserError(f"task '{name}' is not one of {', '.join(TASKS)}: other lm-eval tasks need "
                            f"lm-eval (pip install 'lm_eval==0.4.13')")
    return {name: get_task(name).load(where, limits[name]) for name in names}


def _have_lm_eval() -> bool:
    import importlib.util

    return importlib.util.find_spec("lm_eval") is not None


class Evaluator:
    """Runs tasks under many plans on one model, preparing each task's batches once."""

    def __init__(self, model, tokenizer, batch_size: int = 16, pack: bool = True, share_prefix: bool = True,
                 progress: Callable[[int], None] | None = None, generation_memory: int | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.scorer = LoglikelihoodScorer(model, tokenizer, batch_size, pack=pack, share_prefix=share_prefix)
        # generate_until: every plan at once (generation_engine), KV bounded by generation_memory bytes
        self.generator = BatchGenerator(model, tokenizer, batch_size, generation_memory, share_prefix)
        self.progress = progress
        self._prepared: dict[int, object] = {}

    def prepare(self, data: TaskData):
        key = id(data)
        if key not in self._prepared:
            if data.task.kind == "generate_until":
                prepared = self.generator.prepare([r for it in data.items for r in it.requests])
            else:
                prepared = self.scorer.prepare([it.requests for it in data.items])
            self._prepared[key] = (data, prepared)  # keep data alive so its id stays unique
        return self._prepared[key][1]

    def work_units(self, data: TaskData, n_plans: int) -> int:
        """Progress units for ``n_plans`` plans: one per batch per plan."""
        return len(self.prepare(data).batches) * n_plans

    def run(self, data: TaskData, plans: Sequence[Plan], log_samples: bool = False, primary: str | None = None,
            on_result: Callable[[str, TaskResult], None] | None = None,
            resume: tuple[Path, dict] | None = None) -> dict[str, TaskResult]:
        """Every plan's ``TaskResult`` on one task, keyed by plan text. ``on_result(text, result)``
        is called as each plan's result is ready: all at the end of the task's pass (the plans
        share it). ``resume=(folder, key)`` keeps each finished batch of a pass under ``folder``
        (``progress.PassProgress``; for generation each prompt batch x plan group,
        ``progress.GenerationProgress``), so a pass killed midway continues where it stopped."""
        task = data.task
        primary = primary or task.primary
        if primary not in task.metrics:
            raise UserError(f"task '{task.name}' has no metric '{primary}'; it has {', '.join(task.metrics)}")
        unique = list({p.text: p for p in plans}.values())
        prepared = self.prepare(data)
        chance = sum(task.chance(it.doc) for it in data.items) / len(data.items)
        out: dict[str, TaskResult] = {}

        def finish(text: str, results: list, seconds: float, plans_in_pass: int) -> None:
            per_item, samples, cursor = [], [] if log_samples else None, 0
            for item in data.items:
                item_results = results[cursor:cursor + len(item.requests)]
                cursor += len(item.requests)
                scores = task.score(item.doc, item_results)
                per_item.append(scores)
                if samples is not None:
                    samples.append(getattr(task, "sample_record", sample_record)(item, item_results, scores))
            values, errors = task.aggregate(per_item)
            out[text] = TaskResult(task.name, values, errors, chance, primary, len(per_item), per_item,
                                   samples, seconds, plans_in_pass,
                                   primary not in getattr(task, "lower_is_better", ()))
            if on_result is not None:
                on_result(text, out[text])

        if task.kind == "generate_until":
            start = time.perf_counter()
            checkpoint = GenerationProgress.of(resume[0], resume[1], prepared, unique,
                                               str(self.generator.memory_budget)) if resume else None
            texts = self.generator.run(prepared, unique, self.progress, checkpoint)
            seconds = time.perf_counter() - start
            for plan in unique:
                finish(plan.text, texts[plan.text], seconds, len(unique))
            if checkpoint is not None:
                checkpoint.finish()
        else:
            start = time.perf_counter()
            checkpoint = PassProgress.of(resume[0], resume[1], prepared, unique) if resume else None
            raw = self.scorer.score(prepared, unique, self.progress, checkpoint)
            seconds = time.perf_counter() - start
            for plan in unique:
                finish(plan.text, raw[plan.text], seconds, len(unique))
            if checkpoint is not None:
                checkpoint.finish()  # the records are written (finish -> on_result): nothing to resume
        return out


def evaluate_plans(model, tokenizer, plans: Sequence[Plan | str], tasks: Sequence[str] | Mapping[str, TaskData], *,
                   limit=None, data_dir=None, batch_size: int = 16, log_samples: bool = False,
                   share_prefix: bool = True, pack: bool = True) -> dict[str, dict[str, TaskResult]]:
    """``{plan text: {task: TaskResult}}`` for every plan (a ``Plan``, plan text or variant spec
    like ``skip:n=8``) on every task; ``tasks`` may be names or already loaded ``TaskData``."""
    t = num_layers(model)
    resolved = [p if isinstance(p, Plan) else resolve(p, t) for p in plans]
    for p in resolved:
        p.validate(t)
    data = tasks if isinstance(tasks, Mapping) else load_tasks(tasks, data_dir, limit)
    evaluator = Evaluator(model, tokenizer, batch_size, pack=pack, share_prefix=share_prefix)
    out: dict[str, dict[str, TaskResult]] = {p.text: {} for p in resolved}
    for name, task_data in data.items():
        for text, result in evaluator.run(task_data, resolved, log_samples).items():
            out[text][name] = result
    return out


def evaluate_plan(model, tokenizer, plan: Plan | str, tasks: Sequence[str], *, limit=None, data_dir=None,
                  batch_size: int = 16, **kwargs) -> dict[str, dict[str, float]]:
    """``{task: {metric: value}}`` for one plan (see ``evaluate_plans`` for the options)."""
    (results,) = evaluate_plans(model, tokenizer, [plan], tasks, limit=limit, data_dir=data_dir,
                                batch_size=batch_size, **kwargs).values()
    return {name: r.metrics for name, r in results.items()}
