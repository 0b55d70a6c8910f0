"""A GLUE sweep's YAML config: reading it and checking every key before anything runs.

A config (see ``configs/glue/*.yaml``)::

    model: minilm                    # alias, hub id or local folder
    variants: [full, skip, middle_repeat, reverse, random, parallel, looped_parallel]
    n: [0, 1]                        # list, or "all" (every valid N), or {min: 0, max: 4}
    k: 3                             # looped_parallel iterations
    plans: []                        # extra plans of your own: text (0-1,5) or specs (skip:n=1)
    tasks: [rte, mrpc]
    modes: [finetune, probe]
    seeds: [0, 1, 2]                 # or a count: 3
    limit_train: 256                 # fixed random subsets (null = all rows)
    limit_eval: 200
    finetune: {learning_rate: 2.0e-5, batch_size: 32, epochs: 3, max_length: 128}
    probe: {learning_rate: 3.0e-2, batch_size: 32, epochs: 3, max_length: 128, pooling: auto}
    wandb: {project: glue-painters}

``random`` uses the run's seed as its permutation seed, so its mean over seeds averages over
permutations as well (the paper averages 10 permutation seeds).

The grammar here is the GLUE track's own for now (moved unchanged out of the old ``sweep.py``);
both tracks are to share one sweep vocabulary later.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from glue_painters.errors import UserError
from glue_painters.variants import VARIANTS, n_range
from glue_painters.yamlfile import read_yaml

from . import tasks as T
from .hparams import FinetuneHParams, ProbeHParams

MODES = ("finetune", "probe")
N_VARIANTS = ("skip", "middle_repeat", "reverse", "random", "parallel", "looped_parallel")
SWEEP_VARIANTS = ("full",) + N_VARIANTS


@dataclass
class SweepConfig:
    model: str = "minilm"
    variants: list = field(default_factory=lambda: list(SWEEP_VARIANTS))
    n: object = "all"
    k: int = 3
    plans: list = field(default_factory=list)
    tasks: list = field(default_factory=lambda: ["cola", "sst2", "mrpc", "stsb", "rte", "wnli"])
    modes: list = field(default_factory=lambda: list(MODES))
    seeds: object = 3
    limit_train: int | None = None
    limit_eval: int | None = None
    subset_seed: int = 0
    finetune: dict = field(default_factory=dict)
    probe: dict = field(default_factory=dict)
    wandb: dict = field(default_factory=dict)
    source: str = "<dict>"

    # filled by ``check``
    finetune_hp: FinetuneHParams = None
    probe_hp: ProbeHParams = None

    def check(self) -> "SweepConfig":
        w = self.source
        if not isinstance(self.model, str) or not self.model:
            raise UserError(f"{w}: 'model' must be a model name or path")
        self.variants = _str_list(self.variants, "variants", w)
        for v in self.variants:
            if v not in SWEEP_VARIANTS:
                extra = " (skip_one/switch take i: give them as plans, e.g. 'skip_one:i=3')" if v in VARIANTS else ""
                raise UserError(f"{w}: unknown variant '{v}'{extra}; sweep variants: {', '.join(SWEEP_VARIANTS)}")
        self.plans = _str_list(self.plans, "plans", w)
        self.tasks = [T.get_task(t).name for t in _str_list(self.tasks, "tasks", w)]
        self.modes = _str_list(self.modes, "modes", w)
        for m in self.modes:
            if m not in MODES:
                raise UserError(f"{w}: unknown mode '{m}'; modes: {', '.join(MODES)}")
        self.seeds = _check_run_settings({"seeds": self.seeds}, w)["seeds"]
        if not isinstance(self.k, int) or isinstance(self.k, bool) or self.k < 1:
            raise UserError(f"{w}: 'k' must be an integer >= 1")
        _check_run_settings({"limit_train": self.limit_train, "limit_eval": self.limit_eval}, w)
        if not isinstance(self.subset_seed, int) or isinstance(self.subset_seed, bool):
            raise UserError(f"{w}: 'subset_seed' must be an integer")
        self.n_values(None)  # shape check
        self.overrides = {}
        for mode in MODES:
            section = getattr(self, mode)
            if section is None:
                section = {}
            if not isinstance(section, dict):
                raise UserError(f"{w}: '{mode}' must be a mapping of settings")
            section = dict(section)
            over = {k: section.pop(k) for k in ("seeds", "limit_train", "limit_eval") if k in section}
            self.overrides[mode] = _check_run_settings(over, f"{w}: {mode}")
            hp = (FinetuneHParams if mode == "finetune" else ProbeHParams).from_dict(section, f"{w}: {mode}")
            setattr(self, f"{mode}_hp", hp)
        if not isinstance(self.wandb, dict) or set(self.wandb) - {"project", "entity", "group", "tags"}:
            raise UserError(f"{w}: 'wandb' takes project, entity, group, tags")
        if not self.variants and not self.plans:
            raise UserError(f"{w}: nothing to run: give 'variants' or 'plans'")
        return self

    def setting(self, mode: str, name: str):
        """``seeds``, ``limit_train`` or ``limit_eval`` for one mode (its section overrides the top level)."""
        over = getattr(self, "overrides", {}).get(mode, {})
        return over[name] if name in over else getattr(self, name)

    def n_values(self, num_layers: int | None) -> list[int]:
        w, n = self.source, self.n
        if n == "all":
            return n_range(num_layers) if num_layers else []
        if isinstance(n, int) and not isinstance(n, bool):
            return [n]
        if isinstance(n, list) and n and all(isinstance(i, int) and not isinstance(i, bool) for i in n):
            return list(n)
        if isinstance(n, dict) and set(n) <= {"min", "max"}:
            lo = n.get("min", 0)
            hi = n.get("max")
            if num_layers is None:
                return []
            hi = n_range(num_layers)[-1] if hi is None else hi
            return list(range(lo, hi + 1))
        raise UserError(f"{w}: 'n' must be a list of integers, an integer, 'all' or {{min: A, max: B}}, got {n!r}")


def _check_run_settings(d: dict, where: str) -> dict:
    out = dict(d)
    if "seeds" in d:
        seeds = d["seeds"]
        if isinstance(seeds, int) and not isinstance(seeds, bool):
            if seeds < 1:
                raise UserError(f"{where}: 'seeds' count must be at least 1")
            seeds = list(range(seeds))
        if not isinstance(seeds, list) or not seeds or not all(
                isinstance(s, int) and not isinstance(s, bool) for s in seeds) or len(set(seeds)) != len(seeds):
            raise UserError(f"{where}: 'seeds' must be a list of distinct integers or a count")
        out["seeds"] = seeds
    for name in ("limit_train", "limit_eval"):
        if name in d:
            v = d[name]
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise UserError(f"{where}: '{name}' must be a positive integer or null")
    return out


def _str_list(v, name, where) -> list[str]:
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise UserError(f"{where}: '{name}' must be a list of strings")
    return list(v)


def load_config(path) -> SweepConfig:
    path = Path(path)
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise UserError(f"{path}: a sweep config is a YAML mapping (model:, variants:, tasks: ...)")
    known = {f for f in SweepConfig.__dataclass_fields__ if f not in ("source", "finetune_hp", "probe_hp")}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UserError(f"{path}: unknown key(s) {', '.join(map(str, unknown))}; known: {', '.join(sorted(known))}")
    return SweepConfig(**data, source=str(path)).check()
