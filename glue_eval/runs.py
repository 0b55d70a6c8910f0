"""The runs a sweep config asks for: one ``RunSpec`` per (label, task, mode, seed).

A *label* is a variant with its parameters (``skip:n=1``, ``looped_parallel:n=1,k=3``) or a plan of
the user's own (its text or spec as given); every label gets its own record. Two labels may build
the same plan (``reverse`` equals ``full`` when the middle is one layer): the sweep computes such a
plan once and stores the result under each label (``pipeline``).
"""

from __future__ import annotations

from dataclasses import dataclass

from glue_painters.errors import UserError
from glue_painters.plans import Plan
from glue_painters.variants import build, n_range, resolve

from .config import SweepConfig


@dataclass(frozen=True)
class RunSpec:
    model: str
    variant: str | None       # None for a custom plan
    n: int | None
    k: int | None
    plan_spec: str | None     # for custom plans: text or variant spec
    task: str
    mode: str
    seed: int

    def plan(self, num_layers: int) -> Plan:
        if self.variant is None:
            return resolve(self.plan_spec, num_layers)
        params = {}
        if self.variant != "full":
            params["n"] = self.n
        if self.variant == "looped_parallel":
            params["k"] = self.k
        if self.variant == "random":
            params["seed"] = self.seed
        return build(self.variant, num_layers, **params)

    @property
    def label(self) -> str:
        if self.variant is None:
            return self.plan_spec
        if self.variant == "full":
            return "full"
        return f"{self.variant}:n={self.n}" + (f",k={self.k}" if self.variant == "looped_parallel" else "")


@dataclass(frozen=True)
class Run:
    """A run of this sweep on this model: what it asks for, the plan that is, and its record's key."""

    spec: RunSpec
    plan: Plan
    key: dict


def expand(cfg: SweepConfig, num_layers: int) -> list[RunSpec]:
    ns = cfg.n_values(num_layers)
    for n in ns:
        if not 0 <= n <= n_range(num_layers)[-1]:
            raise UserError(f"{cfg.source}: N={n} is out of range for {cfg.model} ({num_layers} layers): "
                            f"valid N are {n_range(num_layers)[0]}..{n_range(num_layers)[-1]}")
    shapes = []
    for v in cfg.variants:
        if v == "full":
            shapes.append((v, None, None, None))
        else:
            shapes += [(v, n, cfg.k if v == "looped_parallel" else None, None) for n in ns]
    for p in cfg.plans:
        resolve(p, num_layers)  # check now, not mid-sweep
        shapes.append((None, None, None, p))
    return [RunSpec(cfg.model, v, n, k, p, task, mode, seed)
            for mode in cfg.modes for task in cfg.tasks for (v, n, k, p) in shapes
            for seed in cfg.setting(mode, "seeds")]
