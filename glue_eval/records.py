"""GLUE results records: their keys, their body, and finding a run's record in the store.

Every run is one record in the shared ``ResultsStore`` (track ``glue``) per *label* (a variant
with its parameters, or a plan of the user's own), keyed by the weights' fingerprint, the plan
hash, the label, task, mode, seed, hyperparameters, subset, the data files' hashes and the scoring
version. A run whose record exists is skipped, so an interrupted sweep resumes where it stopped.

Before records were per label, the key had no label: a plan that two labels build (``reverse``
equals ``full`` when the middle is one layer) had one record, stored under the first label that
asked for it, and readers rebuilt the other label. ``RecordFinder`` still finds those: a run
without its own record takes the record of the same computation (same key but for the label: an
old-format record, or another label's) and gets a copy of it, marked ``migrated_from``, instead of
being computed again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from glue_painters import __version__, rewire
from glue_painters.per_item import compact_list
from glue_painters.models.aliases import identity
from glue_painters.plans import Plan
from glue_painters.results import ResultsStore, record_key

from .runs import RunSpec

TRACK = "glue"
_CODE_FILES = ("tasks.py", "glue_metric.py", "metrics.py", "finetune.py", "probe.py", "modeling.py")
# Part of every record's key, like the decoder track's SCORING_VERSION: bump it when a change alters
# what a finished GLUE run would score (tokenization, metrics, training or probing semantics), so
# stale records are re-run. A hash of the source files would re-run the whole sweep after any
# refactor; that hash is kept in each record (``code_hash``) for provenance instead.
SCORING_VERSION = "glue-v1"


def code_version() -> str:
    """Package version + a hash of the code that decides a GLUE result (recorded, not keyed)."""
    h = hashlib.sha256()
    here = Path(__file__).parent
    for name in _CODE_FILES:
        h.update((here / name).read_bytes())
    h.update(Path(rewire.__file__).read_bytes())
    return f"{__version__}+{h.hexdigest()[:10]}"


def plan_key(fingerprint, plan: Plan, spec: RunSpec, hparams: dict, subset: dict, data: dict) -> dict:
    """What decides a run's result: the key without the label. Records written before records were
    per label have exactly this key."""
    return {"model": fingerprint, "plan": plan.hash, "task": spec.task, "mode": spec.mode, "seed": spec.seed,
            "hparams": hparams, "subset": subset, "data": data, "code": SCORING_VERSION}


def key_fields(fingerprint, plan: Plan, spec: RunSpec, hparams: dict, subset: dict, data: dict) -> dict:
    """A record's key: ``plan_key`` and the run's label."""
    return {**plan_key(fingerprint, plan, spec, hparams, subset, data), "label": spec.label}


@dataclass(frozen=True)
class KeyParts:
    """What a record's key holds besides the run itself (the same for a mode's runs on a task)."""

    fingerprint: str
    hparams: dict
    subset: dict
    data: dict

    def key(self, spec: RunSpec, plan: Plan) -> dict:
        return key_fields(self.fingerprint, plan, spec, self.hparams, self.subset, self.data)


def make_record(spec: RunSpec, plan: Plan, model_name: str, sizes: dict, res: dict, extra: dict) -> dict:
    """A record's body: what ran (label, plan, model, task, mode, seed), its scores and rows used,
    and (when the run gave them) each evaluation row's prediction and label, per split in the
    split's row order (``rows``), so a metric can be recomputed on a resample of the rows.
    ``model_identity`` names the weights as they are (``models.identity``; not keyed: the key has
    the weights' fingerprint)."""
    return {"variant": spec.variant, "params": spec.params, "n": spec.n, "k": spec.k, "i": spec.i, "label": spec.label,
            "plan_text": plan.text,
            "plan_hash": plan.hash, "model_name": model_name, "task": spec.task, "mode": spec.mode, "seed": spec.seed,
            "metrics": res["metrics"], "score": res["score"], "sizes": sizes, "executions": plan.executions,
            "code_hash": code_version(), "model_identity": identity(model_name), **rows(res), **extra}


def rows(res: dict) -> dict:
    """``{"predictions": {split: [...]}, "labels": {split: [...]}}`` of a run's result, compact
    (``glue_painters.per_item``); empty for a result without them."""
    if not res.get("predictions"):
        return {}
    return {name: {split: compact_list(np.asarray(v).reshape(-1).tolist()) for split, v in res[name].items()}
            for name in ("predictions", "labels")}


def relabel(record: dict, spec: RunSpec) -> dict:
    """``record`` (a result) as the record of ``spec``'s label, which builds the same plan."""
    return dict(record, variant=spec.variant, params=spec.params, n=spec.n, k=spec.k, i=spec.i, label=spec.label)


def _without_label(key: dict) -> str:
    return record_key({k: v for k, v in key.items() if k != "label"})


class RecordFinder:
    """A run's record in the store: its own, else a copy of the same computation's (see module doc).

    The same computation is looked up in an index of the whole track, built on the first run that
    has no record of its own (a sweep whose runs are all done reads nothing more)."""

    def __init__(self, store: ResultsStore):
        self.store = store
        self._same: dict[str, dict] | None = None

    def own(self, key: dict) -> dict | None:
        return self.store.get(TRACK, key)

    def copy(self, spec: RunSpec, key: dict) -> dict | None:
        """The record of ``key``'s computation under another label or in the old format, relabelled
        to ``spec`` and keyed by ``key`` (not written: ``put`` it to keep it)."""
        if self._same is None:
            self._same = {}
            for rec in self.store.records(TRACK):
                self._same.setdefault(_without_label(rec.get("key", {})), rec)
        source = self._same.get(_without_label(key))
        if source is None:
            return None
        body = {k: v for k, v in source.items() if k not in ("key", "key_hash", "track")}
        return dict(relabel(body, spec), migrated_from=source["key_hash"])
