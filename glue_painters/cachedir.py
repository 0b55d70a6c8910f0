"""The painters cache folder, and building an entry in it so that no reader trusts half of one.

Why one module: model assembly, GGUF conversion and cached file hashes all write under the same
root (``$PAINTERS_CACHE``, else ``~/.cache/glue-painters``); keeping the root and the build rules
here lets both ``models`` and ``fingerprints`` use them without importing each other.

The rules (``build_dir``):

- an entry is built in a temporary folder ``.<name>.build.<pid>.<host>.<random>`` next to it and
  renamed into place, so a crash or two processes building at once never leave a half-written entry
  under the real name;
- the last file written into it is a completion marker listing every file's size; an entry whose
  files no longer match (a disk that filled up, a copy cut short, an older version killed while
  writing) is noticed on the next use, removed and rebuilt, with a warning naming the folder;
- its folder and files get the modes the umask gives (not mkdtemp's or safetensors' private 0700/
  0600), so a cache shared between users is readable;
- temporary folders that a killed builder left (up to a converted model's size) are removed on the
  first model resolve or build of a process: those of a dead process on this machine, or, for
  another machine's or an older version's, those untouched for a day. A live builder's folder is
  never touched.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import socket
import time
from pathlib import Path
from typing import Callable

from .errors import UserError
from .results import _alive as pid_alive, _umask

CACHE_ENV = "PAINTERS_CACHE"
MARKER = ".painters-complete.json"
STALE_HOURS = 24.0

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """Root of everything the cache holds; read on every call so tests can point it elsewhere."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "glue-painters").expanduser()


# ---- completion marker -------------------------------------------------------------------------
def _file_sizes(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_size
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MARKER}


def write_marker(folder: Path) -> None:
    """Record every file's size, last: its presence says the build finished. Sizes, not hashes,
    because checking them costs one ``stat`` per file on every load and catches truncation."""
    (folder / MARKER).write_text(json.dumps({"files": _file_sizes(folder)}, indent=1, sort_keys=True))


def entry_problem(target: Path, check: Callable[[Path], str | None] | None = None) -> str | None:
    """Why the cache entry ``target`` cannot be trusted, or None when it can.

    With a marker: every listed file must be there with its size. Without one (an entry built by an
    older version, which wrote no marker): ``check`` decides, if given; otherwise it is trusted, as
    it was before."""
    if not target.is_dir():
        return "it is not a folder" if target.exists() else "it is missing"
    try:
        listed = json.loads((target / MARKER).read_text())["files"]
    except FileNotFoundError:
        return check(target) if check is not None else None
    except (ValueError, KeyError, TypeError):
        return f"its {MARKER} is damaged"
    for name, size in listed.items():
        p = target / name
        if not p.is_file():
            return f"{name} is missing"
        if p.stat().st_size != size:
            return f"{name} has {p.stat().st_size} bytes, {size} were written"
    return None


# ---- temporary build folders ---------------------------------------------------------------------
_HOST = re.sub(r"[^\w-]", "-", socket.gethostname()) or "host"
_BUILD_NAME = re.compile(r"^\..+\.build\.(\d+)\.([\w-]+)\.[0-9a-f]+$")
_TMP_FILE = re.compile(r"^\..+?\.(\d+)\.[^.]+\.tmp$")  # results.atomic_write_*'s temporary files


def _temp_name(target: Path) -> Path:
    return target.parent / f".{target.name}.build.{os.getpid()}.{_HOST}.{secrets.token_hex(4)}"


def _newest_mtime(path: Path) -> float:
    """Of a folder and everything in it: a builder writing one big file changes only that file."""
    times = [path.lstat().st_mtime] + [p.lstat().st_mtime for p in path.rglob("*")]
    return max(times)


def _is_stale(path: Path, now: float, max_age_hours: float) -> bool:
    """A leftover of a dead builder on this machine, or one untouched for ``max_age_hours`` (another
    machine's, whose pid means nothing here; an older version's, whose name has no pid; a pid reused)."""
    is_dir = path.is_dir()
    m = (_BUILD_NAME if is_dir else _TMP_FILE).match(path.name)
    if m is None and not is_dir:
        return False  # not a file we write
    if m is not None and (not is_dir or m.group(2) == _HOST) and not pid_alive(int(m.group(1))):
        return True
    return now - _newest_mtime(path) > max_age_hours * 3600


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()


def clean_stale(root: Path | None = None, max_age_hours: float = STALE_HOURS) -> int:
    """Remove what killed builders left in the cache's folders (``converted/``, ``assembled/``,
    ``fingerprints/``): temporary build folders and ``.tmp`` files. Returns how many went."""
    root = cache_dir() if root is None else root
    removed, now = 0, time.time()
    for sub in (p for p in root.glob("*") if p.is_dir()):
        for p in sub.glob(".*"):
            try:
                if not _is_stale(p, now, max_age_hours):
                    continue
                _remove(p)
                removed += 1
            except OSError:  # its builder renamed it, another cleaner got there first, or not ours to delete
                pass
    if removed:
        log.warning("removed %d leftover(s) of killed cache builds under %s", removed, root)
    return removed


_CLEANED: set[Path] = set()


def clean_stale_once() -> None:
    """``clean_stale`` on the first call of a process (per cache root): what every start runs."""
    root = cache_dir()
    if root not in _CLEANED:
        _CLEANED.add(root)
        clean_stale(root)


# ---- building an entry -----------------------------------------------------------------------------
def _discard(target: Path, problem: str) -> None:
    """Move a damaged entry out of the way (a rename, so no reader sees it half-deleted) and delete it."""
    log.warning("cache folder %s is damaged (%s): rebuilding it", target, problem)
    aside = _temp_name(target)
    try:
        os.rename(target, aside)
    except FileNotFoundError:  # another process moved it first
        return
    except OSError as e:
        raise UserError(f"cache folder {target} is damaged ({problem}) and cannot be moved ({e.strerror}): "
                        f"delete it and run again") from None
    _remove(aside)


def _readable(folder: Path) -> None:
    """Give every file the mode an ordinary ``open`` would (0666 less the umask): some writers
    (safetensors) make 0600 files, which a cache shared between users could not read."""
    mode = 0o666 & ~_umask()
    for p in folder.rglob("*"):
        if p.is_file() and not p.is_symlink():
            os.chmod(p, mode)


def build_dir(target: Path, build: Callable[[Path], None],
              check: Callable[[Path], str | None] | None = None) -> Path:
    """Return ``target``, building it first if it is absent or damaged (see the module docstring).

    ``check(folder)`` judges an entry that has no completion marker (built by an older version):
    a message saying what is wrong, or None."""
    clean_stale_once()
    if target.exists():
        problem = entry_problem(target, check)
        if problem is None:
            return target
        _discard(target, problem)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(target)
    tmp.mkdir()  # not mkdtemp: the entry gets the mode the umask gives, like any other folder
    try:
        build(tmp)
        _readable(tmp)
        write_marker(tmp)
        try:
            os.rename(tmp, target)
        except OSError:  # another process renamed its copy first: theirs is as good as ours
            if not target.exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
