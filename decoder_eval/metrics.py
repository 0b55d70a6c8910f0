"""Per-item metrics and their aggregation, written to match lm-evaluation-harness 0.4.

Why re-written rather than imported: lm-eval is a test-only dependency here (it pulls a large
tree of packages), and these few functions are the whole of what the five benchmarks need. Each
names the lm-eval function it mirrors so a reader can check the two side by side; the
``real``-marked tests compare our numbers with stock lm-eval's on the same data.
"""

from __future__ import annotations

import math
import re
from typing import Sequence

import numpy as np


def argmax_first(values: Sequence[float]) -> int:
    """Index of the largest value, the first one on ties (``np.argmax``, as lm-eval uses)."""
    return int(np.argmax(np.asarray(values, dtype=np.float64)))


def multiple_choice(lls: Sequence[float], choices: Sequence[str], gold: int) -> dict[str, float]:
    """``acc`` and ``acc_norm`` of one item (lm-eval ``ConfigurableTask.process_results``).

    acc: the choice with the highest loglikelihood is gold. acc_norm: the same after dividing each
    loglikelihood by the choice's length in characters (the choice text without the leading
    space), lm-eval's "length-normalized" accuracy.
    """
    lls_arr = np.asarray(lls, dtype=np.float64)
    lengths = np.asarray([float(len(c)) for c in choices])
    return {
        "acc": float(argmax_first(lls_arr) == gold),
        "acc_norm": float(argmax_first(lls_arr / lengths) == gold),
    }


def mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values))


def mean_stderr(values: Sequence[float]) -> float | None:
    """Standard error of the mean: sample std (n-1) / sqrt(n), lm-eval's ``mean_stderr``."""
    n = len(values)
    if n < 2:
        return None
    mu = mean(values)
    return math.sqrt(sum((x - mu) ** 2 for x in values) / (n - 1)) / math.sqrt(n)


def perplexity(lls: Sequence[float]) -> float:
    """exp(-mean loglikelihood) over items (lm-eval's ``perplexity`` aggregation)."""
    return math.exp(-mean(lls))


# ---- GSM8K -----------------------------------------------------------------------------------
# From lm-eval tasks/gsm8k/gsm8k.yaml (version 3.0).
STRICT_PATTERN = r"#### (\-?[0-9\.\,]+)"
FLEXIBLE_PATTERN = r"(-?[$0-9.,]{2,})|(-?[0-9]+)"
EXACT_MATCH_IGNORE = [",", r"\$", r"(?s).*#### ", r"\.$"]
INVALID = "[invalid]"


def regex_filter(text: str, pattern: str, group_select: int = 0, fallback: str = INVALID) -> str:
    """lm-eval ``RegexFilter`` on one response: the ``group_select``-th match (negative counts
    from the end); for patterns with groups, the first non-empty group; stripped."""
    matches = re.findall(pattern, text)
    if not matches:
        return fallback
    match = matches[group_select]
    if isinstance(match, tuple):
        nonempty = [m for m in match if m]
        match = nonempty[0] if nonempty else fallback
    return match.strip()


def strict_match(text: str) -> str:
    """The ``strict-match`` filter: the number after the first ``#### ``."""
    return regex_filter(text, STRICT_PATTERN, group_select=0)


def flexible_extract(text: str) -> str:
    """The ``flexible-extract`` filter: the last number-looking string in the response."""
    return regex_filter(text, FLEXIBLE_PATTERN, group_select=-1)


def exact_match(prediction: str, reference: str, ignore: Sequence[str] = tuple(EXACT_MATCH_IGNORE),
                ignore_case: bool = True) -> float:
    """lm-eval ``exact_match_hf_evaluate`` for one pair, with GSM8K's settings: strip each
    regex from both strings (in order), lower-case, compare."""
    for pattern in ignore:
        prediction = re.sub(pattern, "", prediction)
        reference = re.sub(pattern, "", reference)
    if ignore_case:
        prediction, reference = prediction.lower(), reference.lower()
    return float(prediction == reference)
