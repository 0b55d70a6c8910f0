"""Full fine-tuning of a rewired encoder + classification head with ``transformers.Trainer``.

The plan is put on with ``glue_painters.rewire.apply_plan`` and stays on while training, so
optimisation, mixed precision, gradient accumulation and multi-GPU/multi-node scaling are
Trainer's/accelerate's own. One run from the command line (any launcher)::

    accelerate launch -m glue_painters.glue.finetune --model minilm --task rte \\
        --plan skip:n=1 --seed 0 --output-dir runs/rte-skip1 [--save-steps 200] [--resume]

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

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from glue_painters.errors import UserError
from glue_painters.plans import Plan
from glue_painters.rewire import apply_plan, current_plan, remove_plan
from .metrics import predictions_from_logits, score_split, task_score
from .tasks import Task, get_task

PLAN_FILE = "painters_plan.json"


@dataclass(frozen=True)
class FinetuneHParams:
    """The paper's fine-tuning settings by default (max length 128, batch 32, 3 epochs, lr 2e-5)."""

    learning_rate: float = 2e-5
    batch_size: int = 32
    epochs: float = 3.0
    max_length: int = 128
    weight_decay: float = 0.0
    warmup_steps: float = 0.0
    eval_batch_size: int = 128
    bf16: bool = False
    fp16: bool = False

    @classmethod
    def from_dict(cls, d: dict | None, where: str = "finetune") -> "FinetuneHParams":
        return _hparams_from_dict(cls, d, where)


