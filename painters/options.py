"""The options every command shares, defined once (the application's one dialect).

A flag means one thing, with one spelling and one default, in every subcommand of both tracks:
each ``add_*`` here is the only place its flag is defined. The sweep grid flags set the config
key of the same name, so a flag and a YAML line are checked by the same code.
"""

from __future__ import annotations

from glue_painters.errors import UserError

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


def pick_tasks(raw: dict, tasks: list[str]) -> dict:
    """``raw`` with ``tasks`` replacing its tasks (``--tasks``), and every per-task ``limit``
    mapping (top level, or a mode's section) narrowed to them. Why: a config with per-task limits
    is split into one process per task by ``--tasks``; the limits of the tasks left out belong to
    the other processes, not an error in this one."""
    def narrow(section):
        lim = section.get("limit") if isinstance(section, dict) else None
        if isinstance(lim, dict):
            kept = {t: v for t, v in lim.items() if t == "default" or t in tasks}
            if kept:
                section["limit"] = kept
            else:  # nothing left for the picked tasks: as if the section gave no limit
                del section["limit"]

    raw = dict(raw, tasks=list(tasks))
    narrow(raw)
    for mode in ("finetune", "probe"):
        if isinstance(raw.get(mode), dict):
            raw[mode] = dict(raw[mode])
            narrow(raw[mode])
    return raw


# ---- the options every command spells the same way -------------------------------------------------
# Defined once so that a flag means one thing (and says the same default) in every subcommand.
def add_results(parser, what: str = "results store folder") -> None:
    parser.add_argument("--results", default=None, metavar="DIR",
                        help=f"{what} (default: $PAINTERS_RESULTS, else ./results)")


def add_data_dir(parser, track: str = "") -> None:
    sub = f"/{track}" if track else ""
    parser.add_argument("--data-dir", default=None, metavar="DIR",
                        help=f"data folder laid out like shared/data{sub} (default: $PAINTERS_DATA, else "
                             f"../shared/data{sub} beside the checkout)")


def add_device(parser, default: str | None = None) -> None:
    parser.add_argument("--device", default=default, metavar="DEV",
                        help=f"cpu, cuda, cuda:N or auto (default: {default or 'cuda if available, else cpu'})")


def add_report(parser, what: str = "the summary tables and the command that made them") -> None:
    parser.add_argument("--report", default=None, metavar="FILE.md", help=f"also write {what} to FILE.md")


def add_model(parser, default: str | None = "smollm2", extra: str = "") -> None:
    parser.add_argument("--model", default=default, metavar="MODEL",
                        help=f"model alias, local folder or hub id (default: {default or 'none'}){extra}")
