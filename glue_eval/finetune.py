"""Full fine-tuning of a rewired encoder + classification head with ``transformers.Trainer``.

The plan is put on with ``glue_painters.rewire.apply_plan`` and stays on while training, so
optimisation, mixed precision, gradient accumulation and multi-GPU/multi-node scaling are
Trainer's/accelerate's own. One run from the command line (any launcher) is
``painters.commands.finetune``; a sweep's runs come from ``glue_eval.pipeline``.

Checkpoints under a plan. While a plan is on, the model's layer list holds wrapper modules and a
repeated layer appears in it several times (shared weights), while skipped layers are not in it
at all. Saving that state dict would duplicate shared tensors (safetensors refuses) and drop the
skipped layers. ``PlanTrainer`` therefore takes the plan off around every save and load: a
checkpoint is the ordinary model (all T original layers once, head included) plus
``painters_plan.json``; it reloads with ``from_pretrained`` and, on resume, the plan is put back
after the weights are loaded. The optimizer is always built with the plan on, so its parameter
order is the same on resume.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Callable

from glue_painters.errors import UserError
from glue_painters.plans import Plan
from glue_painters.rewire import apply_plan, current_plan, remove_plan
from .hparams import FinetuneHParams, add_hparam_options  # noqa: F401 - re-exported: the old import path
from .metrics import predictions_from_logits, score_split, task_score
from .tasks import Task, get_task, split_suffix

PLAN_FILE = "painters_plan.json"


class PlanTrainer:
    """Built lazily as a ``transformers.Trainer`` subclass (importing transformers is slow)."""

    _cls = None

    def __new__(cls, *args, **kwargs):
        if cls._cls is None:
            cls._cls = _make_plan_trainer()
        return cls._cls(*args, **kwargs)


def _make_plan_trainer():
    from transformers import Trainer

    class _PlanTrainer(Trainer):
        """A Trainer that saves and loads the ordinary model, with the plan taken off (see module doc).

        Its loss is the model's own mean over the batch. A ``*ForSequenceClassification`` forward
        takes ``**kwargs``, so Trainer would take it for a loss normalised by
        ``num_items_in_batch`` (as a causal LM's is) and then neither divide it by the gradient
        accumulation steps nor stop multiplying it by the process count: with 2 accumulation
        steps or 2 processes the gradient was twice the mean's and ``train_loss`` read 1.38 where a
        plain run reads 0.69. ``model_accepts_loss_kwargs = False`` says what the model does."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.model_accepts_loss_kwargs = False

        def _plan_off(self, model):
            plan = current_plan(model)
            if plan is not None:
                if self.is_fsdp_enabled or self.is_deepspeed_enabled:
                    raise UserError("saving or resuming a rewired model is not supported under FSDP/DeepSpeed yet")
                remove_plan(model)
            return plan

        def _save(self, output_dir=None, state_dict=None):
            model = self.accelerator.unwrap_model(self.model, keep_torch_compile=False)
            plan = self._plan_off(model)
            try:
                super()._save(output_dir, state_dict=None if plan is not None else state_dict)
            finally:
                if plan is not None:
                    apply_plan(model, plan)
            if plan is not None and self.args.should_save:
                out = Path(output_dir or self.args.output_dir)
                (out / PLAN_FILE).write_text(json.dumps(plan.to_json(), indent=1) + "\n")

        def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
            target = model if model is not None else self.model
            plan = self._plan_off(target)
            try:
                saved = Path(resume_from_checkpoint) / PLAN_FILE
                if plan is not None and saved.exists():
                    saved_plan = Plan.from_json(saved.read_text())
                    if saved_plan != plan:
                        raise UserError(f"checkpoint {resume_from_checkpoint} was trained under plan "
                                        f"'{saved_plan.text}', not '{plan.text}'")
                return super()._load_from_checkpoint(resume_from_checkpoint, model=model)
            finally:
                if plan is not None:
                    apply_plan(target, plan)

        def evaluate(self, *args, **kwargs):
            """Evaluation leaves the random state as it found it. A DataLoader draws its base seed
            from torch's global generator each time it is iterated, so an evaluation during
            training (eval curves) would otherwise shift every later dropout mask: a different
            run, with different scores. With the state restored, the curves cost time only."""
            with _same_random_state():
                return super().evaluate(*args, **kwargs)

        def _load_best_model(self):
            model = self.accelerator.unwrap_model(self.model, keep_torch_compile=False)
            plan = self._plan_off(model)
            try:
                return super()._load_best_model()
            finally:
                if plan is not None:
                    apply_plan(model, plan)

    return _PlanTrainer


@contextlib.contextmanager
def _same_random_state():
    """Python's, NumPy's and torch's (CPU and every CUDA device's) random state restored on exit."""
    import random

    import numpy as np
    import torch

    states = (random.getstate(), np.random.get_state(), torch.get_rng_state(),
              torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
        if states[3] is not None:
            torch.cuda.set_rng_state_all(states[3])


def training_args(output_dir, hp: FinetuneHParams, seed: int, report_to="none", save_steps=None,
                  progress=True, logging_steps=None, run_name=None):
    """``TrainingArguments`` of a run: the paper's settings (``hp``), then any other field the user
    gave (``hp.trainer``: gradient accumulation, scheduler, eval strategy, ...), then this call's
    own arguments when given. Giving ``save_steps`` alone turns on saving every that many steps."""
    from . import trainer_args

    args = dict(
        output_dir=str(output_dir),
        per_device_train_batch_size=hp.batch_size,
        per_device_eval_batch_size=hp.eval_batch_size,
        learning_rate=hp.learning_rate,
        num_train_epochs=hp.epochs,
        weight_decay=hp.weight_decay,
        warmup_steps=hp.warmup_steps,
        bf16=hp.bf16,
        fp16=hp.fp16,
        seed=seed,
        data_seed=seed,
        eval_strategy="no",
        save_strategy="no",
        logging_steps=10,
        report_to=report_to,
        disable_tqdm=not progress,
        dataloader_num_workers=0,
        dataloader_pin_memory=False,
    )
    args.update(hp.trainer)
    if data_parallel_on_cpu() and "use_cpu" not in hp.trainer:
        # several processes and no GPU: without use_cpu Trainer makes no process group of its own
        # and every process trains alone on all rows (transformers warns parallel_mode !=
        # DISTRIBUTED); with it, Trainer's data parallelism runs over gloo, as it does on GPUs
        args["use_cpu"] = True
    given = {"save_steps": save_steps, "logging_steps": logging_steps, "run_name": run_name}
    args.update({k: v for k, v in given.items() if v is not None})
    if "save_steps" in hp.trainer or save_steps:
        args["save_strategy"] = hp.trainer.get("save_strategy", "steps")
    return trainer_args.build(**args)


def data_parallel_on_cpu() -> bool:
    """Launched as several processes on a machine without CUDA."""
    from glue_painters.processes import world_size

    if world_size() <= 1:
        return False
    import torch

    return not torch.cuda.is_available()


def curve_metrics(task: Task) -> Callable:
    """``compute_metrics`` for Trainer's evaluations *during* training (eval curves, with an
    ``eval_strategy``): the split's official metrics under their plain names (Trainer prefixes
    ``eval_`` or ``eval_<split>_``), plus the task score when the task has one split. The final
    scores do not come from here: they are computed after training, as always, from
    ``trainer.predict``'s logits."""
    def compute(pred) -> dict:
        split = task.eval_splits[0]
        suffix = split_suffix(task, split)
        out = score_split(task, split, predictions_from_logits(task, pred.predictions), pred.label_ids)
        out = {k[:len(k) - len(suffix)] if suffix else k: v for k, v in out.items()}
        return out | ({"score": task_score(task, out)} if len(task.eval_splits) == 1 else {})
    return compute


def _curve_kwargs(args, task: Task, eval_sets: dict) -> dict:
    """Trainer's evaluation sets and metrics when the run evaluates while it trains, else nothing."""
    if str(getattr(args.eval_strategy, "value", args.eval_strategy)) == "no" and not getattr(args, "eval_on_start", False):
        return {}
    sets = next(iter(eval_sets.values())) if len(eval_sets) == 1 else dict(eval_sets)
    return {"eval_dataset": sets, "compute_metrics": curve_metrics(task)}


def finetune(model, plan: Plan | str, task: Task | str, train_ds, eval_sets: dict, hp: FinetuneHParams,
             seed: int, output_dir, tokenizer=None, report_to="none", save_steps=None, resume=None,
             progress=True, logging_steps=None, run_name=None) -> dict:
    """Fine-tune ``model`` (a ``*ForSequenceClassification``, fresh head) under ``plan``.

    ``train_ds`` and the ``eval_sets`` (split name -> dataset) are tokenized datasets with a
    ``labels`` column. With an ``eval_strategy`` in ``hp.trainer`` Trainer also evaluates them while
    training (eval curves in its logs and W&B); the scores returned are computed after training
    either way. Returns the metrics, the task score, each evaluation row's prediction and label,
    the training loss and the log history.
    The plan stays on the model afterwards (so it can be evaluated or saved again).
    """
    from transformers import DataCollatorWithPadding, default_data_collator

    task = get_task(task) if isinstance(task, str) else task
    plan = Plan.parse(plan) if isinstance(plan, str) else plan
    apply_plan(model, plan)
    args = training_args(output_dir, hp, seed, report_to, save_steps, progress, logging_steps, run_name)
    collator = DataCollatorWithPadding(tokenizer) if tokenizer is not None else default_data_collator
    trainer = PlanTrainer(model=model, args=args, train_dataset=train_ds, data_collator=collator,
                          processing_class=tokenizer, **_curve_kwargs(args, task, eval_sets))
    t0 = time.perf_counter()
    out = trainer.train(resume_from_checkpoint=resume)
    train_s = time.perf_counter() - t0
    metrics, predictions, labels, t1 = {}, {}, {}, time.perf_counter()
    for split, ds in eval_sets.items():
        pred = trainer.predict(ds, metric_key_prefix=split)
        predictions[split] = predictions_from_logits(task, pred.predictions)
        labels[split] = pred.label_ids
        metrics.update(score_split(task, split, predictions[split], labels[split]))
    return {
        "metrics": metrics,
        "predictions": predictions,  # per evaluation row, in the split's order (records keep them)
        "labels": labels,
        "score": task_score(task, metrics),
        "train_loss": float(out.training_loss),
        "steps": int(trainer.state.global_step),  # optimizer steps that ran (each over every process's batch)
        "processes": int(args.world_size),
        "train_time_s": round(train_s, 3),
        "eval_time_s": round(time.perf_counter() - t1, 3),
        "log_history": trainer.state.log_history,
        "trainer": trainer,
    }
