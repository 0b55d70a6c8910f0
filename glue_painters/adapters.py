"""A healed LoRA adapter's folder: peft's files plus ``painters_heal.json``, which says what it heals.

Why a file of our own beside peft's: an adapter is only meaningful on the base model it was
trained on *and under the plan it was trained under* (it was trained on the inputs the plan's
layers see, not the full model's). peft's ``adapter_config.json`` knows neither: its
``base_model_name_or_path`` is whatever folder the weights were read from (for an alias, a cache
folder) and it has no notion of a plan. So the folder also records the base model as the user
named it, with its fingerprint (a later load can tell whether the weights are still the same),
the plan, and the healing settings (the results key of the healed records), and every later use
(``painters heal eval``, ``painters export --adapter``) reads it back from there.

What the adapter holds: LoRA on the linear modules of the layers the plan *runs* only
(``layers_to_transform``); a skipped layer never sees a token, so an adapter there would be
saved untrained and merged for nothing. The adapter's layer indices are the original model's, so
it loads onto the original model (``PeftModel.from_pretrained``) and the plan is applied on top;
``merge_adapter`` folds it into the weights, after which ``rewire.export_plan`` writes an ordinary,
shallower checkpoint of the healed model. A layer the plan runs twice has one adapter, used at
both positions, in training, in evaluation and in the merged export alike.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from .errors import UserError
from .plans import Plan
from .results import _alive, atomic_write_text
from .rewire import original_layers

HEAL_FILE = "painters_heal.json"
FORMAT = 1


def _linear_names(layer: nn.Module) -> set[str]:
    """The last name part of every linear module in a layer (what peft's "all-linear" picks)."""
    from transformers.pytorch_utils import Conv1D

    return {name.rpartition(".")[2] for name, m in layer.named_modules() if isinstance(m, (nn.Linear, Conv1D))}


def lora_targets(model: nn.Module, plan: Plan, target_modules: str = "all-linear") -> dict[str, Any]:
    """``LoraConfig`` fields that put adapters on the plan's executed layers only.

    peft refuses ``layers_to_transform`` with the string "all-linear", so that is spelled out as
    the linear modules of those layers; a comma-separated list of module names is taken as is."""
    layers = original_layers(model)
    used = sorted(plan.layers_used())
    if target_modules == "all-linear":
        names = set().union(*(_linear_names(layers[i]) for i in used))
    else:
        names = {t.strip() for t in target_modules.split(",") if t.strip()}
    list_name = next(n for n, m in model.named_modules() if m is layers).rpartition(".")[2]
    return {"target_modules": sorted(names), "layers_to_transform": used, "layers_pattern": list_name}


@dataclass(frozen=True)
class AdapterInfo:
    """What ``painters_heal.json`` records (see the module docstring)."""

    folder: Path
    base_model: str  # as the user named it: alias, hub id or path
    base_path: str | None  # the absolute folder/file, for a local path (the name may be relative)
    fingerprint: str
    spec: str  # the plan as given (skip:n=8 or plan text): rebuilds the same results key
    plan: str  # its plan text
    num_layers: int
    heal: dict  # the healing settings: the healed records' key field "heal"
    meta: dict  # the whole file

    @property
    def base_name_or_path(self) -> str:
        """The base model to load: the name, unless it is a relative path that no longer resolves."""
        if self.base_path and not Path(self.base_model).expanduser().exists():
            return self.base_path
        return self.base_model


def adapter_meta(*, base_model: str, source, fingerprint: str, spec: str, plan: Plan, num_layers: int,
                 heal: dict, **extra) -> dict:
    """The content of ``painters_heal.json``; ``source`` is the loader's ``ModelSource`` or None."""
    local = source is not None and source.source in ("path", "gguf")
    base_path = str(source.gguf_path or source.path) if local else None
    return {"format": FORMAT,
            "base_model": {"name": base_model, "source": getattr(source, "source", None), "path": base_path,
                           "fingerprint": fingerprint},
            "plan": {"spec": spec, "text": plan.text, "hash": plan.hash, "num_layers": num_layers,
                     "layers": sorted(plan.layers_used())},
            "heal": heal, **extra}


def save_adapter(peft_model, folder: str | os.PathLike, meta: dict) -> Path:
    """Write peft's adapter files and ``painters_heal.json`` into ``folder``, whole or not at all:
    they go to a sibling temporary folder that replaces ``folder`` at the end, so a kill leaves
    the previous adapter (or none), never one without its record."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    _clean_stale(folder)
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    base = meta["base_model"]
    for config in peft_model.peft_config.values():  # not the cache folder the weights came from
        config.base_model_name_or_path = base["path"] or base["name"]
    peft_model.save_pretrained(tmp, save_embedding_layers=False)  # none trained; "auto" asks the hub
    atomic_write_text(tmp / HEAL_FILE, json.dumps(meta, indent=1, default=str) + "\n")
    old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder


def _clean_stale(folder: Path) -> None:
    """Remove the half-written folders a killed save left beside ``folder`` (their pid is dead)."""
    for stale in folder.parent.glob(f".{folder.name}.*-*"):
        kind, _, pid = stale.name.rpartition("-")
        if kind.endswith((".tmp", ".old")) and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)


def read_adapter(folder: str | os.PathLike) -> AdapterInfo:
    """``painters_heal.json`` of an adapter folder, checked; one clear line when it is not one."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"adapter folder not found: {folder}")
    path = folder / HEAL_FILE
    if not path.is_file() or not (folder / "adapter_config.json").is_file():
        raise UserError(f"{folder} is not a healed adapter folder (it needs adapter_config.json and {HEAL_FILE}, "
                        "as `painters heal` writes them)")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        base, plan = meta["base_model"], meta["plan"]
        return AdapterInfo(folder, base["name"], base.get("path"), base["fingerprint"], plan["spec"], plan["text"],
                           int(plan["num_layers"]), meta["heal"], meta)
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"{path} is damaged ({type(e).__name__}: {e}); re-run `painters heal` to rewrite it") from None


