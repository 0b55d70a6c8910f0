"""The runs a sweep config asks for: one ``RunSpec`` per (label, task, mode, seed).

A *label* is a ``VariantSpec``'s text: a variant with its parameters (``skip:n=1``,
``looped_parallel:n=1,k=3``, ``random:n=1,seed=0``) or a plan of the user's own; every label gets
its own record. Two labels may build the same plan (``reverse`` equals ``full`` when the middle is
one layer): the sweep computes such a plan once and stores the result under each label
(``pipeline``).
"""

from __future__ import annotations

from dataclasses import dataclass

from glue_painters.plans import Plan
from glue_painters.sweep import with_baseline
from glue_painters.variants import VariantSpec

from .config import GlueSweepConfig


@dataclass(frozen=True)
class RunSpec:
    model: str
    variant_spec: VariantSpec
    task: str
    mode: str
    seed: int

    @classmethod
    def of(cls, model: str, spec: VariantSpec | str, task: str, mode: str, seed: int) -> "RunSpec":
        return cls(model, VariantSpec.parse(spec) if isinstance(spec, str) else spec, task, mode, seed)

    def plan(self, num_layers: int) -> Plan:
        return self.variant_spec.plan(num_layers)

    @property
    def label(self) -> str:
        return self.variant_spec.text

    @property
    def variant(self) -> str:
        return self.variant_spec.variant

    @property
    def params(self) -> dict:
        return self.variant_spec.param_dict

    @property
    def n(self) -> int | None:
        return self.params.get("n")

    @property
    def k(self) -> int | None:
        return self.params.get("k")

    @property
    def i(self) -> int | None:
        return self.params.get("i")


@dataclass(frozen=True)
class Run:
    """A run of this sweep on this model: what it asks for, the plan that is, and its record's key."""

    spec: RunSpec
    plan: Plan
    key: dict


def expand(cfg: GlueSweepConfig, num_layers: int) -> list[RunSpec]:
    """Every run of the config, mode by mode, task by task, row by row, seed by seed, the full
    model's rows first when the grid does not name them (every sweep's baseline rule:
    ``glue_painters.sweep.with_baseline``). Without ``permutation_seeds`` a random row takes the
    run's training seed as its permutation."""
    out: dict[RunSpec, None] = {}
    follow = cfg.permutation_seeds is None
    for mode in cfg.modes:
        seeds = cfg.setting(mode, "seeds")
        rows = with_baseline(cfg.specs(num_layers, [seeds[0]] if follow else None))  # full: what a summary compares with
        for task in cfg.tasks:
            for spec in rows:
                for seed in seeds:
                    row = spec
                    if follow and spec.variant == "random":
                        row = VariantSpec.of("random", n=spec.param_dict["n"], seed=seed)
                    out[RunSpec(cfg.model, row, task, mode, seed)] = None
    return list(out)
