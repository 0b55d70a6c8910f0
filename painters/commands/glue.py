"""``painters glue``: run a GLUE sweep from a YAML config, or print its summary table."""

from __future__ import annotations

import sys
from pathlib import Path

from painters.options import (add_data_dir, add_grid_options, add_options, add_report, add_results, names, quiet,
                              seeds, set_rows, task_numbers, wandb_on)
from glue_painters.errors import UserError


def add_subparsers(sub) -> None:
    glue = sub.add_parser(
        "glue", help="GLUE fine-tuning and head-only probing under layer-rewiring variants",
        description="GLUE fine-tuning (transformers.Trainer) and head-only probing of a rewired encoder. "
                    "One fine-tuning run on several GPUs: accelerate launch -m painters.commands.finetune --help",
    )
    gsub = glue.add_subparsers(dest="glue_command", metavar="{run,summary}", required=True)

    run = gsub.add_parser("run", help="run every missing run of a sweep config and print its table",
                          description="Run a sweep (configs/glue/*.yaml). Finished runs are skipped, so an "
                                      "interrupted sweep resumes. With --wandb (or a wandb: section in the config) "
                                      "each record is a W&B run, offline unless WANDB_MODE is set. "
                                      "Several processes: accelerate launch --multi_gpu --num_processes N -m "
                                      "painters.cli glue run CONFIG (or torchrun): a fine-tune is data-parallel over "
                                      "all processes (Trainer's; a gloo group on the CPU), the tasks' probes are "
                                      "dealt out among them; "
                                      "each record and W&B run is written once, the main process prints the table.")
    run.add_argument("config", metavar="CONFIG", nargs="?",
                     help="sweep YAML (e.g. configs/glue/minilm_quick.yaml); optional with --model and the grid flags")
    _common(run)
    add_grid_options(run)
    _selection(run)
    add_options(run, "epochs", "wandb", "quiet", "dry_run")
    run.set_defaults(func=_run)

    summ = gsub.add_parser("summary", help="print the table of finished runs",
                           description="Print the variant x N x task table of finished runs. With CONFIG, the "
                                       "runs of that sweep (as `run` would name them); without, every GLUE record "
                                       "in the results folder.")
    summ.add_argument("config", metavar="CONFIG", nargs="?", default=None, help="sweep YAML (optional)")
    _common(summ)
    _selection(summ, "as given to run")
    summ.set_defaults(func=_summary)


def _selection(p, extra: str | None = None) -> None:
    """The options that choose a sweep's runs, the same in ``run`` and ``summary``."""
    add_options(p, "tasks", "limit", "sample", "seeds", "seed_count",
                help=dict.fromkeys(("tasks", "limit", "sample", "seeds", "seed_count"), extra) if extra else None)
    p.add_argument("--modes", nargs="+", default=None, metavar="MODE",
                   help="finetune and/or probe, space or comma separated (replaces the config's)")
    p.add_argument("--sample-train", type=int, default=None, metavar="N",
                   help="train on a fixed random subset of N rows per task (replaces the config's)")


def _common(p) -> None:
    add_results(p)
    add_data_dir(p, "glue")
    add_report(p, "the table as Markdown, with the command that made it,")


def _config(args):
    """The config file with the command line's changes, read by the shared grammar (one check for
    both). A limit or seeds given on the command line win over the config's in every mode (why
    seeds: to add training seeds to some rows of a finished sweep, e.g. ``--variants
    skip,middle_repeat --seeds 2`` runs seed 1 where seed 0 is done, without a second config)."""
    from painters.options import grid_overrides, pick_tasks
    from glue_painters.yamlfile import read_yaml

    from glue_eval.config import GlueSweepConfig

    raw = read_yaml(args.config) if args.config else None
    raw = grid_overrides(args, raw, from_file=bool(args.config))
    if not isinstance(raw, dict) or not raw:
        return GlueSweepConfig.from_mapping(raw, args.config or "<flags>")  # the grammar's one-line error
    raw = dict(raw)
    tasks = names(args.tasks)
    if tasks:
        raw = pick_tasks(raw, tasks)
    if args.modes:
        raw["modes"] = names(args.modes)
    raw = set_rows(raw, "limit", task_numbers(args.limit, "--limit"), replaces=("sample",))
    raw = set_rows(raw, "sample", task_numbers(args.sample, "--sample"), replaces=("limit",))
    if args.sample_train is not None:
        if args.sample_train < 1:
            raise UserError(f"--sample-train must be at least 1, got {args.sample_train}")
        raw["sample_train"] = args.sample_train
        _drop_from_modes(raw, "sample_train")
    chosen = seeds(args)
    if chosen is not None:
        raw["seeds"] = chosen
        raw.pop("seed_count", None)
        _drop_from_modes(raw, "seeds", "seed_count")
    if getattr(args, "epochs", None) is not None:
        if args.epochs <= 0:
            raise UserError(f"--epochs must be positive, got {args.epochs:g}")
        epochs = int(args.epochs) if float(args.epochs).is_integer() else args.epochs
        for mode in raw.get("modes") or ("finetune", "probe"):
            if mode in ("finetune", "probe"):  # an unknown mode is the grammar's to name
                raw[mode] = dict(raw.get(mode) or {}, epochs=epochs)
    return GlueSweepConfig.from_mapping(raw, args.config or "<flags>")


