"""Weights & Biases: one W&B run per GLUE record, offline unless ``WANDB_MODE`` says otherwise.

Config fields variant, N, k, seed, task, mode, plan, plan_hash, model, label and ``hp/*``; group
``model/task/mode``, run name ``label/task/mode/sSEED``. A fine-tuning run's W&B run is open while
it trains, so it also gets Trainer's curves.
"""

from __future__ import annotations

import os
from pathlib import Path

from glue_painters.plans import Plan

from .runs import RunSpec


def _wandb_setup():
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")


def wandb_config(spec: RunSpec, plan: Plan, model_name: str, fingerprint: str, hparams: dict, subset: dict) -> dict:
    return {"variant": spec.variant or "custom", "N": spec.n, "k": spec.k, "seed": spec.seed, "task": spec.task,
            "mode": spec.mode, "plan": plan.text, "plan_hash": plan.hash, "model": model_name,
            "model_fingerprint": fingerprint, "label": spec.label, **{f"hp/{k}": v for k, v in hparams.items()},
            "limit_train": subset.get("train"), "limit_eval": subset.get("eval")}


class WandbRuns:
    """One W&B run per GLUE run, or nothing when disabled."""

    def __init__(self, enabled: bool, settings: dict, root: Path):
        self.enabled, self.settings, self.root = enabled, settings or {}, root
        if enabled:
            _wandb_setup()
            self.root.mkdir(parents=True, exist_ok=True)

    def start(self, spec: RunSpec, config: dict):
        if not self.enabled:
            return None
        import wandb
        group = self.settings.get("group") or f"{spec.model}/{spec.task}/{spec.mode}"
        return wandb.init(project=self.settings.get("project", "glue-painters"), entity=self.settings.get("entity"),
                          group=group, job_type=spec.mode, name=f"{spec.label}/{spec.task}/{spec.mode}/s{spec.seed}",
                          tags=self.settings.get("tags"), config=config, dir=str(self.root),
                          reinit="finish_previous")

    @staticmethod
    def finish(run, record: dict | None, failed: bool = False):
        if run is None:
            return
        if record is not None:
            run.log({f"eval/{k}": v for k, v in record["metrics"].items()} | {"eval/score": record["score"]})
            run.summary.update({**record["metrics"], "score": record["score"]})
        run.finish(exit_code=1 if failed else 0)


    def log_record(self, spec: RunSpec, config: dict, record: dict) -> None:
        """A W&B run holding only a finished record (a label that shares another label's computation)."""
        self.finish(self.start(spec, config), record)