def check_base(info: AdapterInfo, name: str, fingerprint: str) -> None:
    """Refuse to put the adapter on other weights than it was trained on: it would load without a
    complaint (the shapes match) and give some other model's scores under the healed name."""
    if fingerprint != info.fingerprint:
        raise UserError(f"model '{name}' is not the base model of adapter {info.folder}: its fingerprint is "
                        f"{fingerprint}, the adapter was trained on '{info.base_model}' ({info.fingerprint})")


def check_plan(info: AdapterInfo, plan: Plan) -> None:
    if plan.text != info.plan:
        raise UserError(f"adapter {info.folder} was healed under plan {info.plan}, not {plan.text}: "
                        "leave --plan out to use the adapter's own")


def load_adapter(model: nn.Module, info: AdapterInfo):
    """The base ``model`` with the adapter loaded (a ``PeftModel`` in eval mode); the plan is
    applied to ``.get_base_model()`` by the caller, as in training."""
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(info.folder), is_trainable=False).eval()


def merge_adapter(model: nn.Module, info: AdapterInfo) -> nn.Module:
    """``model`` with the adapter's low-rank updates added into its weights (peft's
    ``merge_and_unload``): an ordinary model again, ready for ``rewire.export_plan``."""
    return load_adapter(model, info).merge_and_unload()


def for_export(adapter: str | None, model: str | None, plan: str | None) -> tuple[AdapterInfo | None, str, str]:
    """``painters export``'s (adapter info, model name, plan spec): with ``--adapter`` the model
    and plan default to the ones the adapter records."""
    info = read_adapter(adapter) if adapter else None
    model = model or (info.base_name_or_path if info else None)
    plan = plan or (info.spec if info else None)
    if not model or not plan:
        raise UserError("--model and --plan are required (or --adapter DIR, whose folder records both)")
    return info, model, plan
