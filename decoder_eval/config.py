"""The decoder track's sweep config: the shared grammar (``glue_painters.sweep_config``) plus the
settings only a frozen-LM sweep has (primary metrics, batch size, dtype, device).

Its rows are the library's ``PlanSpec``s: a ``VariantSpec`` (the name a record and a figure carry)
with the plan it builds for the model at hand. ``expand`` always puts the full model first, because
the paper's normalized score divides by the full model's score (the rule of every sweep:
``glue_painters.sweep.with_baseline``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from glue_painters.errors import UserError
from glue_painters.sweep import PlanSpec, rows  # noqa: F401 - PlanSpec: the row type, re-exported
from glue_painters.sweep_config import PAPER_VARIANTS, Key, SweepConfig, read_names, read_positive
from glue_painters.yamlfile import read_yaml

from .holdout import read_holdout
from .tasks import TASKS, get_task

PAPER_VARIANTS = list(PAPER_VARIANTS)
DEFAULT_TASKS = ["lambada_openai", "arc_easy", "arc_challenge", "hellaswag", "winogrande", "gsm8k"]
DTYPES = ("float32", "bfloat16", "float16", "auto")


def _primary(v, where) -> dict:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise UserError(f"{where} must map task -> metric, got {v!r}")
    return dict(v)


def _dtype(v, where):
    if v is not None and v not in DTYPES:
        raise UserError(f"{where} must be one of {', '.join(DTYPES)}, got {v!r}")
    return v


def _task_paths(v, where) -> list[str]:
    if v is None:
        return []
    return read_names(v, where)


def _fewshot(v, where):
    """lm-eval's ``num_fewshot``: one count for every task, or {task: count}."""
    if v is None:
        return None
    if isinstance(v, dict):
        return {str(t): read_count(n, f"{where} for {t}") for t, n in v.items()}
    return read_count(v, where)


def read_count(v, where) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise UserError(f"{where} must be a count (0 or more), got {v!r}")
    return v


def _gen_kwargs(v, where):
    if v is not None and not isinstance(v, dict):
        raise UserError(f"{where} must map generation settings (as lm-eval's --gen_kwargs), e.g. {{max_gen_toks: 64}}")
    return v


def _chance(v, where) -> dict:
    if v is None:
        return {}
    if not isinstance(v, dict) or not all(isinstance(c, (int, float)) and not isinstance(c, bool) and 0 <= c < 1
                                          for c in v.values()):
        raise UserError(f"{where} must map task -> chance level in [0, 1), got {v!r}")
    return {str(t): float(c) for t, c in v.items()}


def read_memory(v, where) -> int | None:
    """A memory size in bytes from a number of GB or a string like ``8GB``, ``512MB``, ``1.5G``."""
    if v is None:
        return None
    import re

    units = {"": 2**30, "g": 2**30, "gb": 2**30, "gib": 2**30, "m": 2**20, "mb": 2**20, "mib": 2**20,
             "t": 2**40, "tb": 2**40, "tib": 2**40}
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(v)) if not isinstance(v, bool) else None
    if match is None or match.group(2).lower() not in units or float(match.group(1)) <= 0:
        raise UserError(f"{where} must be a memory size such as 8GB or 512MB (a bare number is GB), got {v!r}")
    return int(float(match.group(1)) * units[match.group(2).lower()])


def _device(v, where):
    if v is not None and not isinstance(v, str):
        raise UserError(f"{where} must be cpu, cuda, cuda:N or auto, got {v!r}")
    return v


