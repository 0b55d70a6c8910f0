"""A task's rows ready for a run (subset, tokenized) and what identifies them in a record's key.

A record's key holds each split's file hash (``glue_painters.fingerprints.file_sha16``, or the hub
id), so edited data never reuses a stale record.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from glue_painters.fingerprints import file_sha16

from . import tasks as T


def _file_sha(path: str) -> str:
    """A local split's content hash; a hub dataset id stands for itself."""
    return file_sha16(path) if os.path.isfile(path) else path


@dataclass
class TaskData:
    task: T.Task
    train: object          # tokenized datasets
    evals: dict
    sources: dict          # split -> data file hash (or hub id)
    sizes: dict


def eval_rows(rows: list[dict], subset: dict) -> list[dict]:
    """The evaluation rows a record's ``subset`` key chose from a split's rows: a fixed random
    subset (``eval``, seeded by ``seed``: ``sample``, and ``limit`` in records written before
    ``sample`` existed), or the first ``eval_first`` rows (``limit``), or all of them."""
    rows = T.subset(rows, subset.get("eval"), subset.get("seed", 0))
    first = subset.get("eval_first")
    return rows if first is None else rows[:first]


def prepare_task(task_name, tokenizer, max_length, data_dir, sample_train, limit_eval, subset_seed=0,
                 loaded: dict | None = None, first_eval: int | None = None) -> TaskData:
    """Rows of every split (``loaded[(task, split)]`` if given, else read and checked now), subset,
    tokenized. ``limit_eval``: a fixed random subset of the evaluation rows (``sample``);
    ``first_eval``: the first N of them (``limit``)."""
    task = T.get_task(task_name)
    sources, sizes = {}, {}
    read = (lambda t, sp, d: loaded[(t.name, sp)]) if loaded is not None else T.load_rows
    rows, src = read(task, "train", data_dir)
    rows = T.subset(rows, sample_train, subset_seed)
    sources["train"], sizes["train"] = _file_sha(src), len(rows)
    train = T.tokenize(T.to_dataset(rows), task, tokenizer, max_length)
    evals = {}
    for split in task.eval_splits:
        rows, src = read(task, split, data_dir)
        rows = eval_rows(rows, {"eval": limit_eval, "seed": subset_seed, "eval_first": first_eval})
        sources[split], sizes[split] = _file_sha(src), len(rows)
        evals[split] = T.tokenize(T.to_dataset(rows), task, tokenizer, max_length)
    return TaskData(task, train, evals, sources, sizes)



def task_sources(task: T.Task, data_dir) -> dict:
    """What identifies each split's data in a results key: the local file's hash, or the hub id."""
    root = T.resolve_data_dir(data_dir)
    out = {}
    for split in ("train",) + task.eval_splits:
        path = root / task.name / f"{split}.jsonl"
        out[split] = _file_sha(str(path)) if path.is_file() else f"{T.HUB_DATASET}/{task.name}:{split}"
    return out
