"""Output checks made before any expensive work, defined once.

Why check outputs up front: a sweep or an export that learns its output folder is a file only
after loading a model and running a task pass wastes minutes and leaves a traceback. Each check
here is one line naming the flag, the path and the problem (a ``UserError``: exit code 2), made
before any expensive work. Library code (a one-run fine-tune's output folder) and every command
use these.
"""


from __future__ import annotations

import os
from pathlib import Path

from .errors import UserError


def _existing_ancestor(path: Path) -> Path:
    for parent in [path, *path.parents]:
        if parent.exists():
            return parent
    return Path(".")


def _check_writable_under(path: Path, flag: str) -> None:
    """The nearest existing folder above ``path`` must be a folder we may write in (an existing
    ``path`` itself is checked by the caller: a file to overwrite, or a folder to write into)."""
    anchor = _existing_ancestor(path.parent)
    if not anchor.is_dir():
        raise UserError(f"{flag} {path}: {anchor} is a file, not a folder")
    if not os.access(anchor, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {path}: {anchor} is not writable")


def reports_dir() -> Path:
    """The default folder of everything a command writes besides the results store (reports,
    similarity heatmaps, search scores and verdicts): ``$PAINTERS_REPORTS``, else ``reports/``
    inside the results root (``$PAINTERS_RESULTS``, else ``./results``).

    Why not ``./reports``: in a checkout that folder holds the reports the repository ships, so the
    README's first command rewrote a tracked file and ``painters report`` would have overwritten the
    shipped report. The results root is where the workbench's own output already goes (and is
    ignored by git), so a fresh clone stays clean; ``--out`` still writes anywhere."""
    env = os.environ.get("PAINTERS_REPORTS")
    return Path(env) if env else Path(os.environ.get("PAINTERS_RESULTS") or "results") / "reports"


def output_file(path: str | os.PathLike, flag: str) -> Path:
    """A file the command will write (a report): not a folder, under a writable folder."""
    p = Path(path)
    if p.is_dir():
        raise UserError(f"{flag} {p} is a folder; give a file such as {p / 'report.md'}")
    _check_writable_under(p, flag)
    if p.exists() and not os.access(p, os.W_OK):
        raise UserError(f"{flag} {p} is not writable")
    return p


def output_folder(path: str | os.PathLike, flag: str, *, empty: bool = False) -> Path:
    """A folder the command will write into (a results store, an export): not a file, under a
    writable folder, and (``empty``) new or empty so nothing of an earlier run is mixed in."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UserError(f"{flag} {p} is a file, not a folder")
    _check_writable_under(p, flag)
    if p.is_dir() and not os.access(p, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {p} is not writable")
    if empty and p.is_dir() and any(p.iterdir()):
        raise UserError(f"{flag} {p} exists and is not empty")
    return p
