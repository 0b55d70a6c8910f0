"""The results store shared by both tracks: one JSON file per record, written atomically.

Why one file per record rather than one JSON Lines file: a rename is atomic on every POSIX file
system, so a crash (or a kill at any instant) leaves either a whole record or none, several
processes (``accelerate launch`` ranks, a sweep restarted while another runs) can write at once
without locks, and "is this done?" is one ``stat``. A record's file name is the hash of
everything that determines it (its *key*), so a changed input never reuses a stale record.

Layout: ``<root>/<track>/<key[:2]>/<key>.json``. The key fields are chosen by the caller (model +
its file hash, plan hash, task, subset, seed, healed, code version ...); ``record_key`` hashes
them canonically.

Sweeps run by several processes (``accelerate launch``, torchrun) share their pending work with
``share_work`` (the same split, computed by every process alone) and find their rank with
``process_state``; each record then has exactly one writer.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

DEFAULT_ROOT = Path(os.environ.get("PAINTERS_RESULTS", "results"))


def record_key(fields: dict[str, Any]) -> str:
    """sha256 (first 20 hex) of the key fields as canonical JSON (sorted keys, no spaces)."""
    blob = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder and an atomic rename.

    The temporary name carries the pid and a random part (``mkstemp`` creates it exclusively), so
    processes writing into one folder at once never share a temporary file. The file gets the mode
    an ordinary ``open`` would give it (0666 less the umask), not mkstemp's 0600."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """``atomic_write_text`` for bytes (a Parquet table, an image)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a shared store must be readable as umask allows
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _umask() -> int:
    """The process umask (reading it means setting it; it is put back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=True, default=str) + "\n")


class ResultsStore:
    """``store.put(track, key_fields, record)``, ``store.has(...)``, ``store.records(track)``."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else DEFAULT_ROOT

    def path(self, track: str, key: str) -> Path:
        return self.root / track / key[:2] / f"{key}.json"

    def has(self, track: str, key_fields: dict) -> bool:
        return self.get(track, key_fields) is not None

    def get(self, track: str, key_fields: dict) -> dict | None:
        """The record, or None when there is none *or it is damaged* (then the caller recomputes it
        and ``put`` replaces the file atomically; the damage is reported on stderr, once)."""
        return self._read(self.path(track, record_key(key_fields)))

    def put(self, track: str, key_fields: dict, record: dict) -> Path:
        """Write one record (its key fields are stored inside it under ``"key"``)."""
        key = record_key(key_fields)
        body = dict(record, key=key_fields, key_hash=key, track=track)
        path = self.path(track, key)
        atomic_write_json(path, body)
        return path

    def records(self, track: str | None = None, **match) -> Iterator[dict]:
        """Every whole record of a track (or all tracks) whose key fields equal ``match``; a damaged
        file is named on stderr and left out, so a summary or report of the rest still runs."""
        tracks = [track] if track else sorted(p.name for p in self.root.iterdir() if p.is_dir()) if self.root.exists() else []
        for t in tracks:
            for p in sorted((self.root / t).glob("*/*.json")):
                rec = self._read(p)
                if rec is not None and all(rec.get("key", {}).get(k) == v for k, v in match.items()):
                    yield rec

    def _read(self, path: Path) -> dict | None:
        """A record file as a dict; None if missing. Records are written whole by a rename, so a
        damaged one came from outside (a disk filled up, a copy cut short, a hand edit)."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            rec = json.loads(text)
            if isinstance(rec, dict) and path.stem == rec.get("key_hash", path.stem):
                return rec
            problem = "not a record of this store (its key_hash does not match its name)"
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            problem = f"not valid JSON ({getattr(e, 'msg', e)})"
        if path not in _WARNED:
            _WARNED.add(path)
            print(f"warning: {path}: damaged record, {problem}; it is ignored and a sweep recomputes it",
                  file=sys.stderr)
        return None

    def clean_stale(self, max_age_hours: float = 24.0) -> int:
        """Remove temporary files a killed writer left (``.<name>.<pid>.<random>.tmp``): those of a
        process no longer alive on this machine, or older than ``max_age_hours`` (a store shared
        between machines, where another machine's pid means nothing here). Returns the count."""
        removed = 0
        if not self.root.is_dir():
            return 0
        now = time.time()
        for folder in self.root.glob("*/.progress/*"):  # a task pass's finished batches (decoder_eval.progress)
            newest = max((f.stat().st_mtime for f in folder.iterdir()), default=folder.stat().st_mtime)
            if now - newest > PROGRESS_DAYS * 86400:  # an abandoned pass: the sweep changed before it resumed
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        for p in [*self.root.glob("*/*/.*.tmp"), *self.root.glob("*/.progress/*/.*.tmp")]:
            m = _TMP_NAME.match(p.name)
            try:
                stale = now - p.stat().st_mtime > max_age_hours * 3600 or (m and not _alive(int(m.group(1))))
                if stale:
                    p.unlink()
                    removed += 1
            except FileNotFoundError:  # its writer renamed it or another cleaner got there first
                pass
        return removed


PROGRESS_DAYS = 7
_WARNED: set[Path] = set()
_TMP_NAME = re.compile(r"^\..+?\.(\d+)\.[^.]+\.tmp$")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True
