"""A record's *recipe*: everything in its key that decides its numbers except which plan ran, on
which task, with which seed; and titles that name what tells two recipes apart.

Why: a summary cell that averages over seeds must average runs that differ in the seed alone. Two
fine-tunes of one plan with 1 and 3 epochs are not two samples of one quantity, and a table that
pools them ("skip 50.3 ± 1.8 over seeds [0-5]") reports a spread that is partly a recipe change.
So every summary (the GLUE and decoder tables, the report's cells) splits its records by recipe
first and pools only inside one, and every table is titled by the settings that distinguish it
from its neighbours (a title that omits them makes three tables look like one).

The recipe is read from the record's ``key`` (what the store keys it by), so it covers every
setting that decides a record, present and future, without a list to keep in step with the
tracks; ``RUN_FIELDS`` are the key fields that name the run inside a recipe.
"""

from __future__ import annotations

import json

# key fields that say which run of a recipe a record is (plan, its spec, task, seed), not how it ran;
# ``data`` holds the task's data files' hashes, which differ by task.
RUN_FIELDS = frozenset({"plan", "variant", "params", "label", "task", "seed", "data"})
# how a recipe field is shown (flattened name -> words); anything else shows as ``name value``
_NAMES = {"hparams.epochs": "epochs", "hparams.max_length": "max length", "hparams.batch_size": "batch",
          "hparams.learning_rate": "lr", "subset.train": "train rows", "subset.eval": "eval rows",
          "subset.seed": "subset seed", "model": "weights", "code": "scoring", "heal": "healing"}


def recipe(key: dict | None) -> dict:
    """The recipe of a record with this key: the key less ``RUN_FIELDS``."""
    return {k: v for k, v in (key or {}).items() if k not in RUN_FIELDS}


def recipe_id(key: dict | None, drop: tuple[str, ...] = ()) -> str:
    """The recipe as a string that equal recipes share (for grouping); ``drop``: fields a caller
    groups on by other means."""
    return json.dumps({k: v for k, v in recipe(key).items() if k not in drop}, sort_keys=True, default=str)


def flatten(value, prefix: str = "") -> dict[str, object]:
    """Nested settings as ``{"hparams.epochs": 3, ...}`` (a dict within a dict gets a dotted name)."""
    if isinstance(value, dict) and value:
        out: dict[str, object] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def _show(name: str, value) -> str:
    label = _NAMES.get(name, name.split(".", 1)[-1] if name.startswith(("hparams.", "subset.")) else name)
    if value is None and name.startswith("subset."):
        value = "all"
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1:
        value = int(value)
    if isinstance(value, str) and len(value) > 24:  # a fingerprint: enough to tell two apart
        value = value.split(":")[-1][:12]
    return f"{label} {value}"


def describe(recipe_: dict, fields: list[str] | None = None) -> str:
    """``"epochs 3, max length 128, batch 32, ..."``: the recipe's settings (or only ``fields``,
    flattened names) in words."""
    flat = flatten(recipe_)
    names = _ordered([f for f in (fields if fields is not None else list(flat)) if f in flat])
    return ", ".join(_show(n, flat[n]) for n in names)


def distinguishing(recipes: list[dict]) -> list[str]:
    """The flattened fields whose values differ among ``recipes`` (in first-seen order): what a
    title must show for tables of these recipes to be told apart. Empty for one recipe."""
    flats = [flatten(r) for r in recipes]
    names: list[str] = []
    for f in flats:
        names += [n for n in f if n not in names]
    return _ordered([n for n in names if len({json.dumps(f.get(n), sort_keys=True, default=str) for f in flats}) > 1])


def _ordered(names: list[str]) -> list[str]:
    """Training settings first, then the data subset, then the rest (weights, scoring version)."""
    rank = {"hparams": 0, "heal": 1, "subset": 2}
    return sorted(names, key=lambda n: (rank.get(n.split(".")[0], 3), n))
