"""``painters glue``: run a GLUE sweep from a YAML config, or print its summary table."""

from __future__ import annotations

import sys
from pathlib import Path

from painters.options import add_data_dir, add_grid_options, add_report, add_results
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
                                      "interrupted sweep resumes. Logs to W&B offline unless WANDB_MODE is set. "
                                      "Several processes: accelerate launch --num_processes N -m painters.cli "
                                      "glue run CONFIG (or torchrun): fine-tuning runs use all processes at once "
                                      "(Trainer's data parallelism), the tasks' probes are dealt out among them; "
                                      "each record and W&B run is written once, the main process prints the table.")
    run.add_argument("config", metavar="CONFIG", nargs="?",
                     help="sweep YAML (e.g. configs/glue/minilm_quick.yaml); optional with --model and the grid flags")
    _common(run)
    add_grid_options(run)
    run.add_argument("--tasks", default=None, help="comma-separated tasks, replacing the config's (e.g. rte,mrpc)")
    run.add_argument("--modes", default=None, help="comma-separated modes, replacing the config's: finetune,probe")
    run.add_argument("--limit-train", type=int, default=None, metavar="N",
                     help="train on a fixed random subset of N rows per task (replaces the config's)")
    run.add_argument("--limit", type=int, default=None, metavar="N",
                     help="evaluate on a fixed random subset of N rows per split (replaces the config's)")
    run.add_argument("--limit-eval", type=int, default=None, metavar="N", help="the old spelling of --limit")
    run.add_argument("--seeds", default=None, metavar="SEEDS",
                     help="training seeds of every mode: a count (seeds 0..count-1) or comma-separated seeds "
                          "(replaces the config's; finished seeds are skipped)")
    run.add_argument("--no-wandb", action="store_true", help="do not log runs to Weights & Biases")
    run.add_argument("--no-progress", "--quiet", dest="no_progress", action="store_true", help="no progress bar")
    run.set_defaults(func=_run)

    summ = gsub.add_parser("summary", help="print the table of finished runs",
                           description="Print the variant x N x task table of finished runs. With CONFIG, the "
                                       "runs of that sweep (as `run` would name them); without, every GLUE record "
                                       "in the results folder.")
    summ.add_argument("config", metavar="CONFIG", nargs="?", default=None, help="sweep YAML (optional)")
    _common(summ)
    summ.add_argument("--tasks", default=None, help="comma-separated tasks, replacing the config's")
    summ.add_argument("--modes", default=None, help="comma-separated modes, replacing the config's")
    summ.add_argument("--limit-train", type=int, default=None, metavar="N", help="as given to run")
    summ.add_argument("--limit", type=int, default=None, metavar="N", help="as given to run")
    summ.add_argument("--limit-eval", type=int, default=None, metavar="N", help="the old spelling of --limit")
    summ.add_argument("--seeds", default=None, metavar="SEEDS", help="as given to run")
    summ.set_defaults(func=_summary)


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
    if args.tasks:
        raw = pick_tasks(raw, [t.strip() for t in args.tasks.split(",") if t.strip()])
    if args.modes:
        raw["modes"] = [t.strip() for t in args.modes.split(",") if t.strip()]
    limits = {"limit_train": args.limit_train, "limit": args.limit if args.limit is not None else args.limit_eval}
    for key, value in limits.items():
        if value is None:
            continue
        if value < 1:
            raise UserError(f"--{key.replace('_', '-')} must be at least 1, got {value}")
        raw[key] = value
        _drop_from_modes(raw, key)
    if args.seeds is not None:
        values = [v.strip() for v in args.seeds.split(",") if v.strip()]
        if not values or not all(v.isdigit() for v in values):
            raise UserError(f"--seeds {args.seeds}: a count or comma-separated non-negative seeds")
        raw["seeds"] = int(values[0]) if len(values) == 1 else [int(v) for v in values]
        _drop_from_modes(raw, "seeds")
    return GlueSweepConfig.from_mapping(raw, args.config or "<flags>")


def _drop_from_modes(raw: dict, key: str) -> None:
    """A setting given on the command line replaces the modes' own (their sections win otherwise)."""
    for mode in ("finetune", "probe"):
        if isinstance(raw.get(mode), dict):
            raw[mode] = {k: v for k, v in raw[mode].items() if k != key}


def _limit_text(cfg, mode: str) -> str:
    values = {cfg.setting(mode, "limit", t) for t in cfg.tasks}
    if len(values) == 1:
        return str(values.pop() or "all")
    return ", ".join(f"{t} {cfg.setting(mode, 'limit', t) or 'all'}" for t in cfg.tasks)


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
                         f"{cfg.setting(mode, 'limit_train') or 'all'} rows, eval subset "
                         f"{_limit_text(cfg, mode)} rows per split (fixed random subset, "
                         f"seed {cfg.subset_seed}); {', '.join(f'{k}={v}' for k, v in hp.items())}")
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
    t0 = time.perf_counter()
    records = run_sweep(cfg, _results(args), data_dir=args.data_dir, wandb_on=not args.no_wandb,
                        progress=not args.no_progress, log=lambda m: print(m, file=sys.stderr))
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
        records = run_sweep(cfg, _results(args), data_dir=args.data_dir, wandb_on=False, progress=False, dry=True,
                            log=lambda m: None)
        tasks = cfg.tasks
    else:
        records = list(ResultsStore(_results(args)).records(TRACK))
        tasks = [t.strip() for t in args.tasks.split(",")] if args.tasks else None
        if args.modes:
            records = [r for r in records if r["mode"] in args.modes.split(",")]
    if not records:
        raise UserError(f"no GLUE records in {_results(args)}")
    print(summary_table(records, tasks))
    if args.report:
        write_report(args.report, records, _header("painters " + " ".join(sys.argv[1:]),
                                                   cfg if args.config else None))
    return 0
