"""A GLUE sweep's config: the grammar both tracks share (``glue_painters.sweep_config``) plus what
only training runs have. Example (``configs/glue/*.yaml``)::

    model: minilm
    variants: [full, skip, middle_repeat, reverse, random, parallel, looped_parallel]
    n: [0, 1]                        # as in every sweep: all, a number, a list, {from, to, step}
    k: 3
    tasks: [rte, mrpc]
    limit: 256                       # evaluation rows per split (fixed random subset); or per task
    modes: [finetune, probe]
    seeds: [0, 1, 2]                 # training seeds (or a count)
    limit_train: 512                 # training rows (fixed random subset; null = all)
    subset_seed: 0
    finetune: {learning_rate: 2.0e-5, batch_size: 32, epochs: 3, max_length: 128, seeds: [0]}
    probe: {learning_rate: 3.0e-2, batch_size: 32, epochs: 3, max_length: 128, pooling: auto}
    wandb: {project: glue-painters}

A ``finetune:``/``probe:`` section may override ``seeds``, ``limit_train`` and ``limit`` for its
mode. ``random`` takes each training seed as its permutation seed unless ``permutation_seeds``
names others (then every permutation runs under every training seed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from glue_painters.errors import UserError
from glue_painters.sweep_config import (Key, SweepConfig, read_limit_shape, read_limits, read_names, read_positive,
                                        read_seeds)
from glue_painters.yamlfile import read_yaml

from . import tasks as T
from .hparams import FinetuneHParams, ProbeHParams

MODES = ("finetune", "probe")
N_VARIANTS = ("skip", "middle_repeat", "reverse", "random", "parallel", "looped_parallel")
SWEEP_VARIANTS = ("full",) + N_VARIANTS
DEFAULT_TASKS = ("cola", "sst2", "mrpc", "stsb", "rte", "wnli")
MODE_SETTINGS = ("seeds", "limit_train", "limit")


def _modes(v, where):
    modes = read_names(v, where)
    bad = [m for m in modes if m not in MODES]
    if bad:
        raise UserError(f"{where}: unknown mode '{bad[0]}'; modes: {', '.join(MODES)}")
    return modes


def _int(v, where):
    if not isinstance(v, int) or isinstance(v, bool):
        raise UserError(f"{where} must be an integer, got {v!r}")
    return v


def _section(v, where):
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise UserError(f"{where} must be a mapping of settings, got {v!r}")
    if "limit_eval" in v:
        raise UserError(f"{where}: 'limit_eval' is now spelled 'limit' (evaluation rows, as in every sweep config)")
    return dict(v)


@dataclass
class GlueSweepConfig(SweepConfig):
    modes: list[str] = field(default_factory=lambda: list(MODES))
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    limit_train: int | None = None
    subset_seed: int = 0
    finetune: dict = field(default_factory=dict)
    probe: dict = field(default_factory=dict)
    # filled by ``check``
    finetune_hp: FinetuneHParams | None = None
    probe_hp: ProbeHParams | None = None
    overrides: dict = field(default_factory=dict)

    TRACK: ClassVar[str] = "glue"
    DEFAULT_TASKS: ClassVar[tuple[str, ...]] = DEFAULT_TASKS
    DEFAULT_PERMUTATION_SEEDS: ClassVar[int | None] = None  # random follows each run's training seed
    TRACK_KEYS: ClassVar[dict[str, Key]] = {
        "modes": Key("finetune and/or probe (default both)", _modes),
        "seeds": Key("training seeds: a count (0..count-1, default 3) or a list", read_seeds),
        "limit_train": Key("training rows per task: a fixed random subset (default: all)", read_positive),
        "subset_seed": Key("seed of the fixed random subsets (default 0)", _int),
        "finetune": Key("fine-tuning settings (learning_rate, batch_size, epochs, ...; seeds/limit_train/limit "
                        "override the top level)", _section),
        "probe": Key("probe settings (learning_rate, batch_size, epochs, pooling, ...; seeds/limit_train/limit "
                     "override the top level)", _section),
    }
    RENAMED: ClassVar[dict[str, str]] = {
        "limit_eval": "now spelled 'limit' (evaluation rows per task, as in every sweep config)",
    }

    @classmethod
    def task_name(cls, name: str) -> str:
        return T.get_task(name).name

    def check(self) -> None:
        where = f"config {self.source}"
        self.overrides = {}
        for mode in MODES:
            section = dict(getattr(self, mode) or {})
            over = {k: section.pop(k) for k in MODE_SETTINGS if k in section}
            checked = {}
            if "seeds" in over:
                checked["seeds"] = read_seeds(over["seeds"], f"{where}: {mode}: 'seeds'")
            if "limit_train" in over:
                checked["limit_train"] = read_positive(over["limit_train"], f"{where}: {mode}: 'limit_train'")
            if "limit" in over:
                checked["limit"] = read_limits(read_limit_shape(over["limit"], f"{where}: {mode}: 'limit'"), self.tasks,
                                           self.task_name, f"{where}: {mode}")
            self.overrides[mode] = checked
            hp = (FinetuneHParams if mode == "finetune" else ProbeHParams).from_dict(section, f"{where}: {mode}")
            setattr(self, f"{mode}_hp", hp)

    def setting(self, mode: str, name: str, task: str | None = None):
        """``seeds``, ``limit_train`` or ``limit`` (of ``task``) for one mode: its section wins."""
        over = self.overrides.get(mode, {})
        value = over[name] if name in over else getattr(self, name)
        return value[task] if name == "limit" else value


SweepConfig = GlueSweepConfig  # the name this track's API had


def load_config(path) -> GlueSweepConfig:
    return GlueSweepConfig.from_mapping(read_yaml(path), str(path))
