"""One fine-tuning run from the command line, for ``accelerate launch`` or torchrun::

    accelerate launch -m glue_eval.finetune_cli --model minilm --task rte \\
        --plan skip:n=1 --seed 0 --output-dir runs/rte-skip1 [--save-steps 200] [--resume]

(``-m glue_painters.glue.finetune`` is the old name of the same command.) It only reads the
arguments: the run itself is the sweep's own fine-tuning step for one run, so a run started here
and the same run in a sweep give the same record.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields

from glue_painters.errors import UserError

from .hparams import FinetuneHParams, add_hparam_options
from .runs import RunSpec
from .steps import run_finetune_one


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m glue_eval.finetune_cli",
        description="Fine-tune one rewired encoder on one GLUE task with transformers.Trainer. Launch with "
                    "`accelerate launch -m glue_eval.finetune_cli ...` or torchrun to use several GPUs.",
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
    args = build_parser().parse_args(argv)
    try:
        hp = FinetuneHParams.from_dict({f.name: getattr(args, f.name) for f in fields(FinetuneHParams)
                                        if getattr(args, f.name) is not None}, "command line")
        spec = RunSpec.of(args.model, args.plan, args.task, "finetune", args.seed)
        rec = run_finetune_one(spec, hp, data_dir=args.data_dir, limit_train=args.limit_train,
                               limit_eval=args.limit_eval, output_dir=args.output_dir,
                               save_steps=args.save_steps, resume=args.resume, results=args.results,
                               wandb_on=not args.no_wandb)
    except UserError as e:
        print(f"glue_eval.finetune_cli: error: {e}", file=sys.stderr)
        return 2
    if rec is not None:
        print(json.dumps({"task": rec["task"], "plan": rec["plan_text"], "metrics": rec["metrics"],
                          "score": rec["score"]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
