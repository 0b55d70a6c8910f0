"""One fine-tuning run from the command line, for ``accelerate launch`` or torchrun::

    accelerate launch -m painters.commands.finetune --model minilm --task rte \\
        --plan skip:n=1 --seed 0 --output-dir runs/rte-skip1 [--save-steps 200] [--resume] \\
        [--gradient_accumulation_steps 2 --lr_scheduler_type cosine --eval_strategy epoch ...]

It only reads the
arguments: the run itself is the sweep's own fine-tuning step for one run, so a run started here
and the same run in a sweep give the same record. Like ``run_glue.py`` it takes every
``TrainingArguments`` field (``glue_eval.trainer_args``; also ``--model_name_or_path``,
``--task_name``, ``--max_seq_length``) and leaves the fine-tuned model and tokenizer in
``--output-dir`` (``glue_eval.saved_model``), with ``metrics.json``.
"""

from __future__ import annotations

import argparse
import json
import sys

from painters.options import OPTIONS, add_data_dir, add_options, add_renamed, quiet, wandb_on
from glue_painters.errors import UserError

from glue_eval.hparams import FinetuneHParams
from glue_eval.runs import RunSpec
from glue_eval.steps import run_finetune_one

# our flags for settings TrainingArguments names otherwise (both spellings are accepted)
_ALIASES = {"--batch-size": "per_device_train_batch_size", "--epochs": "num_train_epochs",
            "--eval-batch-size": "per_device_eval_batch_size"}


def build_parser() -> argparse.ArgumentParser:
    from glue_eval import trainer_args

    p = argparse.ArgumentParser(
        prog="python -m painters.commands.finetune", parents=[trainer_args.parent_parser()], conflict_handler="resolve",
        usage="%(prog)s --task TASK --output-dir DIR [--model M] [--plan PLAN] [--seed S] [options] "
              "[any TrainingArguments option, e.g. --gradient_accumulation_steps 2 --eval_strategy epoch]",
        description="Fine-tune one rewired encoder on one GLUE task with transformers.Trainer. Launch with "
                    "`accelerate launch -m painters.commands.finetune ...` or torchrun to use several GPUs. Every "
                    "TrainingArguments option is accepted; unless given, the paper's settings hold (learning rate "
                    "2e-5, batch 32, 3 epochs, max length 128, eval batch 128), not TrainingArguments' defaults. "
                    "Settings that change results are part of the record's key.",
    )
    p.add_argument("--model", "--model_name_or_path", "--model-name-or-path", dest="model", default="minilm",
                   help="alias (minilm, mpnet), hub id or local folder (default: minilm)")
    p.add_argument("--task", "--task_name", "--task-name", dest="task", required=True,
                   help="GLUE task: cola sst2 mrpc qqp stsb mnli qnli rte wnli")
    p.add_argument("--plan", default="full",
                   help="variant spec (skip:n=1, looped_parallel:n=1,k=3, random:n=1,seed=0) or plan text (0-1,5)")
    p.add_argument("--seed", type=int, default=0, help="training seed (head init, data order, dropout; default 0)")
    p.add_argument("--output-dir", "--output_dir", dest="output_dir", required=True,
                   help="folder for the fine-tuned model and tokenizer, metrics.json and checkpoints")
    add_data_dir(p, "glue")
    p.add_argument("--sample-train", type=int, default=None, help="train on a fixed random subset of this many rows")
    p.add_argument("--limit", type=int, default=None, metavar="N", help=f"{OPTIONS['limit'].help.split(';')[0]}")
    p.add_argument("--sample", type=int, default=None, metavar="N",
                   help="evaluate a fixed random subset of N rows per split instead of the first N (seed 0)")
    add_renamed(p)
    add_options(p, "quiet")
    p.add_argument("--resume", action="store_true", help="resume from the last checkpoint in --output-dir")
    p.add_argument("--results", default=None,
                   help="also write the record into this ResultsStore folder (default: $PAINTERS_RESULTS when set)")
    add_options(p, "wandb", help={"wandb": "here: off unless --wandb or --report_to wandb"})
    p.add_argument("--max-length", "--max_seq_length", "--max-seq-length", dest="max_length", type=int,
                   default=argparse.SUPPRESS, help="tokens per example (default: 128)")
    for flag, dest in _ALIASES.items():
        p.add_argument(flag, dest=dest, type=float if dest == "num_train_epochs" else int, default=argparse.SUPPRESS,
                       help=f"the same as --{dest}")
    return p


_OURS = ("model", "task", "plan", "seed", "output_dir", "data_dir", "sample_train", "limit", "sample", "resume",
         "results", "wandb", "quiet")


def _hparams(args) -> tuple[FinetuneHParams, bool, str | None]:
    """The run's hyperparameters from every setting given, whether W&B is on, and a checkpoint
    named by ``--resume_from_checkpoint``."""
    given = {k: v for k, v in vars(args).items() if k not in _OURS}
    resume_from = given.pop("resume_from_checkpoint", None)
    on = wandb_on(args, None)
    report_to = given.pop("report_to", None)
    if report_to is not None:  # run_glue.py's way of choosing trackers: only W&B (or none) here
        names = {report_to} if isinstance(report_to, str) else set(report_to)
        if not names <= {"wandb", "none", "all"}:
            raise UserError(f"--report_to {' '.join(sorted(names))}: this command logs to W&B only (or none)")
        on = ("none" not in names) if args.wandb is None else (on and "none" not in names)
    return FinetuneHParams.from_dict(given, "command line"), on, resume_from


def main(argv=None) -> int:
    from glue_painters.processes import launch_problem

    args = build_parser().parse_args(argv)
    problem = launch_problem()
    if problem:
        print(f"painters.commands.finetune: warning: {problem}", file=sys.stderr)
    try:
        hp, wandb_on, resume_from = _hparams(args)
        spec = RunSpec.of(args.model, args.plan, args.task, "finetune", args.seed)
        for flag in ("limit", "sample", "sample_train"):
            if getattr(args, flag) is not None and getattr(args, flag) < 1:
                raise UserError(f"--{flag.replace('_', '-')} must be at least 1, got {getattr(args, flag)}")
        rec = run_finetune_one(spec, hp, data_dir=args.data_dir, sample_train=args.sample_train, limit=args.limit,
                               sample=args.sample, output_dir=args.output_dir, resume=resume_from or args.resume,
                               results=args.results, wandb_on=wandb_on, progress=not quiet(args))
    except UserError as e:
        print(f"painters.commands.finetune: error: {e}", file=sys.stderr)
        return 2
    if rec is not None:
        print(json.dumps({"task": rec["task"], "plan": rec["plan_text"], "metrics": rec["metrics"],
                          "score": rec["score"]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
