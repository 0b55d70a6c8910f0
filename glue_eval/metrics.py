"""Scoring predictions with the local ``evaluate`` module, and the paper's GLUE average.

A task's *score* is the mean of its official metrics times 100 (MRPC/QQP: F1 and accuracy;
STS-B: Pearson and Spearman; MNLI: matched and mismatched accuracy), the GLUE leaderboard's
convention. The *GLUE average* is the plain (unnormalized) mean of the task scores, as the paper
reports it for BERT; the tasks it covers are always listed next to it, since a subset's average is
not the nine-task one.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np

from .tasks import Task, get_task, split_suffix

METRIC_PATH = str(Path(__file__).with_name("glue_metric.py"))


@lru_cache(maxsize=None)
def load_metric(task: str):
    """``evaluate.load`` of the local module for one task (works with no network)."""
    import evaluate
    return evaluate.load(METRIC_PATH, config_name=get_task(task).name)


def predictions_from_logits(task: Task, logits) -> np.ndarray:
    logits = np.asarray(logits)
    if task.is_regression:
        return logits.reshape(-1).astype(np.float32)
    return logits.argmax(axis=-1).astype(np.int64)


def score_split(task: Task | str, split: str, predictions, references) -> dict[str, float]:
    """Official metrics of one evaluation split, named with the split's suffix (MNLI's two)."""
    task = get_task(task) if isinstance(task, str) else task
    refs = np.asarray(references)
    refs = refs.astype(np.float32) if task.is_regression else refs.astype(np.int64)
    out = load_metric(task.name).compute(predictions=np.asarray(predictions), references=refs)
    suffix = split_suffix(task, split)
    return {f"{k}{suffix}": float(v) for k, v in out.items()}


def task_score(task: Task | str, metrics: dict[str, float]) -> float:
    """Mean of the task's official metrics, times 100 (NaN if one is NaN, e.g. constant STS-B output)."""
    task = get_task(task) if isinstance(task, str) else task
    names = [f"{m}{split_suffix(task, s)}" for s in task.eval_splits for m in task.metrics]
    missing = [n for n in names if n not in metrics]
    if missing:
        raise KeyError(f"{task.name}: metrics {missing} missing from {sorted(metrics)}")
    return 100.0 * float(np.mean([metrics[n] for n in names]))


def glue_average(scores: dict[str, float]) -> float:
    """The paper's unnormalized average of task scores (NaN if any is NaN or none given)."""
    vals = list(scores.values())
    if not vals or any(v is None or math.isnan(v) for v in vals):
        return float("nan")
    return float(np.mean(vals))