def _drop_from_modes(raw: dict, *keys: str) -> None:
    """A setting given on the command line replaces the modes' own (their sections win otherwise)."""
    for mode in ("finetune", "probe"):
        if isinstance(raw.get(mode), dict):
            raw[mode] = {k: v for k, v in raw[mode].items() if k not in keys}


def _rows_text(cfg, mode: str) -> str:
    """Which evaluation rows a mode's runs score, per task when they differ."""
    def one(task):
        first, sample = cfg.setting(mode, "limit", task), cfg.setting(mode, "sample", task)
        return (f"first {first}" if first else f"random {sample} (seed {cfg.subset_seed})" if sample else "all")

    values = {one(t) for t in cfg.tasks}
    return values.pop() if len(values) == 1 else ", ".join(f"{t} {one(t)}" for t in cfg.tasks)


def _results(args):
    from glue_painters.results import DEFAULT_ROOT
    return Path(args.results) if args.results else DEFAULT_ROOT


def _header(argv_cmd: str, cfg=None, wall_s: float | None = None) -> str:
    lines = ["# GLUE sweep summary", "", f"Command: `{argv_cmd}`", ""]
    if cfg is not None:
        lines.append(f"- model `{cfg.model}`; tasks {', '.join(cfg.tasks)}; variants {', '.join(cfg.variants)}"
                     f"{'; plans ' + ', '.join(map(str, cfg.plans)) if cfg.plans else ''}; N {cfg.n or 'all'}; k {cfg.k}")
        for mode in cfg.modes:
            hp = (cfg.finetune_hp if mode == "finetune" else cfg.probe_hp).settings()
            lines.append(f"- {mode}: seeds {cfg.setting(mode, 'seeds')}; train subset "
                         f"{cfg.setting(mode, 'sample_train') or 'all'} rows (fixed random subset, seed "
                         f"{cfg.subset_seed}), eval rows per split: {_rows_text(cfg, mode)}; "
                         f"{', '.join(f'{k}={v}' for k, v in hp.items())}")
    if wall_s is not None:
        lines.append(f"- wall time of this command: {wall_s / 60:.1f} min")
    lines.append("- cell = task score x100 (mean of the task's official metrics), mean ± std over seeds; "
                 "avg = the paper's unnormalized mean over the tasks shown")
    return "\n".join(lines)


def _run(args) -> int:
    from glue_eval.pipeline import run_sweep
    from glue_eval.processes import is_main_process
    from glue_eval.summary import summary_table, write_report
    import time

    from glue_painters.outputs import output_file, output_folder

    output_folder(_results(args), "--results")  # before any model loads
    if args.report:
        output_file(args.report, "--report")
    cfg = _config(args)
    if args.dry_run:
        return _dry_run(args, cfg)
    t0 = time.perf_counter()
    records = run_sweep(cfg, results_dir=_results(args), data_dir=args.data_dir, wandb_on=wandb_on(args, cfg.wandb),
                        progress=not quiet(args), log=lambda m: print(m, file=sys.stderr)).records
    if not is_main_process():
        return 0  # under accelerate launch the main process alone prints the table and the report
    table = summary_table(records, cfg.tasks)
    print(table)
    if args.report:
        cmd = "painters " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["glue"] else f"painters glue run {args.config}"
        write_report(args.report, records, _header(cmd, cfg, time.perf_counter() - t0))
    return 0


def _summary(args) -> int:
    from glue_painters.results import ResultsStore
    from glue_eval.pipeline import run_sweep
    from glue_eval.records import TRACK
    from glue_eval.summary import summary_table, write_report
    if args.config:
        cfg = _config(args)
        records = run_sweep(cfg, results_dir=_results(args), data_dir=args.data_dir, wandb_on=False, progress=False,
                            dry=True, log=lambda m: None).records
        tasks = cfg.tasks
    else:
        records = list(ResultsStore(_results(args)).records(TRACK))
        tasks = names(args.tasks)
        if args.modes:
            records = [r for r in records if r["mode"] in names(args.modes)]
    if not records:
        raise UserError(f"no GLUE records in {_results(args)}")
    print(summary_table(records, tasks))
    if args.report:
        write_report(args.report, records, _header("painters " + " ".join(sys.argv[1:]),
                                                   cfg if args.config else None))
    return 0


def _dry_run(args, cfg) -> int:
    """``--dry-run``: the sweep's runs, how many the store holds, nothing run or written."""
    from glue_eval.pipeline import run_sweep

    outcome = run_sweep(cfg, results_dir=_results(args), data_dir=args.data_dir, wandb_on=False, progress=False,
                        dry=True, log=lambda m: None)
    done = {(r["label"], r["task"], r["mode"], r["seed"]) for r in outcome.records}
    print(f"{cfg.model}: {len(outcome.specs)} runs ({', '.join(cfg.modes)} on {', '.join(cfg.tasks)}); "
          f"{len(outcome.records)} in {_results(args)}, {len(outcome.specs) - len(outcome.records)} to run")
    for spec in outcome.specs:
        state = "done" if (spec.label, spec.task, spec.mode, spec.seed) in done else "to run"
        print(f"  {spec.mode:8} {spec.task:6} {spec.label:28} seed {spec.seed}  {state}")
    return 0