def _coerce(value, typ, name, where):
    """``value`` as ``typ`` (bool, int or float), or a UserError naming the setting."""
    bad = UserError(f"{where}: {name} must be {'true or false' if typ is bool else 'a number'}"
                    f"{' (whole)' if typ is int else ''}, got {value!r}")
    if typ is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if typ is str:
        if isinstance(value, str):
            return value
        raise UserError(f"{where}: {name} must be a string, got {value!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise bad
    try:
        x = float(value)
    except ValueError:
        raise bad from None
    if typ is int:
        if not x.is_integer():
            raise bad
        return int(x)
    return x


def _hparams_from_dict(cls, d, where):
    if d is not None and not isinstance(d, dict):
        raise UserError(f"{where}: expected a mapping of settings, got {type(d).__name__}")
    d = dict(d or {})
    defaults = cls()
    known = [f.name for f in fields(cls)]
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise UserError(f"{where}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(known)}")
    out = {k: _coerce(v, type(getattr(defaults, k)), k, where) for k, v in d.items()}
    hp = cls(**out)
    for k in known:
        v = getattr(hp, k)
        if isinstance(v, (bool, str)):
            continue
        if v < 0 or (v == 0 and k in ("batch_size", "max_length", "epochs", "learning_rate", "eval_batch_size")):
            raise UserError(f"{where}: {k} must be {'positive' if v == 0 else 'not negative'}, got {v!r}")
    return hp


def add_hparam_options(parser, cls, prefix=""):
    """One ``--name`` option per hyperparameter of ``cls`` (default: the class default)."""
    defaults = cls()
    for f in fields(cls):
        typ = type(getattr(defaults, f.name))
        conv = (lambda s: {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}[s.lower()]) \
            if typ is bool else typ
        parser.add_argument(f"--{prefix}{f.name.replace('_', '-')}", dest=f.name, type=conv, default=None,
                            metavar=typ.__name__.upper(), help=f"(default: {getattr(defaults, f.name)})")


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
        """A Trainer that saves and loads the ordinary model, with the plan taken off (see module doc)."""

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

        def _load_best_model(self):
            model = self.accelerator.unwrap_model(self.model, keep_torch_compile=False)
            plan = self._plan_off(model)
            try:
                return super()._load_best_model()
            finally:
                if plan is not None:
                    apply_plan(model, plan)

    return _PlanTrainer


def training_args(output_dir, hp: FinetuneHParams, seed: int, report_to="none", save_steps=None,
                  progress=True, logging_steps=None, run_name=None):
    from transformers import TrainingArguments
    return TrainingArguments(
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
        save_strategy="steps" if save_steps else "no",
        save_steps=save_steps or 500,
        logging_steps=logging_steps or 10,
        report_to=report_to,
        run_name=run_name,
        disable_tqdm=not progress,
        dataloader_num_workers=0,
        dataloader_pin_memory=False,
    )


def finetune(model, plan: Plan | str, task: Task | str, train_ds, eval_sets: dict, hp: FinetuneHParams,
             seed: int, output_dir, tokenizer=None, report_to="none", save_steps=None, resume=None,
             progress=True, logging_steps=None, run_name=None) -> dict:
    """Fine-tune ``model`` (a ``*ForSequenceClassification``, fresh head) under ``plan``.

    ``train_ds`` and the ``eval_sets`` (split name -> dataset) are tokenized datasets with a
    ``labels`` column. Returns the metrics, the task score, the training loss and the log history.
    The plan stays on the model afterwards (so it can be evaluated or saved again).
    """
    from transformers import DataCollatorWithPadding, default_data_collator

    task = get_task(task) if isinstance(task, str) else task
    plan = Plan.parse(plan) if isinstance(plan, str) else plan
    apply_plan(model, plan)
    args = training_args(output_dir, hp, seed, report_to, save_steps, progress, logging_steps, run_name)
    collator = DataCollatorWithPadding(tokenizer) if tokenizer is not None else default_data_collator
    trainer = PlanTrainer(model=model, args=args, train_dataset=train_ds, data_collator=collator,
                          processing_class=tokenizer)
    t0 = time.perf_counter()
    out = trainer.train(resume_from_checkpoint=resume)
    train_s = time.perf_counter() - t0
    metrics, t1 = {}, time.perf_counter()
    for split, ds in eval_sets.items():
        pred = trainer.predict(ds, metric_key_prefix=split)
        metrics.update(score_split(task, split, predictions_from_logits(task, pred.predictions), pred.label_ids))
    return {
        "metrics": metrics,
        "score": task_score(task, metrics),
        "train_loss": float(out.training_loss),
        "steps": int(trainer.state.global_step),
        "train_time_s": round(train_s, 3),
        "eval_time_s": round(time.perf_counter() - t1, 3),
        "log_history": trainer.state.log_history,
        "trainer": trainer,
    }


# ---- one run from the command line (for accelerate launch / torchrun) ---------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m glue_painters.glue.finetune",
        description="Fine-tune one rewired encoder on one GLUE task with transformers.Trainer. Launch with "
                    "`accelerate launch -m glue_painters.glue.finetune ...` or torchrun to use several GPUs.",
    )
    p.add_argument("--model", default="minilm", help="alias (minilm, mpnet), hub id or local folder (default: minilm)")
    p.add_argument("--task", required=True, help="GLUE task: cola sst2 mrpc qqp stsb mnli qnli rte wnli")
    p.add_argument("--plan", default="full",
                   help="variant spec (skip:n=1, looped_parallel:n=1,k=3, random:n=1,seed=0) or plan text (0-1,5)")
    p.add_argument("--seed", type=int, default=0, help="training seed (head init, data order, dropout)")
    p.add_argument("--output-dir", required=True, help="folder for checkpoints and metrics.json")
    p.add_argument("--data-dir", default=None, help="GLUE JSON Lines folder (default: $PAINTERS_DATA or ../shared/data/glue)")
    p.add_argument("--limit-train", type=int, default=None, help="train on a fixed random subset of this many rows")
    p.add_argument("--limit-eval", type=int, default=None, help="evaluate on a fixed random subset of this many rows")
    p.add_argument("--save-steps", type=int, default=None, help="save a checkpoint every this many steps (default: none)")
    p.add_argument("--resume", action="store_true", help="resume from the last checkpoint in --output-dir")
    p.add_argument("--results", default=None, help="also write the record into this ResultsStore folder")
    p.add_argument("--no-wandb", action="store_true", help="do not log to Weights & Biases")
    add_hparam_options(p.add_argument_group("hyperparameters"), FinetuneHParams)
    return p


def main(argv=None) -> int:
    from .sweep import RunSpec, run_finetune_one  # late: the sweep imports this module
    args = build_parser().parse_args(argv)
    try:
        hp = FinetuneHParams.from_dict({f.name: getattr(args, f.name) for f in fields(FinetuneHParams)
                                        if getattr(args, f.name) is not None}, "command line")
        spec = RunSpec(model=args.model, variant=None, n=None, k=None, plan_spec=args.plan, task=args.task,
                       mode="finetune", seed=args.seed)
        rec = run_finetune_one(spec, hp, data_dir=args.data_dir, limit_train=args.limit_train,
                               limit_eval=args.limit_eval, output_dir=args.output_dir,
                               save_steps=args.save_steps, resume=args.resume, results=args.results,
                               wandb_on=not args.no_wandb)
    except UserError as e:
        print(f"glue_painters.glue.finetune: error: {e}", file=sys.stderr)
        return 2
    if rec is not None:
        print(json.dumps({"task": rec["task"], "plan": rec["plan_text"], "metrics": rec["metrics"],
                          "score": rec["score"]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
