"""Sweep configs are YAML: one reader for both tracks, so a broken file is one line that says where.

PyYAML's own message spans several lines ("while parsing a block mapping ... expected <block end>,
but found ..."); a user needs the file, line and column of the problem and what it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import UserError


def read_yaml(path: str | Path) -> Any:
    """The parsed document, or a ``UserError`` ``FILE:LINE:COLUMN: not valid YAML: PROBLEM``."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file {path} not found")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UserError(f"{where}: not valid YAML: {problem}") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
