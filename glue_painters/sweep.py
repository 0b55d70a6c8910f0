"""The sweep skeleton both tracks fill in: rows -> pending -> shares across processes -> compute ->
records -> summary.

What is the same in both tracks lives here, with one name each: what a sweep returns
(``SweepOutcome``), the baseline rule (``with_baseline``: ``full`` first in every sweep that
normalizes), and the steps around a track's own compute (``run_skeleton``). A track adds its own
rows (tasks, modes, seeds), its scoring or training, and its record keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from .plans import Plan
from .processes import Processes
from .variants import VariantSpec


@dataclass
class SweepOutcome:
    """What ``run_sweep`` returns in both tracks."""

    records: list[dict]      # every record of the sweep (found or written), in row order
    written: int             # records this invocation computed (all processes together)
    skipped: int             # records found in the store (or copied from a record of the same computation)
    seconds: float
    specs: list = field(default_factory=list)   # the sweep's rows (decoder: PlanSpec, GLUE: RunSpec)
    tasks: list[str] = field(default_factory=list)
    wandb: str | None = None  # where the W&B runs went and the `wandb sync` line, when logged


# ---- rows and the baseline rule ---------------------------------------------------------------------
@dataclass(frozen=True)
class PlanSpec:
    """One row of a sweep: its ``VariantSpec`` (the name a record and a figure carry) and the plan
    it builds for the model at hand. A track's runs are rows crossed with its own axes (the
    decoder track's tasks; the GLUE track's tasks, modes and training seeds: ``RunSpec``)."""

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


def with_baseline(specs: list[VariantSpec]) -> list[VariantSpec]:
    """The rows of a sweep, the full model first when the grid does not name it: every summary
    normalizes by (or compares with) the full model's score on the same task, so every sweep of
    both tracks computes it (a ``--variants skip`` sweep included)."""
    if any(s.variant == "full" for s in specs):
        return list(specs)
    return [VariantSpec.of("full"), *specs]


def rows(cfg, num_layers: int, permutation_seeds: list[int] | None = None) -> list[PlanSpec]:
    """Every row of a sweep config as plans for a model of ``num_layers`` layers, the full model first."""
    return [PlanSpec.of(spec, num_layers) for spec in with_baseline(cfg.specs(num_layers, permutation_seeds))]


# ---- the weights' identity in a record's key --------------------------------------------------------
def model_fingerprint(model, scheme: str = "file") -> str:
    """What a record's key calls the model: one function for both tracks, two schemes because
    each track's stored keys were made with its own (``glue_painters.fingerprints``; changing one
    would orphan every record written before).

    ``file`` (the decoder track): the loader's file fingerprint, else a hash of the config and the
    weights (a model built in memory). ``tensors`` (the GLUE track): the base model's tensors,
    taken with no plan on, so aliases and paths of the same weights share records."""
    from .fingerprints import config_weights_fingerprint, tensors_fingerprint

    if scheme == "tensors":
        from .rewire import apply_plan, current_plan, remove_plan

        base = getattr(model, "base_model", model)
        plan = current_plan(model)
        if plan is not None:
            remove_plan(model)
        try:
            return tensors_fingerprint(base)
        finally:
            if plan is not None:
                apply_plan(model, plan)
    if scheme != "file":
        raise ValueError(f"model_fingerprint: unknown scheme {scheme!r}")
    from .errors import UserError
    from .models import source_of

    try:
        return source_of(model).fingerprint
    except UserError:  # built in memory (tests) or loaded some other way
        return config_weights_fingerprint(model)


# ---- the loop ----------------------------------------------------------------------------------------
@dataclass
class Steps:
    """What a track fills in to run a sweep: its runs (rows crossed with its own axes), in the
    order the records are returned, and four functions of them."""

    runs: list
    find: Callable[[Any], dict | None]            # a run's record already in the store (or a copy), else None
    share: Callable[[list, Processes], list]      # of the pending runs, those this process computes
    compute: Callable[[list], None]               # compute runs and write their records
    read: Callable[[Any], dict | None]            # a run's record, once every process has written its own


def run_steps(steps: Steps, *, store, procs: Processes, tracker, started: float, specs: list,
              tasks: list[str]) -> SweepOutcome:
    """rows -> pending -> shares across processes -> compute -> records -> the outcome, the same in
    both tracks. Every process runs this: each looks in the store, waits for the others (so no one
    has written yet), computes its share (``share_work``, the same split computed by every process
    alone), waits again, and returns the whole sweep's records."""
    import time

    from .errors import UserError

    if procs.is_main_process:
        store.clean_stale()  # temporaries of killed writers; a live writer's are kept
    found = [steps.find(run) for run in steps.runs]
    pending = [run for run, rec in zip(steps.runs, found) if rec is None]
    procs.wait_for_everyone()  # every process has seen the same store before anyone writes to it
    steps.compute(steps.share(pending, procs) if procs.num_processes > 1 else pending)
    procs.wait_for_everyone()  # the other processes' records are all in the store now
    records = [rec if rec is not None else steps.read(run) for run, rec in zip(steps.runs, found)]
    missing = sum(rec is None for rec in records)
    if missing:  # pragma: no cover - a process died without its launcher stopping the others
        raise UserError(f"{missing} records of the sweep are missing from {store.root}; run it again to resume")
    return SweepOutcome(records, len(pending), len(records) - len(pending), time.perf_counter() - started,
                        list(specs), list(tasks), tracker.finish())
