"""Weights & Biases for GLUE runs, through the core's ``glue_painters.tracking``: one W&B run per
record (its id is the record's key hash), the config fields both tracks share plus the GLUE
run's own (hyperparameters as ``hp/*``, subsets), group = the sweep row across seeds, job type =
the mode. A fine-tuning run's W&B run is open while it trains, so it also gets Trainer's curves
(the training loss, and eval metrics per epoch or steps with an ``eval_strategy``); a probe's run
gets its head's training loss per epoch (``log_losses``), logged once the heads are trained (all
seeds train at once, on cached features, in well under a second).
"""

from __future__ import annotations

from pathlib import Path

from glue_painters.plans import Plan
from glue_painters.results import record_key
from glue_painters.tracking import Tracker, run_config, run_group

from .records import KeyParts
from .runs import RunSpec


def wandb_config(spec: RunSpec, plan: Plan, model_name: str, fingerprint: str, hparams: dict, subset: dict) -> dict:
    return run_config(track="glue", model=model_name, spec=spec.variant_spec, plan=plan, task=spec.task,
                      mode=spec.mode, seed=spec.seed, label=spec.label, plan_hash=plan.hash,
                      model_fingerprint=fingerprint, limit_train=subset.get("train"), limit_eval=subset.get("eval"),
                      **{f"hp/{k}": v for k, v in hparams.items()})


class WandbRuns:
    """One W&B run per GLUE record, or nothing when disabled."""

    def __init__(self, enabled: bool, settings: dict | None, root: Path):
        self.tracker = Tracker(enabled, Path(root), dict(settings or {}))

    def start(self, spec: RunSpec, plan: Plan, parts: KeyParts, model_name: str):
        config = wandb_config(spec, plan, model_name, parts.fingerprint, parts.hparams, parts.subset)
        return self.tracker.start(record_key(parts.key(spec, plan)), name=f"{spec.label}/{spec.task}/{spec.mode}/s{spec.seed}",
                                  group=run_group(model_name, spec.task, spec.mode, spec.variant_spec),
                                  job_type=spec.mode, config=config)

    @staticmethod
    def log_losses(run, losses: list[float]) -> None:
        """A probe head's mean training loss per epoch, as ``train/loss`` against ``train/epoch``
        (the names Trainer's curves have in a fine-tuning run)."""
        if run is None:
            return
        for epoch, loss in enumerate(losses, 1):
            run.log({"train/loss": loss, "train/epoch": epoch})

    @staticmethod
    def finish(run, record: dict | None, failed: bool = False):
        if run is None:
            return
        if record is not None:
            run.log({f"eval/{k}": v for k, v in record["metrics"].items()} | {"eval/score": record["score"]})
            run.summary.update({**record["metrics"], "score": record["score"]})
        run.finish(exit_code=1 if failed else 0)

    def log_record(self, spec: RunSpec, plan: Plan, parts: KeyParts, model_name: str, record: dict) -> None:
        """A W&B run holding only a finished record (a label that shares another label's computation)."""
        self.finish(self.start(spec, plan, parts, model_name), record)

    def where(self) -> str | None:
        """Where the runs went and the ``wandb sync`` line (None when nothing was logged)."""
        return self.tracker.finish()
