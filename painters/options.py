"""The options every command shares, defined once (the application's one dialect).

As mergekit's ``options.py`` does for its merge options, ``OPTIONS`` below is a table: each row
is one flag with its one spelling, its one meaning and its one default, and a command asks for
rows by name (``add_options(parser, "tasks", "limit", "wandb", ...)``) instead of writing its
own ``add_argument``. So ``--tasks`` takes the same form in both tracks, ``--limit`` means the
first N documents or rows everywhere, W&B has the same default, and ``--quiet`` silences the same
bars. Old spellings are rows of ``RENAMED``: given, they stop the command with one line naming
what replaced them (argparse's error, exit status 2).

The values are read by the functions below the table (``names``, ``task_numbers``, ``seeds``,
``wandb_on``, ``quiet``), also once for every command. The sweep grid flags (``GRID_FLAGS``) set
the config key of the same name, so a flag and a YAML line are checked by the same code.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from glue_painters.errors import UserError


# ---- the table --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Option:
    """One shared flag: its spellings (the first is the one help shows first), where its value
    goes, what it means, and argparse's other settings (type, nargs, action, metavar, default)."""

    flags: tuple[str, ...]
    dest: str
    help: str
    settings: dict = field(default_factory=dict)


OPTIONS: dict[str, Option] = {o.dest: o for o in (
    Option(("--tasks",), "tasks", "only these tasks, space or comma separated (replaces the config's)",
           {"nargs": "+", "metavar": "TASK"}),
    Option(("--limit",), "limit", "evaluate the first N documents/rows of each task, in file order (as lm-eval's "
           "--limit); TASK=N sets one task; repeatable or comma separated; replaces the config's limit",
           {"action": "append", "metavar": "N|TASK=N"}),
    Option(("--seeds",), "seeds", "training seeds, the seed values themselves, space or comma separated "
           "(--seeds 0 1 2; --seeds 1 is seed 1); replaces the config's in every mode", {"nargs": "+", "metavar": "SEED"}),
    Option(("--seed-count",), "seed_count", "training seeds 0..COUNT-1 (--seed-count 3 is --seeds 0 1 2)",
           {"type": int, "metavar": "COUNT"}),
    Option(("--wandb",), "wandb", "log each record as its own W&B run, offline unless WANDB_MODE says otherwise "
           "(W&B's WANDB_* variables and the config's wandb: section are respected); --no-wandb: no W&B "
           "(default: on when the config has a wandb: section, else off)",
           {"action": argparse.BooleanOptionalAction, "default": None}),
    Option(("--quiet", "--no-progress"), "quiet", "no progress bars, the tokenizing bars of datasets and "
           "transformers included", {"action": "store_true"}),
    Option(("--results",), "results", "results store folder (default: $PAINTERS_RESULTS, else ./results)",
           {"metavar": "DIR"}),
    Option(("--data-dir",), "data_dir", "data folder laid out like shared/data (default: $PAINTERS_DATA, else "
           "../shared/data beside the checkout)", {"metavar": "DIR"}),
    Option(("--device",), "device", "cpu, cuda, cuda:N or auto (default: cuda if available, else cpu)",
           {"metavar": "DEV"}),
    Option(("--dtype",), "dtype", "model dtype (default: bfloat16 on CUDA, float32 on CPU)",
           {"choices": ["float32", "bfloat16", "float16", "auto"]}),
    Option(("--dry-run",), "dry_run", "list the runs and what the store already holds; run nothing",
           {"action": "store_true"}),
    Option(("--report",), "report", "also write the summary tables and the command that made them to FILE.md",
           {"metavar": "FILE.md"}),
    Option(("--epochs",), "epochs", "training epochs of every mode (replaces the config's)",
           {"type": float, "metavar": "E"}),
    Option(("--sample",), "sample", "evaluate a fixed random subset of N rows per split instead of the first N "
           "(the GLUE track's subsets, seeded by subset_seed); TASK=N sets one task; replaces the config's sample",
           {"action": "append", "metavar": "N|TASK=N"}),
)}

# old spellings -> what replaced them (one line each)
RENAMED: dict[str, str] = {
    "--limit-eval": "--limit-eval is gone: --sample N evaluates a fixed random subset of N rows (what --limit-eval "
                    "did), --limit N the first N rows",
    "--limit-train": "--limit-train is gone: --sample-train N trains on the same fixed random subset of N rows "
                     "(--limit always means the first N)",
}


