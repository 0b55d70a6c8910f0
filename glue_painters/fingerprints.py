"""Content hashes used as identity: the one place that decides what "the same file" or "the same
weights" means for a results key.

Why one module: a record is found again only if its key is computed the same way every time, so
each kind of hash has exactly one implementation here, and ``tests/test_fingerprints.py`` pins its
value on a fixed file, folder and tiny model. Changing any byte these functions hash orphans every
record written before: don't, unless that is the point.

Files
    ``sha256_file``   full sha256 hex of a file, streamed (any size, constant memory).
    ``file_sha256``   the same value, remembered in the cache while the file's size and mtime hold
                      (hashing a 1 GB GGUF takes seconds and every sweep step asks).
    ``file_sha16``    its first 16 hex: what data records key by (the decoder track's
                      ``Docs.fingerprint``, the GLUE track's per-split data hashes, the heal corpus).
    ``folder_fingerprint``  ``sha256:<hex>`` over a HF model folder's defining files
                      (``ModelSource.fingerprint`` of a local folder or folder alias).

In-memory models (no file to hash: built in tests, or loaded some other way)
    The two tracks have always hashed state dicts differently, so both computations stay, each
    feeding its own track's existing keys:
    ``tensors_fingerprint``  16 hex over names, dtypes, shapes and bytes: GLUE records'
                      ``model_fingerprint`` (the base model's weights, whatever name loaded them).
    ``config_weights_fingerprint``  ``weights:<16 hex>`` over the config JSON, names and bytes: the
                      decoder track's record key ``model`` when the model did not come from
                      ``glue_painters.models.load_model`` (else the file fingerprint is used).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from .cachedir import cache_dir
from .results import atomic_write_json

_BLOCK = 16 << 20  # read size only: it never changes a digest


# ---- files ---------------------------------------------------------------------------------------
def sha256_file(path: str | Path) -> str:
    """Full sha256 hex of a file's bytes, read in blocks so a multi-GB file costs no memory."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha16(path: str | Path) -> str:
    """First 16 hex of the file's sha256: the short form data-file keys use (uncached: data files
    are small, and an edit within one mtime tick must still change the key)."""
    return sha256_file(path)[:16]


def file_sha256(path: str | Path) -> str:
    """sha256 of a file, computed once and then reused while its size and mtime are unchanged.

    Why cached: hashing a 1 GB GGUF takes seconds and every sweep step asks for the fingerprint.
    The record lives in ``<cache>/fingerprints/<hash of the path>.json``; a read-only cache only
    costs the re-hash next time.
    """
    path = Path(path).resolve()
    st = path.stat()
    record = cache_dir() / "fingerprints" / (hashlib.sha256(str(path).encode()).hexdigest()[:24] + ".json")
    try:
        known = json.loads(record.read_text())
        if (known["path"], known["size"], known["mtime_ns"]) == (str(path), st.st_size, st.st_mtime_ns):
            return known["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    digest = sha256_file(path)
    try:
        atomic_write_json(record, {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                                   "sha256": digest})
    except OSError:
        pass
    return digest


_NOT_MODEL_FILES = re.compile(r"(?i)^(readme.*|.*\.md|license.*|notice.*|\.gitattributes|desktop\.ini)$")


def folder_fingerprint(folder: str | Path) -> str:
    """sha256 over the top-level files that define a HF folder (config, tokenizer, weights).

    Subfolders (sentence-transformers pooling, Trainer checkpoints) and docs are left out: they do
    not change what ``from_pretrained`` loads.
    """
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.is_file() and not _NOT_MODEL_FILES.match(p.name))
    lines = "".join(f"{p.name} {file_sha256(p)}\n" for p in files)
    return "sha256:" + hashlib.sha256(lines.encode()).hexdigest()


# ---- in-memory models ----------------------------------------------------------------------------
def _tensor_bytes(tensor) -> bytes:
    """A tensor's raw bytes, on CPU and contiguous, whatever its dtype (bool and float16 included)."""
    import torch

    return tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def tensors_fingerprint(module) -> str:
    """sha256 (16 hex) of ``module.state_dict()``: each tensor's ``name:dtype:shape`` then bytes.

    The GLUE track's ``model_fingerprint`` key (callers hash the base model with no plan on, so a
    fresh head or a rewiring does not change it). Dtype and shape are hashed so that the same bytes
    read as another type are another model.
    """
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(_tensor_bytes(t))
    return h.hexdigest()[:16]


def config_weights_fingerprint(model) -> str:
    """``weights:`` + sha256 (16 hex) of the full config JSON, then each tensor's name and bytes.

    The decoder track's record key ``model`` for a model that ``load_model`` did not load (see
    ``decoder_eval.sweep.model_fingerprint``); the config is part of it because two configs (e.g.
    another rope scaling) over the same tensors score differently.
    """
    h = hashlib.sha256(model.config.to_json_string(use_diff=False).encode())
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(_tensor_bytes(tensor))
    return "weights:" + h.hexdigest()[:16]


__all__ = ["config_weights_fingerprint", "file_sha16", "file_sha256", "folder_fingerprint", "sha256_file",
           "tensors_fingerprint"]
