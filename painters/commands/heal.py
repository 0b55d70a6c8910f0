"""``painters heal`` and ``painters heal eval``: the command line of LoRA healing (``decoder_eval.heal``).

Only turns arguments into calls of the track's ``heal`` / ``heal_eval`` and prints their table.
Several processes: ``accelerate launch -m painters.cli heal ...`` (the training is data-parallel
through ``Trainer``; the main process scores and prints).
"""

from __future__ import annotations

import argparse

from decoder_eval.heal import DEFAULT_TASKS, heal, heal_eval
from decoder_eval.heal_pairs import healing_label, render_pairs, score_rows
from decoder_eval.heal_train import HealConfig
from glue_painters.errors import UserError
from painters.options import add_data_dir, add_device, add_model, add_options, add_results, names, task_numbers, wandb_on

HEAL_DOC = ("LoRA healing: train low-rank adapters on a text corpus under a plan, then evaluate again.")


def _scoring_arguments(p: argparse.ArgumentParser) -> None:
    add_options(p, "tasks", "limit", help={"tasks": f"benchmarks to score before and after (default: "
                                                    f"{' '.join(DEFAULT_TASKS)})"})
    add_data_dir(p)
    add_results(p)
    add_device(p)
    add_options(p, "dtype")
    p.add_argument("--batch-size", type=int, default=16, help="scoring batch size (default 16)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model(p)
    p.add_argument("--plan", default=None, help="the plan to heal (required): a variant spec (skip:n=8) or plan text")
    p.add_argument("--corpus", default=None, help="healing text: .txt (blank-line separated) or .jsonl with 'text' "
                   "(default: WikiText-2 train from the data dir, else its validation split)")
    p.add_argument("--max-docs", type=int, default=None, help="use at most this many corpus paragraphs")
    p.add_argument("--steps", type=int, default=HealConfig.steps, help=f"training steps (default {HealConfig.steps})")
    p.add_argument("--lr", type=float, default=HealConfig.lr, help=f"learning rate (default {HealConfig.lr})")
    p.add_argument("--rank", type=int, default=HealConfig.rank, help=f"LoRA rank (default {HealConfig.rank})")
    p.add_argument("--alpha", type=int, default=HealConfig.alpha, help=f"LoRA alpha (default {HealConfig.alpha})")
    p.add_argument("--seq-len", type=int, default=HealConfig.seq_len, help=f"tokens per training block (default {HealConfig.seq_len})")
    p.add_argument("--train-batch-size", type=int, default=HealConfig.batch_size, help=f"blocks per step and device (default {HealConfig.batch_size})")
    p.add_argument("--seed", type=int, default=HealConfig.seed, help="training seed (default 0)")
    p.add_argument("--out", default=None, help="where the adapter goes (default runs/heal/<model>-<plan hash>-<settings id>: one folder per distinct "
                   "setting; a folder holding an adapter of other settings is refused)")
    add_options(p, "wandb", help={"wandb": "here one run: the training loss and the scores before and after"})
    _scoring_arguments(p)
    p.set_defaults(func=run_cli)


def add_subparsers(sub) -> None:
    p = sub.add_parser("heal", help="heal a rewired decoder with LoRA (peft) and score it before and after",
                       description=HEAL_DOC + " Under `accelerate launch -m painters.cli heal` "
                       "the training runs on every process. `painters heal eval --adapter DIR` scores a saved "
                       "adapter again.")
    add_arguments(p)
    actions = p.add_subparsers(dest="heal_command", metavar="ACTION")
    e = actions.add_parser("eval", help="score a saved adapter (its base model and plan come from its folder)",
                           description="Score an adapter folder written by `painters heal` on benchmarks, beside the "
                                       "unhealed plan; records are keyed as `painters heal` keyed them.")
    e.add_argument("--adapter", required=True, metavar="DIR", help="the adapter folder (holds painters_heal.json)")
    e.add_argument("--model", default=None, help="the base model under another name or path (default: as recorded; "
                                                 "its fingerprint must match)")
    _scoring_arguments(e)
    e.set_defaults(func=run_eval_cli)


def _print_table(out: dict) -> None:
    print(render_pairs(score_rows(out["label"], healing_label(out["heal"]), out["before"], out["after"])))


def run_cli(args) -> int:
    if not args.plan:
        raise UserError("--plan is required (the plan to heal); `painters heal eval --adapter DIR` scores a saved adapter")
    cfg = HealConfig(steps=args.steps, lr=args.lr, rank=args.rank, alpha=args.alpha, seq_len=args.seq_len,
                     batch_size=args.train_batch_size, seed=args.seed)
    out = heal(args.model, args.plan, tasks=names(args.tasks), limit=task_numbers(args.limit, "--limit"),
               corpus=args.corpus, data_dir=args.data_dir, results_dir=args.results, out_dir=args.out, cfg=cfg,
               device=args.device, dtype=args.dtype, batch_size=args.batch_size, max_docs=args.max_docs,
               wandb=wandb_on(args, None))
    if out["after"] is None:  # not the main process: it trained, the main one scores and prints
        return 0
    if out["note"]:
        print(f"note: {out['note']}")
    print(f"plan {out['plan']}: LoRA trained {cfg.steps} steps on {out['documents']} corpus documents in "
          f"{out['train_seconds']} s; adapter in {out['adapter']}")
    _print_table(out)
    if out["wandb"]:
        print(out["wandb"])
    return 0


def run_eval_cli(args) -> int:
    out = heal_eval(args.adapter, tasks=names(args.tasks), limit=task_numbers(args.limit, "--limit"),
                    data_dir=args.data_dir, results_dir=args.results,
                    model_name=args.model, device=args.device, dtype=args.dtype, batch_size=args.batch_size)
    print(f"adapter {out['adapter']}, plan {out['plan']}")
    _print_table(out)
    return 0
