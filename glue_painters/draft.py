"""A rewired plan as a second model over the same weights: the draft of self-speculative decoding.

Speculative decoding needs two models at once, the full model that verifies and a cheaper draft
that proposes. A plan of the same model is such a draft, but ``apply_plan`` rewires a model in
place. ``draft_view`` builds a second module tree in which every module is a new object holding
the *same* parameter and buffer tensors as the full model (nothing is copied), with its own config
copy, and puts the plan on that tree. The full model stays untouched and usable; the draft costs
only its own KV cache; dropping the draft releases it (it holds no hooks or state on the full model).

Why a tree of new module objects and not ``copy.copy(model)``: a shallow copy shares the
``_modules`` dict, so swapping the draft's layer list would swap the full model's too.
"""

from __future__ import annotations

import copy
from collections import OrderedDict

from torch import nn

from .plans import Plan
from .rewire import apply_plan, current_plan

try:
    from transformers import PretrainedConfig
except Exception:  # pragma: no cover
    PretrainedConfig = ()


def _configs_in(config) -> list:
    """A config and the sub-configs it holds (a text config inside a multimodal one ...)."""
    out = [config]
    for value in vars(config).values():
        if isinstance(value, PretrainedConfig):
            out += _configs_in(value)
    return out


def _clone(module: nn.Module, configs: dict) -> nn.Module:
    """A new module object over the same parameters and buffers, submodules cloned the same way."""
    new = copy.copy(module)  # a fresh object with a shallow copy of the instance dict
    new._parameters = OrderedDict(module._parameters)  # the same Parameter objects, in a new dict
    new._buffers = OrderedDict(module._buffers)
    new._modules = OrderedDict((k, None if v is None else _clone(v, configs)) for k, v in module._modules.items())
    for attr in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_forward_hooks_with_kwargs",
                 "_forward_pre_hooks_with_kwargs", "_forward_hooks_always_called", "_state_dict_hooks",
                 "_load_state_dict_pre_hooks"):
        if isinstance(getattr(module, attr, None), dict):
            setattr(new, attr, OrderedDict(getattr(module, attr)))
    for key, value in list(vars(new).items()):  # every reference to the config -> the draft's copy
        if id(value) in configs:
            setattr(new, key, configs[id(value)])
    return new


def shared_view(model: nn.Module) -> nn.Module:
    """A second module tree of ``model`` sharing every parameter and buffer (same storage), with a
    deep copy of its config (a plan changes ``num_hidden_layers`` and per-layer fields)."""
    if current_plan(model) is not None:
        raise ValueError("take the view of the model without a plan on (remove_plan first)")
    config = model.config
    memo: dict = {}
    new_config = copy.deepcopy(config, memo)
    configs = {id(c): memo[id(c)] for c in _configs_in(config) if id(c) in memo}
    view = _clone(model, configs)
    if hasattr(model, "generation_config"):
        view.generation_config = copy.deepcopy(model.generation_config)
    view.config = new_config
    return view


def draft_view(model: nn.Module, plan: Plan | str, parallel: str = "loop") -> nn.Module:
    """``model`` under ``plan`` as a second model over the same weights (see module docstring)."""
    view = shared_view(model)
    apply_plan(view, plan, parallel)
    return view
