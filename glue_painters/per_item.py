"""Per-document scores in a record, compactly: ``{metric: [one value per document]}``.

Why records carry them: every plan of a sweep is scored on the same documents (GLUE: the same
evaluation rows, in the same order), so two plans are compared document by document
(``glue_painters.stats``), which needs each document's score, not only the task's mean. The
document order is the task's own order, identical for every plan of a sweep; that is what makes
position ``i`` of two records the same document.

Why compact: a record is a JSON file and LAMBADA has 5153 documents. Values that are whole numbers
(0/1 accuracies, class labels) are stored as ints, other floats rounded to ``DIGITS`` significant
digits (far below any difference a bootstrap over a few thousand documents can see), and one list
per metric rather than one dict per document (the metric names are not repeated).

Records written before this field existed have none; ``column`` then returns None and a
comparison that needs the scores says so (``NO_SCORES``) instead of guessing.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

DIGITS = 6
FIELD = "per_item"
NO_SCORES = "no per-document scores in these records (re-run with this version)"


def compact_value(x):
    """An int when ``x`` is a whole number, else ``x`` rounded to ``DIGITS`` significant digits.
    lm-eval's per-document values are not always numbers: a rolling task's word perplexity is a
    (loglikelihood, words) pair, a generation task may keep a string; pairs are compacted element
    by element, anything else that is not a number is kept as it is."""
    if isinstance(x, (tuple, list)):
        return [compact_value(v) for v in x]
    if x is None or isinstance(x, str):
        return x
    if isinstance(x, (bool, np.bool_)):
        return int(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    x = float(x)
    if not math.isfinite(x):
        return x
    if x.is_integer() and abs(x) < 2 ** 53:
        return int(x)
    return float(f"{x:.{DIGITS}g}")


def compact_list(values: Sequence) -> list:
    return [compact_value(v) for v in values]


def compact(per_item: Sequence[Mapping[str, float]]) -> dict[str, list]:
    """``[{metric: value}, ...]`` per document -> ``{metric: [value, ...]}`` (the metrics of the
    first document, in its order; every document must have them)."""
    if not per_item:
        return {}
    metrics = list(per_item[0])
    return {m: compact_list(row[m] for row in per_item) for m in metrics}


def column(record: Mapping, metric: str) -> np.ndarray | None:
    """One metric's per-document scores of a record as floats, None when the record has none."""
    values = (record.get(FIELD) or {}).get(metric)
    return None if values is None else np.asarray(values, dtype=float)
