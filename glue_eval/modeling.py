"""Loading models for the GLUE track, identifying their weights, and the probe's pooling policy.

Models come from ``glue_painters.models.load_model`` (aliases ``minilm``, ``mpnet``, hub ids, local
folders). A results key needs to know *which weights* ran, whatever name the user gave them, so
``weights_fingerprint`` hashes the base model's tensors (names, dtypes, shapes and bytes): two
names for the same weights share records, and changed weights never reuse a stale one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from glue_painters.errors import UserError
from glue_painters.sweep import model_fingerprint

POOLINGS = ("auto", "pooler", "mean", "cls")


def load(name: str, kind: str, num_labels: int | None = None):
    """``(model, tokenizer)`` from ``glue_painters.models.load_model``."""
    from glue_painters.models import load_model

    kwargs = {"kind": kind}
    if num_labels is not None:
        kwargs["num_labels"] = num_labels
    return load_model(name, **kwargs)


_FINGERPRINTS: dict[int, str] = {}


def weights_fingerprint(model: torch.nn.Module) -> str:
    """sha256 (16 hex) of the base model's state dict, taken without any plan on: the library's
    ``model_fingerprint`` under the scheme GLUE records are keyed by."""
    return model_fingerprint(model, "tensors")


def _model_folder(model) -> Path | None:
    name = getattr(model, "name_or_path", None) or getattr(getattr(model, "config", None), "_name_or_path", "")
    if name and Path(name).is_dir():
        return Path(name)
    if name:
        try:  # a hub id already in the local cache (never downloads)
            from huggingface_hub import snapshot_download
            return Path(snapshot_download(name, local_files_only=True))
        except Exception:  # noqa: BLE001 - not cached: the folder is unknown
            return None
    return None


def _checkpoint_has_pooler(folder: Path) -> bool:
    from safetensors import safe_open
    files = sorted(folder.glob("*.safetensors"))
    for f in files:
        with safe_open(str(f), "pt") as st:
            if any(k.endswith("pooler.dense.weight") for k in st.keys()):
                return True
    index = folder / "pytorch_model.bin.index.json"
    if index.exists():
        return any(k.endswith("pooler.dense.weight") for k in json.loads(index.read_text())["weight_map"])
    return False


def choose_pooling(model, requested: str = "auto") -> tuple[str, str]:
    """The probe's pooling and why. Policy for ``auto`` (the default):

    1. the pooling the weights were trained with, when the checkpoint says so: a
       sentence-transformers folder's ``1_Pooling/config.json`` (MiniLM and MPNet here: mean);
    2. else the model's own pooler (dense + tanh on [CLS]) when the checkpoint has pretrained
       weights for it (BERT, RoBERTa: trained with next-sentence prediction);
    3. else the mean of the last hidden state over real tokens.

    Never a freshly initialised pooler: in a frozen body that is a random projection the head
    would have to undo. Never a [CLS] vector the model was not trained to fill.
    """
    if requested not in POOLINGS:
        raise UserError(f"unknown pooling '{requested}'; choose one of {', '.join(POOLINGS)}")
    has_pooler_module = getattr(model, "pooler", None) is not None
    if requested == "pooler" and not has_pooler_module:
        raise UserError(f"{type(model).__name__} has no pooler; use pooling mean or cls")
    if requested != "auto":
        return requested, "requested"
    folder = _model_folder(model)
    if folder is not None:
        st = folder / "1_Pooling" / "config.json"
        if st.exists():
            cfg = json.loads(st.read_text())
            if cfg.get("pooling_mode_mean_tokens"):
                return "mean", "sentence-transformers pooling config (mean)"
            if cfg.get("pooling_mode_cls_token"):
                return "cls", "sentence-transformers pooling config (cls)"
        if has_pooler_module and _checkpoint_has_pooler(folder):
            return "pooler", "pretrained pooler weights in the checkpoint"
    return "mean", "no pretrained pooler found"


def pool(outputs, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    if pooling == "pooler":
        return outputs.pooler_output
    hidden = outputs.last_hidden_state
    if pooling == "cls":
        return hidden[:, 0]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)


def default_device() -> torch.device:
    if os.environ.get("PAINTERS_DEVICE"):
        return torch.device(os.environ["PAINTERS_DEVICE"])
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