class _Renamed(argparse.Action):
    """An old spelling: parsing stops with one line naming what replaced it."""

    def __init__(self, option_strings, dest, **kwargs):
        kwargs.pop("nargs", None)
        kwargs.pop("default", None)
        super().__init__(option_strings, dest, nargs="?", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error(RENAMED[option_string])


def add_options(parser, *names: str, help: dict | None = None, group: str | None = None) -> None:
    """The rows ``names`` of ``OPTIONS`` as flags of ``parser`` (``help`` may add a command's own
    words to a row's help, after it), and every old spelling of ``RENAMED`` that belongs to them."""
    target = parser.add_argument_group(group) if group else parser
    for name in names:
        opt = OPTIONS[name]
        text = opt.help + (f"; {help[name]}" if help and name in help else "")
        target.add_argument(*opt.flags, dest=opt.dest, help=text, **opt.settings)
    if {"limit", "sample"} & set(names):
        add_renamed(parser)


def add_renamed(parser) -> None:
    """Every old spelling of ``RENAMED`` as a hidden flag that stops with its one line."""
    for old in RENAMED:
        if old not in parser._option_string_actions:
            parser.add_argument(old, action=_Renamed, dest="_renamed")


# ---- reading the values -----------------------------------------------------------------------------
def names(values: list[str] | None) -> list[str] | None:
    """``--tasks a b`` or ``--tasks a,b`` (or both): the names in order, each once; None if not given."""
    if not values:
        return None
    out = [t.strip() for v in values for t in v.split(",") if t.strip()]
    return list(dict.fromkeys(out)) or None


def task_numbers(values: list[str] | None, flag: str) -> dict | None:
    """``--limit 20 --limit gsm8k=2`` (or ``--limit 20,gsm8k=2``) -> {"default": 20, "gsm8k": 2}."""
    if not values:
        return None
    out = {}
    for v in (p for value in values for p in value.split(",") if p.strip()):
        name, eq, num = v.rpartition("=")
        if not num.strip().isdigit() or int(num) < 1:
            raise UserError(f"{flag} takes a positive number or TASK=NUMBER, got {v!r}")
        if eq and not name.strip():
            raise UserError(f"{flag} {v}: give TASK=NUMBER")
        out[name.strip() if eq else "default"] = int(num)
    return out or None


def seeds(args) -> list[int] | None:
    """``--seeds 0 1 2`` (the values) or ``--seed-count 3`` (0..2); None when neither is given."""
    given, count = getattr(args, "seeds", None), getattr(args, "seed_count", None)
    if given and count is not None:
        raise UserError("give --seeds (the seed values) or --seed-count (seeds 0..COUNT-1), not both")
    if count is not None:
        if count < 1:
            raise UserError(f"--seed-count must be at least 1, got {count}")
        return list(range(count))
    if not given:
        return None
    values = [v.strip() for s in given for v in s.split(",") if v.strip()]
    if not values or not all(v.isdigit() for v in values):
        raise UserError(f"--seeds {' '.join(given)}: the seed values, non-negative integers (a count is --seed-count)")
    if len(set(values)) != len(values):
        raise UserError(f"--seeds {' '.join(given)}: a seed is given twice")
    return [int(v) for v in values]


def wandb_on(args, config_section: dict | None) -> bool:
    """``--wandb``/``--no-wandb`` when given; else on exactly when the config has a ``wandb:``
    section (a config saying where its runs go asks for them). The same rule in every command."""
    flag = getattr(args, "wandb", None)
    return bool(config_section) if flag is None else flag


def quiet(args) -> bool:
    """``--quiet``: this command's bars off, and datasets' and transformers' own (tokenizing,
    ``map``, downloads), which a command's ``progress=False`` alone does not reach."""
    if getattr(args, "quiet", False):
        import datasets
        import transformers

        datasets.disable_progress_bars()
        transformers.utils.logging.disable_progress_bar()
        return True
    return False


def set_rows(raw: dict, key: str, numbers: dict | None, *, replaces: tuple[str, ...] = ()) -> dict:
    """``raw`` with a ``--limit``/``--sample`` (``task_numbers``) applied to its ``key``: a plain N
    replaces every per-task value of the config, TASK=N sets one task. The keys ``replaces`` (the
    other way of choosing the same rows) and the mode sections' own values of them all are dropped:
    the command line decides which rows are evaluated."""
    if not numbers:
        return raw
    raw = dict(raw)
    old = raw.get(key)
    merged = dict(old) if isinstance(old, dict) else ({"default": old} if old is not None else {})
    if "default" in numbers:
        merged = {}
    merged.update(numbers)
    raw[key] = merged
    for other in replaces:
        raw.pop(other, None)
    for mode in ("finetune", "probe"):
        if isinstance(raw.get(mode), dict):
            raw[mode] = {k: v for k, v in raw[mode].items() if k not in (key, *replaces)}
    return raw


# ---- the sweep grid as flags ---------------------------------------------------------------------
# Each flag sets the config key of the same name (``glue_painters.sweep_config``), so a flag and a
# YAML line are checked by the same code and mean the same thing in both tracks.
GRID_FLAGS = {
    "model": "model alias, local folder or hub id (overrides the config's)",
    "variants": "comma-separated variants, e.g. skip,random (overrides the config's)",
    "n": "N values: all, 4, 2,4,6 or FROM:TO[:STEP] (overrides the config's)",
    "k": "looped_parallel iterations, e.g. 3 or 2,3,4 (overrides the config's)",
    "permutation_seeds": "random variant: a count or comma-separated seeds (overrides the config's)",
    "plans": "extra rows: variant specs or plan texts separated by ';' (adds to the config's)",
}


def add_grid_options(parser) -> None:
    g = parser.add_argument_group("the sweep grid (instead of, or on top of, a config file)")
    for key, text in GRID_FLAGS.items():
        g.add_argument("--" + key.replace("_", "-"), dest=f"grid_{key}", metavar=key.upper(), help=text)


def _scalar(text: str):
    text = text.strip()
    return int(text) if text.lstrip("-").isdigit() else text


def _flag_value(key: str, text: str):
    if key == "model":
        return text
    if key == "plans":
        return [p.strip() for p in text.split(";") if p.strip()]
    if key == "n" and ":" in text:
        parts = [_scalar(p) for p in text.split(":")]
        if len(parts) not in (2, 3) or not all(isinstance(p, int) for p in parts):
            raise UserError(f"--n {text}: FROM:TO or FROM:TO:STEP takes integers")
        return dict(zip(("from", "to", "step"), parts))
    values = [_scalar(v) for v in text.split(",") if v.strip()]
    if key in ("permutation_seeds", "k") and len(values) == 1:
        return values[0]  # one number: k itself, or a count of seeds (as in YAML)
    if key == "n" and values == ["all"]:
        return "all"
    return values


def grid_overrides(args, raw, *, from_file: bool) -> dict:
    """The config mapping with the grid flags applied (``plans`` adds, the rest replace). A file's
    own problems (empty, not a mapping) are left to the grammar, which names the file."""
    if from_file and (not isinstance(raw, dict) or not any(getattr(args, f"grid_{k}", None) for k in GRID_FLAGS)):
        return raw
    out = dict(raw or {})
    for key in GRID_FLAGS:
        text = getattr(args, f"grid_{key}", None)
        if text is None:
            continue
        value = _flag_value(key, text)
        out[key] = (list(out.get("plans") or []) + value) if key == "plans" else value
    if "model" not in out and not from_file:
        raise UserError("give a sweep config file or --model (and the grid flags)")
    return out


ROW_KEYS = ("limit", "sample")  # per-task settings of which evaluation rows run


def pick_tasks(raw: dict, tasks: list[str]) -> dict:
    """``raw`` with ``tasks`` replacing its tasks (``--tasks``), and every per-task ``limit`` or
    ``sample`` mapping (top level, or a mode's section) narrowed to them. Why: a config with
    per-task limits is split into one process per task by ``--tasks``; the limits of the tasks
    left out belong to the other processes, not an error in this one."""
    def narrow(section):
        for key in ROW_KEYS:
            lim = section.get(key) if isinstance(section, dict) else None
            if isinstance(lim, dict):
                kept = {t: v for t, v in lim.items() if t == "default" or t in tasks}
                if kept:
                    section[key] = kept
                else:  # nothing left for the picked tasks: as if the section gave no limit
                    del section[key]

    raw = dict(raw, tasks=list(tasks))
    narrow(raw)
    for mode in ("finetune", "probe"):
        if isinstance(raw.get(mode), dict):
            raw[mode] = dict(raw[mode])
            narrow(raw[mode])
    return raw


# ---- rows of the table with a command's own words -------------------------------------------------
def add_results(parser, what: str = "results store folder") -> None:
    parser.add_argument(*OPTIONS["results"].flags, dest="results", default=None, metavar="DIR",
                        help=f"{what} (default: $PAINTERS_RESULTS, else ./results)")


def add_data_dir(parser, track: str = "") -> None:
    sub = f"/{track}" if track else ""
    parser.add_argument(*OPTIONS["data_dir"].flags, dest="data_dir", default=None, metavar="DIR",
                        help=f"data folder laid out like shared/data{sub} (default: $PAINTERS_DATA, else "
                             f"../shared/data{sub} beside the checkout)")


def add_device(parser, default: str | None = None) -> None:
    parser.add_argument(*OPTIONS["device"].flags, dest="device", default=default, metavar="DEV",
                        help=f"cpu, cuda, cuda:N or auto (default: {default or 'cuda if available, else cpu'})")


def add_report(parser, what: str = "the summary tables and the command that made them") -> None:
    parser.add_argument(*OPTIONS["report"].flags, dest="report", default=None, metavar="FILE.md",
                        help=f"also write {what} to FILE.md")


def add_model(parser, default: str | None = "smollm2", extra: str = "") -> None:
    parser.add_argument("--model", default=default, metavar="MODEL",
                        help=f"model alias, local folder or hub id (default: {default or 'none'}){extra}")
