"""Reading JSON Lines data files, one place for every track.

Benchmark splits, GLUE tasks, calibration text and similarity documents are all JSON Lines; a
broken line must stop the run with the file and line named, whichever track reads it. ``datasets``
would load these files too, but on a bad line it raises a bare ``DatasetGenerationError`` (the
row, counted from 0, is only in a logged pyarrow message), and it writes an Arrow copy of every
file into its cache.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from .errors import UserError


def jsonl_records(path: str | Path, error: type[UserError] = UserError) -> Iterator[tuple[str, dict]]:
    """``(where, record)`` for each non-blank line, ``where`` being ``"file:line"`` for messages
    about that record. A line that is not a JSON object raises ``error`` naming file and line."""
    path = Path(path)
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise error(f"{where}: not valid JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise error(f"{where}: expected a JSON object, got {type(obj).__name__}")
            yield where, obj