@dataclass
class DecoderSweepConfig(SweepConfig):
    primary_metric: dict[str, str] = field(default_factory=dict)
    batch_size: int = 16
    dtype: str | None = None
    device: str | None = None
    task_paths: list[str] = field(default_factory=list)
    num_fewshot: int | dict | None = None
    fewshot_seed: int = 1234
    gen_kwargs: dict | None = None
    chance: dict[str, float] = field(default_factory=dict)
    generation_memory: int | None = None  # bytes
    holdout: dict | None = None  # {fraction, seed}: each task's documents split before the scan

    TRACK: ClassVar[str] = "decoder"
    DEFAULT_TASKS: ClassVar[tuple[str, ...]] = tuple(DEFAULT_TASKS)
    DEFAULT_PERMUTATION_SEEDS: ClassVar[int | None] = 10
    TRACK_KEYS: ClassVar[dict[str, Key]] = {
        "primary_metric": Key("per-task metric for the normalized score, e.g. {hellaswag: acc}", _primary),
        "batch_size": Key("packed rows (~256 tokens each) per forward / prompts per generate call (default 16)",
                          lambda v, w: read_positive(v, w, allow_none=False)),
        "dtype": Key("float32 | bfloat16 | float16 | auto (default: bfloat16 on CUDA, float32 on CPU)", _dtype),
        "device": Key("cpu | cuda | cuda:N | auto (default auto)", _device),
        "task_paths": Key("folders of lm-eval task YAMLs (lm-eval's --include_path), relative to this file", _task_paths),
        "num_fewshot": Key("lm-eval's num_fewshot: a count or {task: count} (default: each task's own)", _fewshot),
        "fewshot_seed": Key("lm-eval's fewshot_random_seed (default 1234)",
                            lambda v, w: read_count(v, w)),
        "gen_kwargs": Key("lm-eval's gen_kwargs for generate_until tasks, e.g. {max_gen_toks: 64}", _gen_kwargs),
        "chance": Key("{task: chance level} for the normalized score (default: 1/#choices, else 0)", _chance),
        "generation_memory": Key("KV-cache budget for generating all plans at once, e.g. 8GB (default: no bound); "
                                 "plans sharing first layers are split into groups that fit", read_memory),
        "holdout": Key("held-out split chosen before the scan: a fraction or {fraction: 0.3, seed: 0}; every row "
                       "scores the scan part, the winners and full then the held-out part", read_holdout),
    }
    RENAMED: ClassVar[dict[str, str]] = {
        "seeds": "now spelled 'permutation_seeds' (the random variant's permutations; in both tracks "
                 "'seeds' means training seeds, which a frozen-model sweep has none of)",
    }

    @classmethod
    def task_name(cls, name: str) -> str:
        """Our six by name; any other name is an lm-eval task, checked in ``check`` (it may live
        in the config's ``task_paths``)."""
        return get_task(name).name if name in TASKS else name

    def resolved_task_paths(self) -> list[str]:
        """``task_paths`` relative to the config file's folder (absolute ones as they are)."""
        base = Path(self.source).parent if Path(self.source).is_file() else Path(".")
        return [str(p if (p := Path(t).expanduser()).is_absolute() else base / p) for t in self.task_paths]

    def lm_eval_options(self):
        from .lm_eval_loading import LmEvalOptions

        return LmEvalOptions(self.resolved_task_paths(), self.num_fewshot, self.fewshot_seed, self.gen_kwargs,
                             dict(self.chance))

    def check(self) -> None:
        where = f"config {self.source}"
        others = [t for t in self.tasks if t not in TASKS]
        if others:
            _check_lm_eval_tasks(others, self.resolved_task_paths(), where)
        for key in ("primary_metric", "chance"):
            for t in getattr(self, key):
                if t not in self.tasks:
                    raise UserError(f"{where}: '{key}' names task '{t}', which is not in 'tasks'")
        for t, m in self.primary_metric.items():
            if m == "perplexity":
                raise UserError(f"{where}: the primary metric must be an accuracy (perplexity has no chance level)")
            if t in TASKS and m not in get_task(t).metrics:
                raise UserError(f"{where}: task {t} has no metric {m!r}; it has {', '.join(get_task(t).metrics)}")

    @property
    def seeds(self) -> list[int]:
        """The random variant's permutation seeds (the name this track's configs had before)."""
        return self.permutation_seeds


def _check_lm_eval_tasks(names: list[str], task_paths: list[str], where: str) -> None:
    """Names beyond our six must be lm-eval tasks (in ``task_paths`` or lm-eval's own index)."""
    import importlib.util

    if importlib.util.find_spec("lm_eval") is None:
        raise UserError(f"{where}: unknown task '{names[0]}'; known: {', '.join(TASKS)} (any lm-eval task "
                        f"once lm-eval is installed: pip install 'lm_eval==0.4.13')")
    from .lm_eval_loading import known_task

    for name in names:
        if not known_task(name, task_paths):
            raise UserError(f"{where}: unknown task '{name}'; known: {', '.join(TASKS)}, any lm-eval task, "
                            f"or a task in 'task_paths'")


# Kept for callers of the decoder track's API before the shared grammar.
SweepConfig = DecoderSweepConfig
CONFIG_KEYS = {name: key.help for name, key in DecoderSweepConfig.keys().items()}


def parse_config(raw, source: str = "<config>") -> DecoderSweepConfig:
    """Check a config mapping (already read from YAML) and fill in the defaults."""
    return DecoderSweepConfig.from_mapping(raw, source)


def load_config(path) -> DecoderSweepConfig:
    return parse_config(read_yaml(path), str(path))


def expand(cfg: DecoderSweepConfig, num_layers: int) -> list[PlanSpec]:
    """Every row of the config as plans for a model of ``num_layers`` layers, the full model first
    (the baseline rule both tracks share: ``glue_painters.sweep.with_baseline``)."""
    return rows(cfg, num_layers)
