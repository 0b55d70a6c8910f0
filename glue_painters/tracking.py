"""Weights & Biases runs for records: one W&B run per record, W&B's own settings respected.

What a user of W&B expects, and why each rule is here:

* **W&B's environment wins over our defaults.** ``WANDB_PROJECT``, ``WANDB_ENTITY``,
  ``WANDB_RUN_GROUP``, ``WANDB_DIR``, ``WANDB_TAGS`` and ``WANDB_MODE`` are read by ``wandb.init``
  itself; we pass a value only when the user wrote it (a sweep config's ``wandb:`` section), never
  a default of ours over theirs. Without ``WANDB_MODE`` runs are offline (no key needed).
* **One W&B run per record.** A run's id is the record's key hash, so a sweep killed between
  starting a run and writing its record, re-run later, logs *the same* run (``resume="allow"``),
  and two sweeps computing one record log one run. The offline folder a killed attempt left
  (``offline-run-*-<id>``, untouched for ``ORPHAN_MINUTES``) is removed before the run starts
  again, so ``wandb sync`` uploads one history per record.
* **Comparable runs.** Every run has the same config fields in both tracks (``track``, ``model``,
  ``variant``, ``spec`` - the variant spec text -, ``N``, ``k``, ``i``, ``seed``, ``task``,
  ``mode``, ``plan``, ``executions``), ``group`` = one row of the sweep (model/task/mode/spec:
  the seeds of a plan, which W&B aggregates) and ``job_type`` = the mode (finetune, probe, eval,
  heal), which is what the run comparer and parallel coordinates want.
* **Where they went.** ``Tracker.finish`` prints the folder and the ``wandb sync`` line.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_PROJECT = "glue-painters"
ORPHAN_MINUTES = 10
SETTINGS = ("project", "entity", "group", "tags")


def run_config(*, track: str, model: str, spec, plan, task: str, mode: str, seed: int | None = None,
               **extra) -> dict:
    """The config fields every run carries, from a ``VariantSpec`` and its ``Plan``."""
    params = spec.param_dict
    return {"track": track, "model": model, "variant": spec.variant, "spec": spec.text, "N": params.get("n"),
            "k": params.get("k"), "i": params.get("i"), "seed": seed if seed is not None else params.get("seed"),
            "task": task, "mode": mode, "plan": plan.text, "executions": plan.executions, **extra}


def run_group(model: str, task: str, mode: str, spec) -> str:
    """One sweep row across its seeds (W&B averages a group's runs): the spec without ``seed``, so
    the random variant's permutations are one group, as the paper averages them."""
    params = [(k, v) for k, v in spec.params if k != "seed"]
    text = spec.text if spec.variant == "custom" else spec.variant + (":" + ",".join(f"{k}={v}" for k, v in params)
                                                                      if params else "")
    return f"{Path(str(model)).name}/{task}/{mode}/{text[:80]}"


@dataclass
class Tracker:
    """Starts W&B runs for one sweep; ``enabled=False`` makes every call a no-op."""

    enabled: bool
    directory: Path                       # used when WANDB_DIR is not set
    settings: dict = field(default_factory=dict)  # what the user's config says (project, entity, group, tags)
    started: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.directory = Path(os.environ.get("WANDB_DIR") or self.directory)

    @property
    def offline(self) -> bool:
        return os.environ.get("WANDB_MODE", "offline") in ("offline", "dryrun")

    def _init_kwargs(self, run_id: str, name: str, group: str, job_type: str, config: dict) -> dict:
        kwargs: dict[str, Any] = {"id": run_id, "resume": "allow", "name": name, "job_type": job_type,
                                  "config": config, "dir": str(self.directory), "reinit": "finish_previous"}
        for key in ("project", "entity", "tags"):
            if self.settings.get(key) is not None:
                kwargs[key] = self.settings[key]
        if "project" not in kwargs and not os.environ.get("WANDB_PROJECT"):
            kwargs["project"] = DEFAULT_PROJECT
        group = self.settings.get("group") or os.environ.get("WANDB_RUN_GROUP") or group
        kwargs["group"] = group
        return kwargs

    def start(self, run_id: str, *, name: str, group: str, job_type: str, config: dict):
        """A live W&B run for one record (id = the record's key hash), or None when disabled."""
        if not self.enabled:
            return None
        os.environ.setdefault("WANDB_MODE", "offline")
        os.environ.setdefault("WANDB_SILENT", "true")
        import wandb

        self.directory.mkdir(parents=True, exist_ok=True)
        remove_orphans(self.directory, run_id, ORPHAN_MINUTES)
        run = wandb.init(**self._init_kwargs(run_id, name, group, job_type, config))
        self.started.append(run_id)
        return run

    def log_record(self, run_id: str, record: dict, *, name: str, group: str, job_type: str, config: dict) -> None:
        """A finished record as a whole run (evaluation-only work: nothing to log while it runs)."""
        run = self.start(run_id, name=name, group=group, job_type=job_type, config=config)
        if run is None:
            return
        try:
            metrics = {k: v for k, v in (record.get("metrics") or {}).items() if isinstance(v, (int, float))}
            run.summary.update(metrics | {f"stderr/{k}": v for k, v in (record.get("stderr") or {}).items()
                                          if isinstance(v, (int, float))})
        finally:
            run.finish()

    @staticmethod
    def log_losses(run, losses: list[float]) -> None:
        """A training loss per epoch, as ``train/loss`` against ``train/epoch`` (the names Trainer's
        curves have, so runs trained by Trainer and by our own loop compare)."""
        if run is None:
            return
        for epoch, loss in enumerate(losses, 1):
            run.log({"train/loss": loss, "train/epoch": epoch})

    @staticmethod
    def finish_run(run, record: dict | None, failed: bool = False) -> None:
        """Close a live run; with its record, the record's scores as ``eval/*`` and in its summary."""
        if run is None:
            return
        if record is not None:
            run.log({f"eval/{k}": v for k, v in record["metrics"].items()} | {"eval/score": record["score"]})
            run.summary.update({**record["metrics"], "score": record["score"]})
        run.finish(exit_code=1 if failed else 0)

    def finish(self) -> str | None:
        """The line telling the user where the runs are and how to upload them (None if none)."""
        if not self.enabled or not self.started:
            return None
        where = self.directory / "wandb"
        if self.offline:
            return (f"W&B: {len(set(self.started))} offline runs in {where}; upload with: "
                    f"wandb sync {where}/offline-run-*")
        return f"W&B: {len(set(self.started))} runs logged (local files in {where})"


def remove_orphans(directory: Path, run_id: str, minutes: float = ORPHAN_MINUTES) -> int:
    """Remove offline run folders of ``run_id`` nobody has written to for ``minutes``: a killed
    attempt at the same record, which would otherwise be uploaded beside the real run."""
    removed = 0
    for folder in (Path(directory) / "wandb").glob(f"offline-run-*-{run_id}"):
        # lstat, and symlinks skipped: W&B links its service's shared log into every run folder
        newest = max((p.lstat().st_mtime for p in folder.rglob("*") if not p.is_symlink()),
                     default=folder.lstat().st_mtime)
        if time.time() - newest > minutes * 60:
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed
