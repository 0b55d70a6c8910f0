"""The nine GLUE tasks: field names, label codes, splits and metrics, and loading them.

Field names and label codes are those of the Hugging Face ``glue`` dataset (``nyu-mll/glue``), so a
local JSON Lines copy and the hub copy are interchangeable. Data comes from
``<data_dir>/<task>/<split>.jsonl`` when that file exists, else from
``datasets.load_dataset("nyu-mll/glue", task, split=split)`` when the hub is reachable (asked first,
in a second or two, see ``glue_painters.models.hub``); when neither works the error names the
missing file at once.

``data_dir`` is, in order: the argument, ``$PAINTERS_DATA`` (its ``glue/`` subfolder if it has one),
or ``../shared/data/glue`` next to the repository.

Every row is checked as it is read (text fields present and strings, label present and in the
task's label set); a bad row is a ``UserError`` naming the file and line.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from glue_painters.datadir import track_dir
from glue_painters.errors import UserError
from glue_painters.jsonl import jsonl_records
from glue_painters.models.hub import hub_unavailable


@dataclass(frozen=True)
class Task:
    name: str
    fields: tuple[str, ...]            # one or two text fields, in the order the model reads them
    labels: tuple[str, ...] | None     # label names by code; None for the regression task (STS-B)
    metrics: tuple[str, ...]           # what the official metric reports, per evaluation split
    eval_splits: tuple[str, ...] = ("validation",)

    @property
    def is_regression(self) -> bool:
        return self.labels is None

    @property
    def num_labels(self) -> int:
        return 1 if self.labels is None else len(self.labels)

    @property
    def label_range(self) -> tuple[float, float] | None:
        return (0.0, 5.0) if self.is_regression else None


TASKS: dict[str, Task] = {t.name: t for t in (
    Task("cola", ("sentence",), ("unacceptable", "acceptable"), ("matthews_correlation",)),
    Task("sst2", ("sentence",), ("negative", "positive"), ("accuracy",)),
    Task("mrpc", ("sentence1", "sentence2"), ("not_equivalent", "equivalent"), ("f1", "accuracy")),
    Task("qqp", ("question1", "question2"), ("not_duplicate", "duplicate"), ("f1", "accuracy")),
    Task("stsb", ("sentence1", "sentence2"), None, ("pearson", "spearmanr")),
    Task("mnli", ("premise", "hypothesis"), ("entailment", "neutral", "contradiction"), ("accuracy",),
         eval_splits=("validation_matched", "validation_mismatched")),
    Task("qnli", ("question", "sentence"), ("entailment", "not_entailment"), ("accuracy",)),
    Task("rte", ("sentence1", "sentence2"), ("entailment", "not_entailment"), ("accuracy",)),
    Task("wnli", ("sentence1", "sentence2"), ("not_entailment", "entailment"), ("accuracy",)),
)}

HUB_DATASET = "nyu-mll/glue"


def get_task(name: str) -> Task:
    key = str(name).lower().replace("-", "")
    if key not in TASKS:
        raise UserError(f"unknown GLUE task '{name}'; known: {', '.join(TASKS)}")
    return TASKS[key]


def split_suffix(task: Task, split: str) -> str:
    """How a split's metrics are named in results: '' for the single validation split,
    '_matched'/'_mismatched' for MNLI's two."""
    if len(task.eval_splits) == 1:
        return ""
    return "_" + split.removeprefix("validation_")


def default_data_dir() -> Path:
    return track_dir("glue")


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path:
    return track_dir("glue", data_dir, marker="cola")


