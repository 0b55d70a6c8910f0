"""Benchmark documents: local JSON Lines files (offline) or the Hugging Face hub (by name).

Why both: no machine of this project reaches a dataset hub, so the default is a folder of JSON
Lines files laid out like ``shared/data`` (``<task folder>/<split>.jsonl``); a user with a network
can pass ``--data-dir hub`` and get the same records through ``datasets.load_dataset``. Each task
turns either record shape into one internal form (see ``tasks.py``).

Where the folder is, first match wins: ``--data-dir`` / ``data_dir=``, the environment variable
``PAINTERS_DATA``, else ``../shared/data`` next to the repository checkout (``glue_painters.datadir``,
shared with the core and the GLUE track).

``limit=N`` keeps the **first N documents in file order**, as lm-evaluation-harness's ``--limit``
does, so a limited run here and a limited stock lm-eval run see the same documents, and a larger
limit only adds documents.

Every load returns a fingerprint of the data (sha256 of the file, or the hub dataset's own
fingerprint) that goes into results keys: a changed file never reuses a stale record.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from glue_painters.datadir import DATA_ENV, data_root
from glue_painters.errors import UserError
from glue_painters.fingerprints import file_sha16
from glue_painters.jsonl import jsonl_records
from glue_painters.models.hub import hub_unavailable, offline_variable

HUB = "hub"


class DataError(UserError):
    """A benchmark file that is missing or malformed; the message names the file (and line)."""


def default_data_dir() -> Path:
    """``$PAINTERS_DATA``, else ``<checkout>/../shared/data``."""
    return data_root()


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path | str:
    """The folder to read from, or the string ``"hub"`` to load by name with ``datasets``."""
    if data_dir is not None and str(data_dir) == HUB:
        return HUB
    return data_root(data_dir)


@dataclass(frozen=True)
class Split:
    """One split of a benchmark: its local file and its hub coordinates."""

    local: str  # path under the data folder, e.g. "arc_easy/test.jsonl"
    hub_path: str  # e.g. "allenai/ai2_arc"
    hub_name: str | None  # the dataset config, e.g. "ARC-Easy"
    hub_split: str  # e.g. "test"


@dataclass(frozen=True)
class Docs:
    """The documents of one split (already cut to ``limit``) and where they came from."""

    docs: list[dict]
    source: str  # "local:<relative path>" or "hub:<path>/<name>/<split>"
    fingerprint: str  # sha256 (16 hex) of the whole file, or the hub dataset fingerprint
    total: int  # documents in the split before the limit


def read_jsonl(path: Path) -> list[dict]:
    """All records of a JSON Lines file; a bad line is an error naming the file and line."""
    if not path.is_file():
        raise DataError(
            f"data file {path} not found: pass --data-dir (or set {DATA_ENV}) to a folder laid out "
            f"like shared/data, or --data-dir hub to load from the Hugging Face hub"
        )
    records = [obj for _, obj in jsonl_records(path, DataError)]
    if not records:
        raise DataError(f"{path}: no records")
    return records


def _check_hub(split: Split) -> None:
    """Fail at once when no connection to the hub opens: the datasets client would retry for
    25-49 s first. With an offline variable set (HF_DATASETS_OFFLINE=1 ...) datasets reads its own
    cache, quickly, so that case is left to it."""
    if offline_variable() is not None:
        return
    why = hub_unavailable()
    if why is not None:
        raise DataError(f"could not load {split.hub_path}/{split.hub_name}/{split.hub_split} from the hub: "
                        f"it cannot be reached ({why}); set HF_DATASETS_OFFLINE=1 to use a copy in the "
                        f"datasets cache, or pass --data-dir")


def load_split(split: Split, data_dir: Path | str, limit: int | None = None) -> Docs:
    """Read one split and keep its first ``limit`` documents (all when ``limit`` is None)."""
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be a positive number of documents, got {limit}")
    if data_dir == HUB:
        _check_hub(split)
        try:
            import datasets

            ds = datasets.load_dataset(split.hub_path, split.hub_name, split=split.hub_split)
        except Exception as e:  # no network, unknown name: say which dataset and why, in one line
            raise DataError(
                f"could not load {split.hub_path}/{split.hub_name}/{split.hub_split} from the hub: "
                f"{str(e).splitlines()[0] if str(e) else type(e).__name__}"
            ) from None
        records = [dict(r) for r in ds]
        source = f"hub:{split.hub_path}/{split.hub_name}/{split.hub_split}"
        fingerprint = f"hub:{getattr(ds, '_fingerprint', 'unknown')}"
    else:
        path = Path(data_dir) / split.local
        records = read_jsonl(path)
        source = f"local:{split.local}"
        fingerprint = file_sha16(path)
    total = len(records)
    return Docs(records[:limit] if limit else records, source, fingerprint, total)
