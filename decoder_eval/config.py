"""The decoder track's sweep config: the shared grammar (``glue_painters.sweep_config``) plus the
settings only a frozen-LM sweep has (primary metrics, batch size, dtype, device).

Its rows are ``PlanSpec``s: a ``VariantSpec`` (the name a record and a figure carry) with the plan it
builds for the model at hand. ``expand`` always puts the full model first, because the paper's
normalized score divides by the full model's score.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from glue_painters.errors import UserError
from glue_painters.plans import Plan
from glue_painters.sweep_config import PAPER_VARIANTS, Key, SweepConfig, read_positive
from glue_painters.variants import VariantSpec
from glue_painters.yamlfile import read_yaml

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

    TRACK: ClassVar[str] = "decoder"
    DEFAULT_TASKS: ClassVar[tuple[str, ...]] = tuple(DEFAULT_TASKS)
    DEFAULT_PERMUTATION_SEEDS: ClassVar[int | None] = 10
    TRACK_KEYS: ClassVar[dict[str, Key]] = {
        "primary_metric": Key("per-task metric for the normalized score, e.g. {hellaswag: acc}", _primary),
        "batch_size": Key("packed rows (~256 tokens each) per forward / prompts per generate call (default 16)",
                          lambda v, w: read_positive(v, w, allow_none=False)),
        "dtype": Key("float32 | bfloat16 | float16 | auto (default: bfloat16 on CUDA, float32 on CPU)", _dtype),
        "device": Key("cpu | cuda | cuda:N | auto (default auto)", _device),
    }
    RENAMED: ClassVar[dict[str, str]] = {
        "seeds": "now spelled 'permutation_seeds' (the random variant's permutations; in both tracks "
                 "'seeds' means training seeds, which a frozen-model sweep has none of)",
    }

    @classmethod
    def task_name(cls, name: str) -> str:
        return get_task(name).name

    def check(self) -> None:
        where = f"config {self.source}"
        for t, m in self.primary_metric.items():
            if t not in TASKS:
                raise UserError(f"{where}: 'primary_metric' names unknown task '{t}'; known: {', '.join(TASKS)}")
            if m not in get_task(t).metrics:
                raise UserError(f"{where}: task {t} has no metric {m!r}; it has {', '.join(get_task(t).metrics)}")
            if m == "perplexity":
                raise UserError(f"{where}: the primary metric must be an accuracy (perplexity has no chance level)")

    @property
    def seeds(self) -> list[int]:
        """The random variant's permutation seeds (the name this track's configs had before)."""
        return self.permutation_seeds


# Kept for callers of the decoder track's API before the shared grammar.
SweepConfig = DecoderSweepConfig
CONFIG_KEYS = {name: key.help for name, key in DecoderSweepConfig.keys().items()}


def parse_config(raw, source: str = "<config>") -> DecoderSweepConfig:
    """Check a config mapping (already read from YAML) and fill in the defaults."""
    return DecoderSweepConfig.from_mapping(raw, source)


def load_config(path) -> DecoderSweepConfig:
    return parse_config(read_yaml(path), str(path))


@dataclass(frozen=True)
class PlanSpec:
    """One row of a sweep: its ``VariantSpec`` and the plan that builds for this model's depth."""

    spec: VariantSpec
    plan: Plan

    @classmethod
    def of(cls, spec: VariantSpec | str, num_layers: int) -> "PlanSpec":
        spec = VariantSpec.parse(spec) if isinstance(spec, str) else spec
        return cls(spec, spec.plan(num_layers))

    @property
    def variant(self) -> str:
        return self.spec.variant

    @property
    def params(self) -> tuple:
        """Sorted (name, value) pairs: how records and the summary group rows."""
        return tuple(sorted(self.spec.params))

    @property
    def param_dict(self) -> dict:
        return dict(self.spec.params)


def expand(cfg: DecoderSweepConfig, num_layers: int) -> list[PlanSpec]:
    """Every row of the config as plans for a model of ``num_layers`` layers, the full model first."""
    rows = [PlanSpec.of(spec, num_layers) for spec in cfg.specs(num_layers)]
    if not any(r.variant == "full" for r in rows):  # normalization needs the full model's score
        rows.insert(0, PlanSpec.of(VariantSpec.of("full"), num_layers))
    return rows
