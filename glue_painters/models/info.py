"""What a model is without loading it: its shape (``model_info``) and its kind (``model_kind``).

Why: ``painters models --info`` and commands that pick the Auto class for the user must answer in
milliseconds, so this reads only a config or a GGUF header, never the weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .aliases import ALIASES
from .gguf import converted_dir, converted_ready, gguf_metadata
from .loading import hub_options, load_pretrained
from .sources import ModelSource, resolve_model


def _shape(src: ModelSource) -> tuple[str, int, int]:
    """(architecture, layers, hidden size) from the config, or from the GGUF header if unconverted."""
    if src.gguf_file and not converted_ready(src):
        arch = gguf_metadata(src.gguf_path, ("general.architecture",))["general.architecture"]
        keys = (f"{arch}.block_count", f"{arch}.embedding_length")
        meta = gguf_metadata(src.gguf_path, keys)
        return arch, int(meta[keys[0]]), int(meta[keys[1]])
    hub_options(src)  # an unreachable hub fails here, before transformers is imported
    from transformers import AutoConfig

    where = str(converted_dir(src)) if src.gguf_file else src.path
    config = load_pretrained(AutoConfig, where, src, revision=src.revision)
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    return config.model_type, text.num_hidden_layers, text.hidden_size


def model_info(name_or_path: str | Path) -> dict[str, Any]:
    """What ``painters models`` shows: architecture (model_type), depth and width, fingerprint.

    Reads only the config or the GGUF header, never the weights. An unconverted GGUF reports its
    GGUF architecture name (e.g. "gemma3"; transformers' model_type after conversion is "gemma3_text").
    """
    src = resolve_model(name_or_path)
    arch, layers, hidden = _shape(src)
    alias = ALIASES.get(src.alias or "")
    converted = converted_dir(src) if src.gguf_file and converted_ready(src) else None
    return {
        "name": src.name,
        "alias": src.alias,
        "source": src.source,
        "path": str(src.gguf_path or src.path),
        "architecture": arch,
        "num_layers": layers,
        "hidden_size": hidden,
        "fingerprint": src.fingerprint,
        "weights": alias.weights if alias else None,  # the exact checkpoint and quantization (aliases.identity)
        "add_bos": alias.add_bos if alias else None,
        "converted": str(converted) if converted is not None else None,
    }


def model_kind(name_or_path: str | Path) -> str:
    """"causal-lm" or "encoder": what a model is for, so commands can load it without being told.

    An alias knows; otherwise the config's ``architectures`` (a ``*ForCausalLM`` class or a GGUF,
    which only holds decoders here) decide."""
    src = resolve_model(name_or_path)
    alias = ALIASES.get(src.alias or "")
    if alias is not None:
        return alias.kind
    if src.gguf_file:
        return "causal-lm"
    hub_options(src)  # as in _shape
    from transformers import AutoConfig

    config = load_pretrained(AutoConfig, src.path, src, revision=src.revision)
    archs = getattr(config, "architectures", None) or []
    return "causal-lm" if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs) else "encoder"
