"""GGUF files: reading their header fast, and dequantizing them once into a safetensors folder.

Why convert: transformers dequantizes a GGUF on every load (slow: ~40 s for SmolLM2, mostly GGUF
parsing). Doing it once and saving a plain safetensors folder in ``<cache>/converted/`` (keyed by
the GGUF's content hash) makes every later load, of any kind, take well under a second and give
bit-identical logits.
"""

from __future__ import annotations

import json
import logging
import re
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..cachedir import build_dir, cache_dir, entry_problem
from ..errors import UserError
from ..results import atomic_write_json

if TYPE_CHECKING:
    from .sources import ModelSource

log = logging.getLogger(__name__)


# ---- the header ----------------------------------------------------------------------------------
_GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


def _gguf_value(f, vtype: int):
    if vtype == 8:  # string: u64 length + utf-8 bytes
        (n,) = struct.unpack("<Q", f.read(8))
        return f.read(n).decode("utf-8", "replace")
    if vtype == 9:  # array: u32 element type, u64 count, elements
        etype, count = struct.unpack("<IQ", f.read(12))
        return [_gguf_value(f, etype) for _ in range(count)]
    fmt = _GGUF_SCALARS[vtype]
    return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]


def gguf_metadata(path: str | Path, wanted: tuple[str, ...] = ()) -> dict[str, Any]:
    """Key/value header of a GGUF file, stopping once every ``wanted`` key has been read.

    Why not ``gguf.GGUFReader`` or ``AutoConfig``: they parse the whole header, including the
    tokenizer's 50k-262k strings (6-40 s); the model's shape keys come first, so this takes ms.
    """
    meta: dict[str, Any] = {}
    with open(path, "rb") as f:
        magic, version, _tensors, kv_count = struct.unpack("<4sIQQ", f.read(24))
        if magic != b"GGUF" or version < 2:
            raise UserError(f"{path} is not a GGUF v2+ file")
        for _ in range(kv_count):
            (n,) = struct.unpack("<Q", f.read(8))
            key = f.read(n).decode("utf-8", "replace")
            (vtype,) = struct.unpack("<I", f.read(4))
            meta[key] = _gguf_value(f, vtype)
            if wanted and all(k in meta for k in wanted):
                break
    return meta


# ---- GGUF -> safetensors, once -------------------------------------------------------------------
def _dequantize_gguf(folder: str, gguf_file: str):
    """The slow step: transformers reads and dequantizes the GGUF (float32)."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file).eval()


def _clear_quantizer(model) -> None:
    """Drop the GGUF quantizer markers so ``save_pretrained`` accepts the (already float) model.

    The weights are plain dequantized tensors; only these flags make transformers treat the model
    as quantized (and refuse to save it, or to cast it with ``.float()``/``.half()``).
    """
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    if getattr(model.config, "_is_quantized", False):
        model.config._is_quantized = False
    if getattr(model, "is_quantized", False):
        model.is_quantized = False


def _convert_gguf(src: ModelSource, out: Path) -> None:
    from transformers import AutoTokenizer

    log.warning("model '%s': dequantizing %s once into %s (about a minute; later loads take seconds)",
                src.name, src.gguf_file, cache_dir() / "converted")
    tokenizer = AutoTokenizer.from_pretrained(src.path, gguf_file=src.gguf_file)
    model = _dequantize_gguf(src.path, src.gguf_file)
    _clear_quantizer(model)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    atomic_write_json(out / "painters_source.json", {"gguf": str(src.gguf_path), "fingerprint": src.fingerprint})


def converted_dir(src: ModelSource) -> Path:
    """Where the converted folder of a GGUF source is (or would be): named by its content hash."""
    stem = re.sub(r"[^\w.-]+", "_", src.alias or Path(src.gguf_file).stem)
    return cache_dir() / "converted" / f"{stem}-{src.fingerprint.split(':')[-1][:16]}"


def _safetensors_problem(path: Path) -> str | None:
    """Whether a safetensors file is whole: its header says where the last tensor ends, and the
    file must end there. Reads the header only (a few kB), so it costs nothing on a load."""
    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > 100 << 20:  # no real header is that long: the file is not safetensors
                raise ValueError(n)
            header = json.loads(f.read(n))
        end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    except (OSError, struct.error, ValueError, KeyError, TypeError, IndexError):
        return f"{path.name} has no readable safetensors header"
    size = path.stat().st_size
    return None if size == 8 + n + end else f"{path.name} has {size} bytes, its header says {8 + n + end}"


def _unmarked_problem(folder: Path) -> str | None:
    """Judge a converted folder written before completion markers: ``painters_source.json`` was
    always its last file, and every weights file must be as long as its header says."""
    for needed in ("painters_source.json", "config.json"):
        if not (folder / needed).is_file():
            return f"{needed} is missing"
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text())["weight_map"].values())
        except (ValueError, KeyError, AttributeError):
            return f"{index.name} is damaged"
        missing = sorted(s for s in shards if not (folder / s).is_file())
        if missing:
            return f"{missing[0]} is missing"
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        return "it holds no .safetensors file"
    return next((p for p in map(_safetensors_problem, weights) if p), None)


def converted_ready(src: ModelSource) -> bool:
    """The converted folder exists and is whole (for readers that must not build it)."""
    folder = converted_dir(src)
    return folder.exists() and entry_problem(folder, _unmarked_problem) is None


def converted_folder(src: ModelSource) -> Path:
    """The safetensors folder for a GGUF source, converting it on first use, or again if damaged.

    Keyed by the GGUF's content hash, so a changed file is converted again and the same file in
    two places is converted once.
    """
    return build_dir(converted_dir(src), lambda tmp: _convert_gguf(src, tmp), check=_unmarked_problem)