# ---- reading and checking rows ------------------------------------------------------------------
def check_row(task: Task, row, where: str) -> dict:
    """One row as ``{text fields..., "label": int|float, "idx": int}``, or a UserError at ``where``."""
    if not isinstance(row, dict):
        raise UserError(f"{where}: expected a JSON object, got {type(row).__name__}")
    out = {}
    for f in task.fields:
        if f not in row:
            raise UserError(f"{where}: no '{f}' field (GLUE {task.name} rows have {', '.join(task.fields)}, label)")
        if not isinstance(row[f], str):
            raise UserError(f"{where}: field '{f}' must be a string, got {row[f]!r:.40}")
        out[f] = row[f]
    if "label" not in row:
        raise UserError(f"{where}: no 'label' column (GLUE {task.name} needs a label for training and evaluation)")
    label = row["label"]
    if task.is_regression:
        ok = isinstance(label, (int, float)) and not isinstance(label, bool) and math.isfinite(label) \
            and 0.0 <= float(label) <= 5.0
        if not ok:
            raise UserError(f"{where}: label {label!r:.40} is not a similarity score between 0.0 and 5.0")
        out["label"] = float(label)
    else:
        codes = range(task.num_labels)
        if isinstance(label, bool) or not isinstance(label, int) or label not in codes:
            names = ", ".join(f"{i}={n}" for i, n in enumerate(task.labels))
            raise UserError(f"{where}: label {label!r:.40} is not one of {task.name}'s label codes ({names})")
        out["label"] = int(label)
    idx = row.get("idx")
    out["idx"] = int(idx) if isinstance(idx, int) and not isinstance(idx, bool) else -1
    return out


def read_jsonl(task: Task, path: Path) -> list[dict]:
    rows = [check_row(task, obj, where) for where, obj in jsonl_records(path)]
    if not rows:
        raise UserError(f"{path}: no rows")
    return rows


def load_rows(task: Task | str, split: str, data_dir=None) -> tuple[list[dict], str]:
    """All rows of one split, checked, and where they came from (a file path or the hub id)."""
    task = get_task(task) if isinstance(task, str) else task
    valid = ("train",) + task.eval_splits
    if split not in valid:
        raise UserError(f"GLUE {task.name} has no split '{split}' (labelled splits: {', '.join(valid)})")
    root = resolve_data_dir(data_dir)
    path = root / task.name / f"{split}.jsonl"
    if path.is_file():
        return read_jsonl(task, path), str(path)
    # Asked first: without a network the datasets client retries for 25-49 s before failing.
    unavailable = hub_unavailable()
    why = f"the hub cannot be reached ({unavailable})" if unavailable else None
    if why is None:
        try:
            import datasets
            ds = datasets.load_dataset(HUB_DATASET, task.name, split=split)
            source = f"{HUB_DATASET}/{task.name}:{split}"
            return [check_row(task, r, f"{source} row {i}") for i, r in enumerate(ds)], source
        except UserError:
            raise
        except Exception as e:  # noqa: BLE001 - any hub failure means: not reachable from here
            why = f"loading {HUB_DATASET} failed ({type(e).__name__})"
    raise UserError(
        f"GLUE {task.name} {split}: file {path} is missing and {why}; put the HF glue rows there as "
        f"JSON Lines or pass --data-dir"
    )


def subset(rows: list[dict], limit: int | None, seed: int = 0) -> list[dict]:
    """A fixed random subset (the same for every run of a sweep), or all rows.

    Random rather than the first ``limit`` rows because GLUE files are ordered (STS-B by genre,
    CoLA by source), so a head of the file is not a sample of the task.
    """
    if limit is None or limit >= len(rows):
        return rows
    import random
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    return [rows[i] for i in sorted(order[:limit])]


def to_dataset(rows: list[dict]):
    import datasets
    return datasets.Dataset.from_list(rows)


def tokenize(ds, task: Task, tokenizer, max_length: int):
    """Tokenize once (no padding: batches are padded by the collator); keeps ``labels``."""
    def enc(batch):
        texts = [batch[f] for f in task.fields]
        out = tokenizer(*texts, truncation=True, max_length=max_length)
        out["labels"] = batch["label"]
        return out
    keep = set()
    cols = [c for c in ds.column_names if c not in keep]
    out = ds.map(enc, batched=True, remove_columns=cols, desc=f"tokenize {task.name}")
    if task.is_regression:
        import datasets
        out = out.cast_column("labels", datasets.Value("float32"))
    return out
