"""One sweep grammar for both tracks: what a config file may say, checked in one place.

A sweep config names a model, a grid of variants (the paper's seven, ``skip_one``/``switch``, or
plans a user writes) and the tasks to score them on. Both tracks read the same keys with the same
meaning; each adds its own settings (the decoder track its batch size and primary metrics, the
GLUE track its modes, training seeds and hyperparameters)::

    model: smollm2                 # alias, local folder or hub id (required)
    variants: [full, skip, middle_repeat, reverse, random, parallel, looped_parallel]
    n: all                         # every valid N; or 3, [0, 2, 4], {from: 0, to: 14, step: 2}
    k: 3                           # looped_parallel iterations: a number or a list (Fig. 10)
    permutation_seeds: 10          # random variant: a count (0..count-1) or a list of seeds
    i: all                         # skip_one / switch layers, duplicate's block starts: all, or a list
    width: {from: 1, to: 6}        # duplicate: block widths j - i (required with duplicate)
    times: 2                       # duplicate: how often the block runs (a number or a list)
    plans: ['0-7,[8-23]x3,24-31', 'skip:n=1']   # more rows: plan text or variant specs
    tasks: [lambada_openai, arc_easy]
    limit: 200                     # evaluation documents/rows per task, or {default: 200, hellaswag: 100}
    description: free text, kept in every record

Why a table of parsers rather than pydantic (mergekit's choice): every error here is one line
naming the file, the key and what it accepts, which a user of a long sweep reads before anything
runs; the table is the schema, and ``keys_help`` prints it. A track subclasses ``SweepConfig``
with its own fields and adds its own rows (``TRACK_KEYS``); a key a track does not know is an
error that lists the keys it does.

Expansion (``specs``) turns the grid into ``VariantSpec`` rows for a model of T layers, in config
order, each once; ``n: all`` means every valid N for that T. ``duplicate`` (relayering) expands
over every width, then every start ``i`` (``all``: every i with i + width <= T), then every
``times``: the scan of every block of width 1..W is ``sum(T - w + 1 for w in 1..W)`` rows per
``times`` value.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping

from .errors import UserError
from .plans import PlanError
from .variants import VARIANTS, VariantSpec, n_range

WANDB_SETTINGS = {"project", "entity", "group", "tags"}
PAPER_VARIANTS = ("full", "skip", "middle_repeat", "reverse", "random", "parallel", "looped_parallel")


@dataclass(frozen=True)
class Key:
    """One config key: what it accepts (for messages and ``keys_help``) and how it is read."""

    help: str
    read: Callable[[Any, str], Any]  # (value, "config FILE: 'key'") -> value, or UserError


# ---- readers: each takes the raw value and where it came from, returns the checked value --------
def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def read_str(v, where):
    if not isinstance(v, str) or not v.strip():
        raise UserError(f"{where} must be a non-empty string, got {v!r}")
    return v.strip()


def read_names(v, where) -> list[str]:
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise UserError(f"{where} must be a list of names, got {v!r}")
    return list(dict.fromkeys(v))


def read_ints(v, where, *, allow_all=False, minimum=None) -> list[int] | None:
    """An integer, a list of them, or (``allow_all``) ``all`` (None) or ``{from, to, step}``."""
    if allow_all and v == "all":
        return None
    if isinstance(v, dict) and allow_all:
        if set(v) <= {"min", "max"} and v:
            raise UserError(f"{where}: {{min, max}} is written {{from: A, to: B}} now (one grammar for both tracks)")
        if set(v) - {"from", "to", "step"} or "to" not in v or not all(_is_int(x) for x in v.values()):
            raise UserError(f"{where} as a mapping is {{from: A, to: B, step: C}} of integers, got {v!r}")
        if v.get("step", 1) < 1:
            raise UserError(f"{where}: step must be at least 1")
        out = list(range(v.get("from", 0), v["to"] + 1, v.get("step", 1)))
    elif _is_int(v):
        out = [v]
    elif isinstance(v, list) and v and all(_is_int(x) for x in v):
        out = list(dict.fromkeys(v))
    else:
        shape = "all, an integer, a list of integers or {from, to, step}" if allow_all else "an integer or a list of integers"
        raise UserError(f"{where} must be {shape}, got {v!r}")
    if not out:
        raise UserError(f"{where} selects nothing")
    if minimum is not None and min(out) < minimum:
        raise UserError(f"{where}: every value must be at least {minimum}, got {min(out)}")
    return out


def read_seeds(v, where) -> list[int]:
    """A count (seeds 0..count-1) or a list of distinct non-negative seeds."""
    if _is_int(v):
        if v < 1:
            raise UserError(f"{where} as a count must be at least 1, got {v}")
        return list(range(v))
    if not isinstance(v, list) or not v or not all(_is_int(s) for s in v) or len(set(v)) != len(v):
        raise UserError(f"{where} must be a count or a list of distinct integers, got {v!r}")
    if min(v) < 0:
        raise UserError(f"{where}: seeds are non-negative, got {min(v)}")
    return list(v)


def read_positive(v, where, *, allow_none=True):
    if v is None and allow_none:
        return None
    if not _is_int(v) or v < 1:
        raise UserError(f"{where} must be a positive integer{' or null' if allow_none else ''}, got {v!r}")
    return v


def read_widths(v, where) -> list[int]:
    """duplicate's block widths: as ``n`` but without ``all`` (every width up to T is T(T+1)/2
    rows, which a user should ask for by number)."""
    if v == "all":
        raise UserError(f"{where} must name the widths (a number, a list or {{from: 1, to: 6}}), not all")
    return read_ints(v, where, allow_all=True, minimum=1)


def read_plans(v, where) -> list[VariantSpec]:
    if v is None:
        return []
    if not isinstance(v, list) or not all(isinstance(p, str) for p in v):
        raise UserError(f"{where} must be a list of plan texts or variant specs, got {v!r}")
    try:
        return list(dict.fromkeys(VariantSpec.parse(p) for p in v))
    except PlanError as e:
        raise UserError(f"{where}: {e}") from None


def read_variants(v, where) -> list[str]:
    names = read_names(v, where)
    bad = [x for x in names if x not in VARIANTS]
    if bad:
        names = ", ".join(f"'{x}'" for x in bad)
        raise UserError(f"{where}: unknown variant{'s' if len(bad) > 1 else ''} {names}; known: {', '.join(VARIANTS)}")
    return names


# ---- the shared config -------------------------------------------------------------------------
@dataclass
class SweepConfig:
    """The grid both tracks share. A track subclasses it, adding fields and ``TRACK_KEYS`` rows."""

    model: str
    variants: list[str] = field(default_factory=lambda: list(PAPER_VARIANTS))
    n: list[int] | None = None            # None: every valid N
    k: list[int] = field(default_factory=lambda: [3])
    permutation_seeds: list[int] | None = None
    i: list[int] | None = None            # None: every valid layer (duplicate: every valid start)
    width: list[int] | None = None        # duplicate's block widths (required when it is listed)
    times: list[int] = field(default_factory=lambda: [2])
    plans: list[VariantSpec] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    limit: dict[str, int | None] = field(default_factory=dict)
    description: str = ""
    wandb: dict = field(default_factory=dict)
    source: str = "<config>"
    raw: dict = field(default_factory=dict, repr=False)

    TRACK: ClassVar[str] = ""
    DEFAULT_TASKS: ClassVar[tuple[str, ...]] = ()
    DEFAULT_PERMUTATION_SEEDS: ClassVar[int | None] = 10
    TRACK_KEYS: ClassVar[dict[str, Key]] = {}
    RENAMED: ClassVar[dict[str, str]] = {}  # an old key -> "now spelled X ..." (what replaced it)

    # -- hooks a track overrides --
    @classmethod
    def task_name(cls, name: str) -> str:
        """The canonical name of a task of this track, or a UserError naming the known ones."""
        return name

    def check(self) -> None:
        """Checks that need several keys at once (e.g. a metric of a listed task)."""

    # -- reading --
    @classmethod
    def keys(cls) -> dict[str, Key]:
        return {**COMMON_KEYS, **cls.TRACK_KEYS}

    @classmethod
    def keys_help(cls) -> str:
        return "\n".join(f"  {name:18s} {key.help}" for name, key in cls.keys().items())

    @classmethod
    def from_mapping(cls, raw: Any, source: str = "<config>"):
        """Check a mapping read from YAML and fill in the defaults; every error is one line."""
        where = f"config {source}"
        known = cls.keys()
        if raw is None or raw == {}:
            raise UserError(f"{where} is empty: it needs at least 'model:' (keys: {', '.join(known)})")
        if not isinstance(raw, dict):
            raise UserError(f"{where}: a sweep config is a YAML mapping (model:, variants:, tasks: ...), "
                            f"got {type(raw).__name__}")
        for old, new in cls.RENAMED.items():
            if old in raw:
                raise UserError(f"{where}: '{old}' is {new}")
        unknown = sorted(map(str, set(raw) - set(known)))
        if unknown:
            raise UserError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(known)}")
        if "model" not in raw:
            raise UserError(f"{where}: 'model' (an alias, folder or hub id) is required")
        values = {name: known[name].read(value, f"{where}: '{name}'") for name, value in raw.items()}
        tasks = values.get("tasks") or list(cls.DEFAULT_TASKS)
        if not tasks:
            raise UserError(f"{where}: 'tasks' must be a non-empty list")
        values["tasks"] = list(dict.fromkeys(cls.task_name(t) for t in tasks))
        values["limit"] = read_limits(raw.get("limit"), values["tasks"], cls.task_name, where)
        if "permutation_seeds" not in values and cls.DEFAULT_PERMUTATION_SEEDS is not None:
            values["permutation_seeds"] = list(range(cls.DEFAULT_PERMUTATION_SEEDS))
        cfg = cls(**values, source=source, raw=dict(raw))
        if not cfg.variants and not cfg.plans:
            raise UserError(f"{where}: nothing to run: give 'variants' or 'plans'")
        if "duplicate" in cfg.variants and cfg.width is None:
            raise UserError(f"{where}: variant duplicate needs 'width' (block widths j - i: a number, a list "
                            f"or {{from: 1, to: 6}})")
        for key in ("width", "times"):
            if key in raw and "duplicate" not in cfg.variants:
                raise UserError(f"{where}: '{key}' is the duplicate variant's, which 'variants' does not list")
        cfg.check()
        return cfg

    # -- expanding --
    def n_values(self, num_layers: int) -> list[int]:
        valid = n_range(num_layers)
        ns = self.n if self.n is not None else valid
        for n in ns:
            if n not in valid:
                raise UserError(f"config {self.source}: N={n} is out of range for {self.model} ({num_layers} layers): "
                                f"valid N are {valid[0]}..{valid[-1]}")
        return list(ns)

    def specs(self, num_layers: int, permutation_seeds: list[int] | None = None) -> list[VariantSpec]:
        """Every row of the grid for a model of ``num_layers`` layers, in config order, each once.

        ``permutation_seeds`` overrides the config's (the GLUE track gives each training seed's
        run its own permutation when the config names none)."""
        seeds = permutation_seeds if permutation_seeds is not None else self.permutation_seeds
        out: dict[VariantSpec, None] = {}
        for variant in self.variants:
            wanted = VARIANTS[variant][1]
            if "n" in wanted:
                for n in self.n_values(num_layers):
                    if variant == "random":
                        out.update((VariantSpec.of(variant, n=n, seed=s), None) for s in seeds or [0])
                    elif variant == "looped_parallel":
                        out.update((VariantSpec.of(variant, n=n, k=k), None) for k in self.k)
                    else:
                        out[VariantSpec.of(variant, n=n)] = None
            elif variant == "duplicate":
                out.update((spec, None) for spec in self.duplicate_specs(num_layers))
            elif "i" in wanted:
                top = num_layers - 1 if variant == "skip_one" else num_layers - 2
                for i in self.i if self.i is not None else range(top + 1):
                    out[VariantSpec.of(variant, i=i)] = None
            else:
                out[VariantSpec.of(variant)] = None
        out.update((spec, None) for spec in self.plans)
        for spec in out:
            spec.plan(num_layers)  # every row checked before any work starts
        return list(out)

    def duplicate_specs(self, num_layers: int) -> list[VariantSpec]:
        """The relayering scan: for each width w, each start i (``i: all``: 0..T-w), each ``times``,
        the block i..i+w-1 duplicated. A listed start that does not fit a listed width is an error
        naming both, not a row silently dropped."""
        out = []
        for w in self.width or []:
            if w > num_layers:
                raise UserError(f"config {self.source}: width {w} is wider than {self.model} ({num_layers} layers)")
            starts = self.i if self.i is not None else range(num_layers - w + 1)
            for i in starts:
                if i + w > num_layers:
                    raise UserError(f"config {self.source}: duplicate block i={i}, width {w} runs past the last "
                                    f"layer of {self.model} ({num_layers} layers): i + width must be <= {num_layers}")
                out += [VariantSpec.of("duplicate", i=i, j=i + w, times=t) for t in self.times]
        return out

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


def read_limits(value, tasks: list[str], task_name: Callable[[str], str], where: str) -> dict[str, int | None]:
    """``limit``: a number for every task, or ``{default: N, <task>: N}``; None means all."""
    if isinstance(value, dict):
        per_task = {}
        for name, v in value.items():
            per_task["default" if name == "default" else task_name(str(name))] = v
        unknown = sorted(set(per_task) - set(tasks) - {"default"})
        if unknown:
            raise UserError(f"{where}: 'limit' names task(s) not in 'tasks': {', '.join(unknown)}")
        limits = {t: per_task.get(t, per_task.get("default")) for t in tasks}
    else:
        limits = {t: value for t in tasks}
    return {t: read_positive(v, f"{where}: limit for {t}") for t, v in limits.items()}


def read_limit_shape(v, where):
    if v is None or isinstance(v, dict):
        return v
    return read_positive(v, where)


COMMON_KEYS: dict[str, Key] = {
    "model": Key("model alias, local folder or hub id (required)", read_str),
    "variants": Key(f"variants to run (default: the paper's {', '.join(PAPER_VARIANTS)})", read_variants),
    "n": Key("N values: all (default: every valid N), a number, a list, or {from, to, step}",
             lambda v, w: read_ints(v, w, allow_all=True, minimum=0)),
    "k": Key("looped_parallel iterations: a number or a list (default 3; Fig. 10 sweeps it)",
             lambda v, w: read_ints(v, w, minimum=1)),
    "permutation_seeds": Key("random variant: a count (seeds 0..count-1) or a list of seeds", read_seeds),
    "i": Key("skip_one/switch layer indices, duplicate's block starts: all (default) or a list",
             lambda v, w: read_ints(v, w, allow_all=True, minimum=0)),
    "width": Key("duplicate's block widths j - i: a number, a list or {from, to, step} (required with duplicate)",
                 lambda v, w: read_widths(v, w)),
    "times": Key("duplicate: how often the block runs, a number or a list (default 2: once more)",
                 lambda v, w: read_ints(v, w, minimum=2)),
    "plans": Key("more rows: plan text ('0-7,[8-23]x3,24-31') or variant specs ('skip:n=1')", read_plans),
    "tasks": Key("benchmarks / GLUE tasks (default: the track's)", read_names),
    "limit": Key("evaluation documents/rows per task: a number, or {default: N, <task>: N}; omit for all", read_limit_shape),
    "description": Key("free text, kept in every record", lambda v, w: "" if v is None else str(v)),
    "wandb": Key("W&B settings: project, entity, group, tags (W&B's environment variables otherwise)",
                 lambda v, w: track_section(v, WANDB_SETTINGS, w)),
}


def track_section(raw: Mapping, allowed: set[str], where: str) -> dict:
    """A nested settings mapping (``finetune:``, ``wandb:``): a dict with known keys only."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise UserError(f"{where} must be a mapping of settings, got {raw!r}")
    unknown = sorted(map(str, set(raw) - allowed))
    if unknown:
        raise UserError(f"{where}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(allowed))}")
    return dict(raw)
