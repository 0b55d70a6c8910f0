"""A GLUE sweep's config: the grammar both tracks share (``glue_painters.sweep_config``) plus what
only training runs have. Example (``configs/glue/*.yaml``)::

    model: minilm
    variants: [full, skip, middle_repeat, reverse, random, parallel, looped_parallel]
    n: [0, 1]                        # as in every sweep: all, a number, a list, {from, to, step}
    k: 3
    tasks: [rte, mrpc]
    sample: 256                      # evaluation rows per split: a fixed random subset; or per task
    # limit: 256                     # ... or the first 256 rows, as in every sweep config (not both)
    modes: [finetune, probe]
    seeds: [0, 1, 2]                 # training seeds, the values (or seed_count: 3)
    sample_train: 512                 # training rows (fixed random subset; null = all)
    subset_seed: 0
    finetune: {learning_rate: 2.0e-5, batch_size: 32, epochs: 3, max_length: 128, seeds: [0]}
    probe: {learning_rate: 3.0e-2, batch_size: 32, epochs: 3, max_length: 128, pooling: auto}
    wandb: {project: glue-painters}

A ``finetune:``/``probe:`` section may override ``seeds``/``seed_count``, ``sample_train``,
``limit`` and ``sample`` for its mode.

``limit`` is the first N rows of each evaluation split, as ``limit`` is the first N documents in
the decoder track; ``sample`` is a fixed random subset of N rows (GLUE files are ordered, STS-B by
genre, so a head of the file is not a sample of the task). Records written before ``sample``
existed, when ``limit`` meant the random subset, are keyed exactly as ``sample`` keys them now
(``subset: {eval: N}``); a first-N run's key says ``eval_first: N``, so neither is mistaken for
the other. ``random`` takes each training seed as its permutation seed unless ``permutation_seeds``
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
MODE_SETTINGS = ("seeds", "seed_count", "sample_train", "limit", "sample")


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
        raise UserError(f"{where}: 'limit_eval' is gone: {LIMIT_EVAL}")
    if "limit_train" in v:
        raise UserError(f"{where}: 'limit_train' is gone: {LIMIT_TRAIN}")
    return dict(v)


LIMIT_EVAL = ("'sample: N' is a fixed random subset of N evaluation rows (what 'limit_eval' was), "
              "'limit: N' the first N rows")
# 'limit' means the first N everywhere, so a random subset of training rows is spelled 'sample' too
LIMIT_TRAIN = "'sample_train: N' is the same fixed random subset of N training rows"


def read_training_seeds(v, where) -> list[int]:
    """``seeds``: the seed values, a list. A bare number is refused: it read as a count before
    (``seeds: 3`` was seeds 0..2), and ``--seeds 3`` is seed 3; ``seed_count: 3`` says a count."""
    if isinstance(v, int) and not isinstance(v, bool):
        raise UserError(f"{where}: a bare number is ambiguous: write the seeds as a list ([{v}] is seed {v}) or "
                        f"'seed_count: {v}' for seeds 0..{v - 1}" if v > 0 else f"{where} must be a list of seeds")
    return read_seeds(v, where)


def read_seed_count(v, where) -> list[int]:
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise UserError(f"{where} must be a positive count, got {v!r}")
    return list(range(v))


@dataclass
class GlueSweepConfig(SweepConfig):
    modes: list[str] = field(default_factory=lambda: list(MODES))
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    sample_train: int | None = None
    sample: dict[str, int | None] = field(default_factory=dict)
    seed_count: list[int] | None = None
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
        "seeds": Key("training seeds, the values: a list (default [0, 1, 2])", read_training_seeds),
        "seed_count": Key("training seeds 0..count-1, instead of listing them in 'seeds'", read_seed_count),
        "sample": Key("evaluation rows per split as a fixed random subset (seeded by subset_seed): a number, or "
                      "{default: N, <task>: N}; instead of 'limit' (the first N rows)", read_limit_shape),
        "sample_train": Key("training rows per task: a fixed random subset (default: all)", read_positive),
        "subset_seed": Key("seed of the fixed random subsets (default 0)", _int),
        "finetune": Key("fine-tuning settings (learning_rate, batch_size, epochs, ...; seeds/seed_count/"
                        "sample_train/limit/sample override the top level)", _section),
        "probe": Key("probe settings (learning_rate, batch_size, epochs, pooling, ...; seeds/seed_count/"
                     "sample_train/limit/sample override the top level)", _section),
    }
    RENAMED: ClassVar[dict[str, str]] = {
        "limit_eval": "gone: " + LIMIT_EVAL,
        "limit_train": "gone: " + LIMIT_TRAIN,
    }

    @classmethod
    def task_name(cls, name: str) -> str:
        return T.get_task(name).name

    def check(self) -> None:
        where = f"config {self.source}"
        self.sample = read_limits(self.raw.get("sample"), self.tasks, self.task_name, where) if "sample" in self.raw \
            else {t: None for t in self.tasks}
        if self.seed_count is not None:
            if "seeds" in self.raw:
                raise UserError(f"{where}: give 'seeds' (the values) or 'seed_count', not both")
            self.seeds = self.seed_count
        self.overrides = {}
        for mode in MODES:
            section = dict(getattr(self, mode) or {})
            over = {k: section.pop(k) for k in MODE_SETTINGS if k in section}
            checked = {}
            if "seeds" in over and "seed_count" in over:
                raise UserError(f"{where}: {mode}: give 'seeds' (the values) or 'seed_count', not both")
            if "seeds" in over:
                checked["seeds"] = read_training_seeds(over["seeds"], f"{where}: {mode}: 'seeds'")
            if "seed_count" in over:
                checked["seeds"] = read_seed_count(over["seed_count"], f"{where}: {mode}: 'seed_count'")
            if "sample_train" in over:
                checked["sample_train"] = read_positive(over["sample_train"], f"{where}: {mode}: 'sample_train'")
            for key in ("limit", "sample"):
                if key in over:
                    checked[key] = read_limits(read_limit_shape(over[key], f"{where}: {mode}: '{key}'"), self.tasks,
                                               self.task_name, f"{where}: {mode}")
            if "limit" in checked and "sample" not in checked:  # a mode's own rows replace the top level's
                checked["sample"] = {t: None for t in self.tasks}
            if "sample" in checked and "limit" not in checked:
                checked["limit"] = {t: None for t in self.tasks}
            self.overrides[mode] = checked
            both = [t for t in self.tasks if self.setting(mode, "limit", t) and self.setting(mode, "sample", t)]
            if both:
                raise UserError(f"{where}: {mode} on {both[0]}: 'limit' (the first N rows) and 'sample' (a fixed "
                                f"random subset) both choose the evaluation rows; give one")
            hp = (FinetuneHParams if mode == "finetune" else ProbeHParams).from_dict(section, f"{where}: {mode}")
            setattr(self, f"{mode}_hp", hp)

    def setting(self, mode: str, name: str, task: str | None = None):
        """``seeds``, ``sample_train``, ``limit`` or ``sample`` (of ``task``) for one mode: its section wins."""
        over = self.overrides.get(mode, {})
        value = over[name] if name in over else getattr(self, name)
        return value[task] if name in ("limit", "sample") else value


SweepConfig = GlueSweepConfig  # the name this track's API had


def load_config(path) -> GlueSweepConfig:
    return GlueSweepConfig.from_mapping(read_yaml(path), str(path))
