"""The painters cache folder, and building an entry in it so that no reader sees half of one.

Why one module: model assembly, GGUF conversion and cached file hashes all write under the same
root (``$PAINTERS_CACHE``, else ``~/.cache/glue-painters``); keeping the root and the atomic-build
rule here lets both ``models`` and ``fingerprints`` use them without importing each other.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

CACHE_ENV = "PAINTERS_CACHE"


def cache_dir() -> Path:
    """Root of everything the cache holds; read on every call so tests can point it elsewhere."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "glue-painters").expanduser()


def build_dir(target: Path, build: Callable[[Path], None]) -> Path:
    """Return ``target``, building it first if absent: built in a temp folder, then renamed.

    Why: a crash, or two processes building at once, must never leave a half-written folder that
    a later run would trust; a rename is atomic, so a reader sees the whole entry or none.
    """
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        build(tmp)
        try:
            os.rename(tmp, target)
        except OSError:  # another process renamed its copy first: theirs is as good as ours
            if not target.exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
