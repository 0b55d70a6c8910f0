"""Decoder records cut into *units*: the records of one model scored on one set of documents.

Why a unit and not a ``Group`` (``data.py``): a group pools a task's records over the subset most
of them use, which is right for the paper's tables but wrong for the relayering scan and the
per-document paths. Both compare plans document by document, so every record of a unit must be
scored on exactly the same documents: one model (weights, dtype, healing, scoring version, as
``decoder_eval.summary.group_records`` splits them), one task, one subset of documents (the key's
``subset``, which names the limit and, with a held-out split, the part) and so one ``split``
(``scan``, ``holdout``, or ``all`` for a record of every evaluated document; the record's
``split`` column, ``glue_painters.holdout``). Held-out records are then their own unit, never
pooled with the scan's.

A plan appears once per unit: records of the same plan under two labels (``reverse`` and ``full``
when the middle is one layer) are the same plan on the same documents; the first, in key order, is
kept and its other labels are listed.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from glue_painters.errors import UserError
from glue_painters.per_item import column
from glue_painters.results import ResultsStore
from glue_painters.variants import VariantSpec
from painters.report.data import layer_count

SPLITS = ("all", "scan", "holdout")


@dataclass
class Plan:
    """One plan of a unit: its record, the labels it was stored under, its cost."""

    label: str
    record: dict
    labels: list[str] = field(default_factory=list)

    @property
    def variant(self) -> str:
        return self.record["variant"]

    @property
    def executions(self) -> int | None:
        return self.record.get("executions")


@dataclass
class Unit:
    model: str
    title: str  # "smollm2 — decoder, float32": the model as the report's tables name it
    task: str
    split: str  # all / scan / holdout
    subset: dict
    primary: str
    num_layers: int | None
    plans: list[Plan]

    @property
    def full(self) -> Plan | None:
        """The full model's plan (by variant, else by a plan that runs every layer once in order)."""
        by_variant = next((p for p in self.plans if p.variant == "full" or "full" in p.labels), None)
        if by_variant is not None or self.num_layers is None:
            return by_variant
        text = "0-" + str(self.num_layers - 1)
        return next((p for p in self.plans if (p.record.get("plan") or {}).get("text") == text), None)

    @property
    def docs(self) -> int | None:
        f = self.full
        return None if f is None else f.record.get("n")

    def values(self, plan: Plan) -> np.ndarray | None:
        """The plan's per-document primary metric (1-D), None when the record has none (or has a
        metric that is not one number per document, a perplexity's (loglikelihood, words) pairs)."""
        v = column(plan.record, self.primary)
        return v if v is not None and v.ndim == 1 else None


def label(r: dict) -> str:
    """The spec a record was stored under (``duplicate:i=10,j=14,times=2``), as the sweep names it."""
    try:
        return VariantSpec.of(r["variant"], **(r.get("params") or {})).text
    except Exception:  # a record of an older grammar: its variant and stored parameters as they are
        p = r.get("params") or {}
        return r["variant"] + (":" + ",".join(f"{k}={v}" for k, v in p.items() if v is not None) if p else "")


def split_of(r: dict) -> str:
    """A record's split: its ``split`` column, else its key's selection, else ``all``."""
    s = r.get("split") or (((r.get("key") or {}).get("subset") or {}).get("selection") or {}).get("part")
    return s if s in SPLITS else "all"


def _model_key(r: dict) -> tuple:
    k = r.get("key") or {}
    healing = json.dumps(k.get("heal") if k.get("healed") and k.get("heal") else k.get("healed"), sort_keys=True)
    return (r.get("model", k.get("model")), k.get("model"), k.get("dtype"), healing, k.get("code"))


def units_of(records: list[dict], tasks: list[str] | None = None) -> list[Unit]:
    """Every unit of these decoder records, in a fixed order (model, task, split, subset)."""
    models: dict[tuple, list[dict]] = defaultdict(list)
    for r in records:
        if tasks and r.get("task") not in tasks:
            continue
        models[_model_key(r)].append(r)
    out = []
    for mkey in sorted(models, key=lambda k: json.dumps(k, default=str)):
        recs = models[mkey]
        name, _, dtype, healing, _ = mkey
        title = f"{name} — decoder, {dtype}" + (", LoRA-healed" if json.loads(healing or "false") else "")
        T = layer_count(recs)
        cut: dict[tuple, list[dict]] = defaultdict(list)
        for r in recs:
            sub = (r.get("key") or {}).get("subset") or {}
            cut[(r["task"], split_of(r), json.dumps(sub, sort_keys=True))].append(r)
        for (task, split, sub) in sorted(cut, key=lambda k: (k[0], SPLITS.index(k[1]), k[2])):
            rs = sorted(cut[(task, split, sub)], key=lambda r: str(r.get("key_hash") or ""))
            plans: dict[str, Plan] = {}
            for r in rs:
                text = (r.get("plan") or {}).get("text") or r.get("plan_hash")
                p = plans.get(text)
                if p is None:
                    plans[text] = Plan(label(r), r, [label(r)])
                elif label(r) not in p.labels:
                    p.labels.append(label(r))
            primary = next((r.get("primary_metric") for r in rs if r.get("variant") == "full"), rs[0].get("primary_metric"))
            out.append(Unit(str(name), title, task, split, json.loads(sub), primary, T, list(plans.values())))
    return out


def load_units(results, models: list[str] | None = None, tasks: list[str] | None = None) -> list[Unit]:
    """The decoder units of a results store (only these models / tasks when given)."""
    if not Path(results).is_dir():
        raise UserError(f"results folder {results} does not exist")
    recs = [r for r in ResultsStore(results).records("decoder") if not models or r.get("model") in models]
    return units_of(recs, tasks)
