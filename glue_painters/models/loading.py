"""``load_model``: a name to a ready ``(model, tokenizer)`` the normal transformers way, and
``source_of``: which weights a loaded model came from.

Why a thin layer over ``from_pretrained``: every experiment wants the same defaults (float32, eval
mode, a pad token for batching, BOS where the model was trained with it) and its failures told as
one line; a GGUF is read from its converted safetensors folder instead of being dequantized again.
"""

from __future__ import annotations

import dataclasses
import logging
import weakref
from pathlib import Path
from typing import Any

from ..errors import UserError
from .aliases import ALIASES, Alias, did_you_mean
from .gguf import converted_folder
from .hub import hub_unavailable, in_hf_cache
from .sources import ModelSource, resolve_model

log = logging.getLogger(__name__)

KINDS = ("causal-lm", "encoder", "sequence-classification")


def _torch_dtype(dtype: Any):
    """float32 unless asked: the default that makes rewired-vs-full comparisons exact on any device."""
    import torch

    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype) or dtype == "auto":
        return dtype
    value = getattr(torch, str(dtype).removeprefix("torch."), None)
    if not isinstance(value, torch.dtype):
        raise UserError(f"unknown dtype '{dtype}' (use float32, bfloat16, float16 or auto)")
    return value


_AUTO_CLASSES = {"causal-lm": "AutoModelForCausalLM", "encoder": "AutoModel",
                 "sequence-classification": "AutoModelForSequenceClassification"}


def _check_kind(kind: str) -> str:
    """The Auto class name for a kind; checked before anything is imported or resolved."""
    if kind not in _AUTO_CLASSES:
        raise UserError(f"unknown model kind '{kind}' (use {', '.join(KINDS)})")
    return _AUTO_CLASSES[kind]


def _auto_class(kind: str):
    import transformers

    return getattr(transformers, _check_kind(kind))


def _not_found_hint(src: ModelSource) -> str:
    return (f" ('{src.name}' is not a local path or an alias ({', '.join(ALIASES)}); loading it "
            f"needs the hub or its local cache){did_you_mean(src.name)}")


def hub_options(src: ModelSource) -> dict[str, Any]:
    """Extra ``from_pretrained`` options for a hub source when the hub cannot be reached.

    Called before transformers is imported, so an unknown name on an offline machine fails in a
    second or two instead of after the hub client's 25-49 s of retries: a hub id that the local
    Hugging Face cache does not hold is a ``UserError`` at once; one it holds loads from there
    (``local_files_only``). With a reachable hub (or a local source) nothing changes."""
    if src.source != "hub":
        return {}
    why = hub_unavailable()
    if why is None:
        return {}
    if not in_hf_cache(src.path, src.revision):
        raise UserError(f"could not load model '{src.name}': the hub cannot be reached ({why}) and the "
                        f"local Hugging Face cache does not hold it" + _not_found_hint(src))
    return {"local_files_only": True}


def load_pretrained(cls, where: str, src: ModelSource, **kwargs):
    """``cls.from_pretrained`` with its failures told as one user-facing line."""
    try:
        return cls.from_pretrained(where, **{**hub_options(src), **kwargs})
    except (OSError, ValueError) as err:
        hint = _not_found_hint(src) if src.source == "hub" else ""
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"could not load model '{src.name}' with {cls.__name__}: {first_line}{hint}") from err


def _prepare_tokenizer(tokenizer, alias: Alias | None):
    """Pad = eos when the tokenizer has no pad token (decoders rarely do, and batching needs one);
    and, for models trained with BOS (Gemma), make sure the tokenizer adds it."""
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    if alias is not None and alias.add_bos and not _adds_bos(tokenizer):
        tokenizer.add_bos_token = True
        if not _adds_bos(tokenizer):
            log.warning("model '%s': tokenizer does not add BOS; prepend %s yourself", alias.name,
                        tokenizer.bos_token)
    return tokenizer


def _adds_bos(tokenizer) -> bool:
    ids = tokenizer("a")["input_ids"]
    return bool(ids) and tokenizer.bos_token_id is not None and ids[0] == tokenizer.bos_token_id


def _with_loaded_commit(src: ModelSource, model) -> ModelSource:
    commit = getattr(model.config, "_commit_hash", None)
    if src.source == "hub" and commit:
        return dataclasses.replace(src, fingerprint=f"hub:{src.path}@{commit}")
    return src


def load_model(name_or_path: str | Path, kind: str = "causal-lm", num_labels: int | None = None,
               dtype: Any = None, device: Any = None, trust_remote_code: bool = False,
               revision: str | None = None):
    """Load ``(model, tokenizer)`` for an alias, a local folder or .gguf, or a hub id; in eval mode.

    kind: "causal-lm" (AutoModelForCausalLM), "encoder" (AutoModel: the bare body) or
    "sequence-classification" (AutoModelForSequenceClassification; a model without such a head,
    like the embedded encoders, gets a freshly initialised one with ``num_labels`` outputs).
    dtype: float32 by default (a string such as "bfloat16", a torch dtype, or "auto").
    The tokenizer gets pad = eos when it has no pad token, and ``model.config.pad_token_id`` is
    set to match (sequence classification on a decoder finds the last token through it).
    ``source_of(model)`` gives the ``ModelSource`` it came from (its fingerprint is for results keys).
    Safety: code from the checkpoint runs only with ``trust_remote_code=True``; transformers
    prefers safetensors and reads any pickle checkpoint with ``weights_only=True``.
    """
    _check_kind(kind)
    src = resolve_model(name_or_path, revision=revision)
    hub_options(src)  # an unreachable hub fails here, before transformers is imported
    cls = _auto_class(kind)
    alias = ALIASES.get(src.alias or "")
    if alias is not None and alias.kind == "encoder" and kind == "causal-lm":
        raise UserError(f"model '{alias.name}' is an encoder: load it as 'encoder' or 'sequence-classification'")
    where = str(converted_folder(src)) if src.gguf_file else src.path
    opts: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if src.source == "hub" and revision:
        opts["revision"] = revision
    from transformers import AutoTokenizer

    tokenizer = _prepare_tokenizer(load_pretrained(AutoTokenizer, where, src, **opts), alias)
    extra = {"num_labels": num_labels, "ignore_mismatched_sizes": True} if num_labels is not None else {}
    model = load_pretrained(cls, where, src, dtype=_torch_dtype(dtype), **opts, **extra)
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if device is not None:
        model.to(device)
    model.eval()
    _SOURCES[model] = _with_loaded_commit(src, model)
    return model, tokenizer


# Where each loaded model came from, kept beside the model rather than on it: HF modules get no
# attributes of ours. Weak keys, so a dropped model is forgotten.
_SOURCES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def source_of(model) -> ModelSource:
    """The ``ModelSource`` a model returned by ``load_model`` was loaded from."""
    try:
        return _SOURCES[model]
    except KeyError:
        raise UserError(f"{type(model).__name__} was not loaded with glue_painters.models.load_model") from None
