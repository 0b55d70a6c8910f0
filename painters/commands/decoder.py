"""``painters decoder run CONFIG`` and ``painters decoder summary``: the decoder track's commands.

Registered by one entry in ``painters/cli.py`` (``SUBCOMMANDS``); this module only turns
command-line options into ``sweep.run_sweep`` arguments and prints ``summary`` tables.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from glue_painters.errors import UserError
from glue_painters.outputs import output_file, output_folder
from glue_painters.results import DEFAULT_ROOT, ResultsStore, atomic_write_text

from glue_painters.yamlfile import read_yaml
from painters.options import (add_data_dir, add_grid_options, add_options, add_report, add_results, grid_overrides,
                              names, pick_tasks, quiet, set_rows, task_numbers, wandb_on)

from decoder_eval.heal_pairs import heal_pairs, render_pairs
from decoder_eval.summary import group_records, render, summarize
from decoder_eval.sweep import CONFIG_KEYS, TRACK, load_config, parse_config, process_state, run_sweep
from decoder_eval.tasks import TASKS


def _check_run_options(args) -> None:
    """What can be checked before the model loads and a task pass runs: one line, exit 2."""
    if args.batch_size is not None and args.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {args.batch_size}")
    output_folder(args.results or DEFAULT_ROOT, "--results")
    if args.report:
        output_file(args.report, "--report")
    if args.device and args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise UserError(f"--device {args.device}: CUDA is not available on this machine")


def _run(args) -> int:
    _check_run_options(args)
    raw = grid_overrides(args, read_yaml(args.config) if args.config else None, from_file=bool(args.config))
    source = args.config or "<flags>"
    if not isinstance(raw, dict) or not raw:
        parse_config(raw, source)  # empty or not a mapping: the grammar's one-line error
    tasks = names(args.tasks)
    if tasks:
        raw = pick_tasks(raw, tasks)
    raw = set_rows(raw, "limit", task_numbers(args.limit, "--limit"))
    if args.generation_memory is not None:
        raw["generation_memory"] = args.generation_memory  # checked by the config's own reader
    if args.task_path:  # relative to where the command runs, unlike the config's own task_paths
        raw["task_paths"] = list(raw.get("task_paths") or []) + [str(Path(p).resolve()) for p in args.task_path]
    cfg = parse_config(raw, source)
    if args.dry_run:
        from decoder_eval.dry_run import dry_run, render as render_dry_run  # here: the parser must not import torch

        print(render_dry_run(dry_run(cfg, results_dir=args.results, data_dir=args.data_dir, device=args.device,
                                     dtype=args.dtype)))
        return 0
    outcome = run_sweep(cfg, results_dir=args.results, data_dir=args.data_dir, log_samples=args.log_samples,
                        device=args.device, dtype=args.dtype, batch_size=args.batch_size, progress=not quiet(args),
                        wandb=wandb_on(args, cfg.wandb))
    if not process_state().is_main_process:
        return 0  # under accelerate launch the main process alone prints the summary and the report
    summary = summarize(outcome.records, outcome.tasks)
    table = render(summary)
    print(f"\n{len(outcome.specs)} plans x {len(outcome.tasks)} tasks: {outcome.written} records written, "
          f"{outcome.skipped} found, {outcome.seconds:.0f} s\n")
    print(table)
    if getattr(outcome, "holdout", None):  # a sweep with a held-out split: the winners re-estimated
        from decoder_eval.holdout import render as render_holdout

        print("\n" + render_holdout(outcome.choice, outcome.records, outcome.holdout))
    if outcome.wandb:
        print(outcome.wandb)
    if args.report:
        env = "".join(f"{v}={os.environ[v]} " for v in ("OMP_NUM_THREADS", "PAINTERS_DATA") if v in os.environ)
        command = env + ("painters " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if Path(sys.argv[0]).name == "painters"
                         else " ".join(shlex.quote(a) for a in sys.argv))
        text = (f"# Decoder sweep: {cfg.model}\n\nCommand:\n\n```bash\n{command}\n```\n\n"
                f"Config: `{cfg.source}`; {len(outcome.specs)} plans x {len(outcome.tasks)} tasks; "
                f"subsets: " + "; ".join(f"{t}: {s['n']} items" for t, s in summary.subset.items() if s) +
                f"; this invocation wrote {outcome.written} records in {outcome.seconds:.0f} s and found "
                f"{outcome.skipped} done; scoring time summed over all records {_scoring_seconds(outcome.records):.0f} s."
                f"\n\n## Normalized scores\n\n{table}\n\n"
                f"## Raw scores\n\n{render(summary, raw=True)}\n")
        atomic_write_text(Path(args.report), text)
        print(f"\nreport written to {args.report}")
    return 0


def _summary(args) -> int:
    store = ResultsStore(args.results)
    records = list(store.records(TRACK))
    if args.config:
        cfg = load_config(args.config)
        records = [r for r in records if r.get("model") == cfg.model and r["task"] in cfg.tasks]
    if not records:
        raise UserError(f"no decoder records under {store.root}{' for ' + args.config if args.config else ''}")
    for (name, fingerprint, dtype, healed, code), recs in group_records(records).items():
        summary = summarize(recs)
        print(f"## {name} ({fingerprint[:23]}…), dtype {dtype}, healed {healed}, scoring v{code}, "
              f"{len(recs)} records; items per task: "
              + ", ".join(f"{t} {s['n']}" for t, s in summary.subset.items() if s) + "\n")
        print(render(summary, raw=args.raw))
        print()
    pairs = heal_pairs(records)
    if pairs:
        print("## LoRA healing: unhealed and healed scores of the same plan (primary metric)\n")
        print(render_pairs(pairs))
    return 0


def _scoring_seconds(records: list[dict]) -> float:
    """Compute time behind the records, whichever invocation wrote them (a resumed sweep's own wall
    time says little about the table it prints)."""
    return sum((r.get("timing") or {}).get("seconds_per_plan", 0.0) for r in records)


def add_subparsers(sub) -> None:
    keys = "\n".join(f"  {k:<15} {v}" for k, v in CONFIG_KEYS.items())
    p = sub.add_parser(
        "decoder", help="evaluate a causal LM under rewiring plans on LAMBADA/ARC/HellaSwag/WinoGrande/GSM8K",
        description="Decoder track: evaluate a frozen causal LM under the paper's variants with "
                    "lm-evaluation-harness semantics, and summarize with the normalized median.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="decoder_command", metavar="ACTION", required=True)

    run = actions.add_parser(
        "run", help="run (or resume) a sweep from a YAML config and print its summary table",
        description=f"Run or resume a sweep. Finished records are skipped, so re-running the same "
                    f"command after a crash or Ctrl-C continues where it stopped.\n\n"
                    f"Several processes (GPUs, nodes): `accelerate launch --num_processes N -m painters.cli "
                    f"decoder run CONFIG ...` (add --multi_gpu with one GPU or none), or `torchrun "
                    f"--nproc_per_node N -m painters.cli decoder run ...`. Each process loads the model, "
                    f"takes a share of the pending plans (plans that share their first layers stay together) "
                    f"and writes its own records; the main process prints the summary when all are done.\n\n"
                    f"Config keys:\n{keys}",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("config", nargs="?", help="sweep config (YAML), e.g. configs/decoder/smollm2_quick.yaml; "
                                               "optional with --model and the grid flags")
    add_options(run, "tasks", help={"tasks": f"{', '.join(TASKS)}, any lm-eval task name, or a task of a "
                                                  f"--task-path folder"})
    add_options(run, "limit")
    run.add_argument("--task-path", action="append", metavar="DIR",
                     help="a folder of lm-eval task YAMLs whose tasks 'tasks'/--tasks may name (lm-eval's "
                          "--include_path); repeatable, added to the config's task_paths")
    add_data_dir(run)  # 'hub' loads the datasets by name
    add_options(run, "results", "device", "dtype", help={"device": "the config's device wins over the default",
                                                         "dtype": "the config's dtype wins over the default"})
    run.add_argument("--batch-size", type=int, metavar="B",
                     help="rows per forward for loglikelihood (each row packs whole items, about 256 tokens), "
                          "prompts per generate call for GSM8K (default: config, else 16)")
    run.add_argument("--generation-memory", metavar="SIZE",
                     help="KV-cache budget for generate_until tasks (e.g. 8GB): all plans decode in one batch, "
                          "split into groups of plans sharing first layers when they would not fit "
                          "(default: config 'generation_memory', else no bound; --dry-run shows the split)")
    run.add_argument("--log-samples", action="store_true",
                     help="also keep per-item requests, outputs and scores in a JSONL file next to each record")
    add_options(run, "report", "quiet", "wandb")
    add_options(run, "dry_run", help={"dry_run": "with an estimated time from the store's own timings"})
    add_grid_options(run)
    run.set_defaults(func=_run)

    summ = actions.add_parser(
        "summary", help="print the summary tables of the records in a results store",
        description="Print normalized-median tables (variant x N -> median, per-task columns) from the "
                    "records in a results store: one table per model, dtype and healed state.")
    summ.add_argument("config", nargs="?", help="only this sweep config's model and tasks")
    add_results(summ)
    summ.add_argument("--raw", action="store_true", help="show raw primary-metric scores instead of normalized ones")
    summ.set_defaults(func=_summary)
