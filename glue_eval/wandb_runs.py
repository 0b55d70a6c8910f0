"""Weights & Biases for GLUE runs, through the one tracker both tracks use
(``glue_painters.tracking.Tracker``): one W&B run per record (its id is the record's key hash), the
config fields both tracks share plus the GLUE run's own (hyperparameters as ``hp/*``, subsets),
group = the sweep row across seeds, job type = the mode. A fine-tuning run's W&B run is open while
it trains, so it also gets Trainer's curves (the training loss, and eval metrics per epoch or steps
with an ``eval_strategy``); a probe's run gets its head's training loss per epoch
(``Tracker.log_losses``), logged once the heads are trained (all seeds train at once, on cached
features, in well under a second).
"""

from __future__ import annotations

from glue_painters.plans import Plan
from glue_painters.results import record_key
from glue_painters.tracking import Tracker, run_config, run_group

from .records import KeyParts
from .runs import RunSpec


def wandb_config(spec: RunSpec, plan: Plan, model_name: str, fingerprint: str, hparams: dict, subset: dict) -> dict:
    return run_config(track="glue", model=model_name, spec=spec.variant_spec, plan=plan, task=spec.task,
                      mode=spec.mode, seed=spec.seed, label=spec.label, plan_hash=plan.hash,
                      model_fingerprint=fingerprint, limit_train=subset.get("train"), limit_eval=subset.get("eval"),
                      limit=subset.get("eval_first"), **{f"hp/{k}": v for k, v in hparams.items()})


def start(tracker: Tracker, spec: RunSpec, plan: Plan, parts: KeyParts, model_name: str):
    """A live W&B run for one GLUE record, or None when the tracker is off."""
    config = wandb_config(spec, plan, model_name, parts.fingerprint, parts.hparams, parts.subset)
    return tracker.start(record_key(parts.key(spec, plan)), name=f"{spec.label}/{spec.task}/{spec.mode}/s{spec.seed}",
                         group=run_group(model_name, spec.task, spec.mode, spec.variant_spec),
                         job_type=spec.mode, config=config)


def log_record(tracker: Tracker, spec: RunSpec, plan: Plan, parts: KeyParts, model_name: str, record: dict) -> None:
    """A W&B run holding only a finished record (a label that shares another label's computation)."""
    tracker.finish_run(start(tracker, spec, plan, parts, model_name), record)
