"""What rewiring needs to know about a model: where its layer list lives, found by structure.

Every HF model keeps its blocks in one ``nn.ModuleList`` under the base model (``layers``,
``encoder.layer``, ``h``, ``decoder.layers`` ...) with one entry per ``config.num_hidden_layers``,
all of one class. ``find_layer_list`` looks for exactly that, so a model the table has never heard
of works when its structure is the usual one, and gets an error naming what was found when it is
not. The table (``ARCHITECTURES``) then only holds overrides: a path where discovery would be
ambiguous, a model that must be refused (ALBERT shares one layer among all its steps), or a
``batchable=False`` flag.

Why structure and not names: upstream renames things (transformers 5.24 renamed the keyword that
carries the KV cache into a layer). A list of ``num_hidden_layers`` same-class modules is what the
model's own forward loops over; that cannot change without the model changing.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .errors import UserError


class RewireError(UserError):
    """A model or plan the rewiring cannot handle; the message says what to do."""


@dataclass(frozen=True)
class Arch:
    """Overrides for one ``model_type``. ``layers``: the layer list's dotted path under
    ``model.base_model`` (``None``: found by ``find_layer_list``). ``batchable``: a parallel
    group's members may run as one vmapped call (batched.py; ``False`` forces the loop).
    ``refuse``: the reason this model type cannot be rewired (a one-line error instead of a
    wrong number)."""

    layers: str | None = None
    batchable: bool = True
    refuse: str | None = None


# model_type -> overrides. Types not listed run with Arch() (discovered list, batchable).
# Every type named in tests/tiny.py passes the exactness battery in tests/test_battery.py.
ARCHITECTURES: dict[str, Arch] = {
    # parallel groups run as the loop: their blocks return attention weights beside the hidden
    # state (bloom) or use an autograd.Function vmap cannot batch (falcon)
    "bloom": Arch(batchable=False),
    "falcon": Arch(batchable=False),
    "albert": Arch(refuse=(
        "ALBERT applies one shared layer group num_hidden_layers times (a loop over an index, not a "
        "list of layers), so there is no layer list to rewire; a plan over ALBERT would have to "
        "rewrite its encoder's forward, which glue-painters does not do")),
}


def _text_config(model: nn.Module):
    config = getattr(model, "config", None)
    if config is None:
        raise RewireError(f"{type(model).__name__} has no .config: glue-painters rewires Hugging Face models")
    getter = getattr(config, "get_text_config", None)
    return getter() if callable(getter) else config


def arch_of(model: nn.Module) -> Arch:
    """The table row of ``model`` (defaults for a type not listed); refuses what must be refused."""
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    arch = ARCHITECTURES.get(model_type, Arch())
    if arch.refuse:
        raise RewireError(f"model_type '{model_type}' cannot be rewired: {arch.refuse}")
    if getattr(config, "is_encoder_decoder", False):
        raise RewireError(
            f"model_type '{model_type}' is an encoder-decoder: glue-painters rewires one stack of layers "
            "(a decoder-only LM or an encoder), not two stacks joined by cross-attention")
    return arch


def base_of(model: nn.Module) -> nn.Module:
    return getattr(model, "base_model", model)


def _expected_count(model: nn.Module) -> int:
    count = getattr(_text_config(model), "num_hidden_layers", None)
    if not isinstance(count, int) or count < 1:
        raise RewireError(f"{type(model).__name__}'s config has no num_hidden_layers: cannot tell its layer list")
    return count


def find_layer_list(model: nn.Module) -> str:
    """The dotted path, under ``model.base_model``, of the model's list of layers.

    The candidates are the ``ModuleList``s of ``num_hidden_layers`` modules of one class; the one
    nearest the base model wins (an MoE layer's experts sit deeper). None, or two at the same depth,
    is an error that lists what there is, so the user can add a row with the right path.
    """
    arch = arch_of(model)
    base = base_of(model)
    if arch.layers is not None:  # an override: it must name a module list
        target = base
        for part in arch.layers.split("."):
            target = getattr(target, part, None)
        if not isinstance(target, nn.ModuleList):
            raise RewireError(f"ARCHITECTURES row for '{model.config.model_type}' names '{arch.layers}', which is "
                              f"not a module list under {type(base).__name__}")
        return arch.layers
    count = _expected_count(model)
    found = []
    for name, module in base.named_modules():
        if isinstance(module, nn.ModuleList) and name and len(module) == count:
            kinds = {type(m) for m in module}
            if len(kinds) == 1:
                found.append(name)
    model_type = getattr(model.config, "model_type", None)
    if not found:
        lists = [f"{n} ({len(m)} x {type(m[0]).__name__ if len(m) else '-'})"
                 for n, m in base.named_modules() if isinstance(m, nn.ModuleList) and n]
        raise RewireError(
            f"no list of {count} layers of one class under {type(base).__name__} (model_type "
            f"'{model_type}'); module lists found: {', '.join(lists) or 'none'}. If one of them is the "
            f"layer list, add ARCHITECTURES['{model_type}'] = Arch(layers='<its path>') in "
            "glue_painters.architectures")
    depth = min(n.count(".") for n in found)
    nearest = [n for n in found if n.count(".") == depth]
    if len(nearest) > 1:
        raise RewireError(
            f"model_type '{model_type}' has several lists of {count} layers ({', '.join(nearest)}): add "
            f"ARCHITECTURES['{model_type}'] = Arch(layers='<the one its forward loops over>') in "
            "glue_painters.architectures")
    return nearest[0]


def per_layer_fields(config, count: int) -> dict[str, list]:
    """Config fields that hold one value per layer (lists of exactly ``count`` entries, such as
    ``layer_types`` or SmolLM3's ``no_rope_layers``): they must follow a plan, since the model reads
    them by position (masks per layer type) or builds its layers from them (export)."""
    out = {}
    for key in config.to_dict():
        value = getattr(config, key, None)
        if key in _NOT_PER_LAYER or key.startswith("_") or not isinstance(value, (list, tuple)):
            continue
        if len(value) == count and (count > 1 or key == "layer_types"):
            out[key] = list(value)
    return out


# lists a config may hold that are never one value per layer
_NOT_PER_LAYER = {"architectures", "bad_words_ids", "begin_suppress_tokens", "suppress_tokens", "eos_token_id"}
