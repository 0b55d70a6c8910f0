"""Put a plan on any supported HF model, and take it off again, without touching its code.

The one mechanism: every HF model loops over a layer list (``model.layers``, ``encoder.layer``,
...). We replace that list with one built from the plan - **one entry per executed layer** - whose
entries call the *same* layer modules (shared, never copied). The model's own ``forward`` keeps
running, so masks, rotary embeddings, sliding windows and caches are handled by transformers.

Why one entry per execution (and not one module per parallel group): several things in a model
are indexed by position in that list - the KV-cache slot, ``config.layer_types[i]`` (Gemma3 picks
each layer's mask and rotary table by it), ``config.num_hidden_layers`` (cache size, the slice
``layers[:num_hidden_layers]``, the count of recorded hidden states). With one entry per
execution these all line up: entry ``i`` runs one layer, writes cache slot ``i``, and gets the
mask of its own layer type. A parallel group is then ``m`` consecutive entries sharing a small
buffer: every member reads the group's input, and the last one returns the mean of the members'
outputs (each including its residual, as in the paper's code). A repeated layer is simply several
entries wrapping the same module, each with its own cache slot, so generation with the KV cache
equals generation without it.

Cache slots: attention modules write ``cache.update(k, v, self.layer_idx)`` with the layer's
*original* index. An entry finds the cache among its call's arguments by type and passes the layer
a ``SlotCache`` view that turns every layer index into the entry's own slot (slot_cache.py, with
the guard that refuses a call whose layer wrote its cache around the view). Nothing on the HF
modules is changed; all rewiring state lives in the swapped-in ``RewiredLayers`` list (our own
module), so removing it restores the model exactly.

Per-architecture knowledge is small: where the layer list lives is found by structure
(architectures.py, with a table of overrides), per-layer config fields by their length, the cache
by its type.
"""

from __future__ import annotations

import contextlib
import copy
import weakref
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .architectures import ARCHITECTURES, Arch, RewireError, arch_of, base_of, find_layer_list, per_layer_fields
from .batched import BatchedGroup, layer_signature
from .plans import Layer, Plan
from .slot_cache import SlotCache, SlotGuard, locate_cache

__all__ = ["ARCHITECTURES", "Arch", "RewireError", "apply_plan", "remove_plan", "rewired", "current_plan",
           "original_layers", "num_layers", "parallel_mode", "materialize", "export_plan"]

PARALLEL_MODES = ("loop", "batched")


_PATHS: "weakref.WeakKeyDictionary[nn.Module, str]" = weakref.WeakKeyDictionary()


def _layer_list_owner(model: nn.Module) -> tuple[nn.Module, str]:
    """The module holding the layer list and its attribute name: a rewired list of ours if one is
    on, else the list found by structure (architectures.find_layer_list), remembered per model."""
    path = _PATHS.get(model)
    if path is None:
        base = base_of(model)
        path = next((n for n, m in base.named_modules() if isinstance(m, RewiredLayers)), None)
        path = path or find_layer_list(model)
        _PATHS[model] = path
    owner = base_of(model)
    *parents, name = path.split(".")
    for p in parents:
        owner = getattr(owner, p)
    return owner, name


def _get_list(model: nn.Module) -> nn.ModuleList:
    owner, name = _layer_list_owner(model)
    return getattr(owner, name)


def _config(model: nn.Module):
    config = base_of(model).config
    getter = getattr(config, "get_text_config", None)
    return getter() if callable(getter) else config


def _hidden(out):
    return out[0] if isinstance(out, tuple) else out


def _with_hidden(out, hidden):
    return (hidden,) + tuple(out[1:]) if isinstance(out, tuple) else hidden


# ---- list entries -------------------------------------------------------------------------------
class PlanStep(nn.Module):
    """One executed layer: calls the shared layer module with the cache seen through its slot.

    Public attributes the model's forward reads off its layers (``attention_type``, by which Gemma3
    and others pick each layer's mask) are the layer's own: looked up on it, never copied.
    """

    def __init__(self, layer: nn.Module, layer_index: int, slot: int):
        super().__init__()
        self.layer = layer
        self.layer_index = layer_index
        self.slot = slot

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            layer = self.__dict__.get("_modules", {}).get("layer")
            if layer is None or name.startswith("_"):
                raise
            return getattr(layer, name)

    def _call(self, hidden_states, args, kwargs):
        site, cache = locate_cache(args, kwargs)
        if cache is None:
            return self.layer(hidden_states, *args, **kwargs)
        args, kwargs = site.replace(args, kwargs, SlotCache(cache, self.slot))
        guard = SlotGuard(cache, self.slot, self.layer_index)
        out = self.layer(hidden_states, *args, **kwargs)
        guard.check(f"layer {self.layer_index} (step {self.slot})")
        return out

    def forward(self, hidden_states, *args, **kwargs):
        return self._call(hidden_states, args, kwargs)

    def extra_repr(self) -> str:
        return f"layer={self.layer_index}, slot={self.slot}"


class _GroupBuffer:
    """What the members of one parallel group share during a forward: its input and outputs, and
    (with ``parallel="batched"``) the runner that computes the members together."""

    def __init__(self, runner: BatchedGroup | None = None):
        self.input = None
        self.outputs: list = []
        self.runner = runner


class ParallelMember(PlanStep):
    """A member of a parallel group. Every member runs on the group's input; members pass that
    input on unchanged, and the last one returns the mean of all members' outputs."""

    def __init__(self, layer, layer_index, slot, buffer: _GroupBuffer, first: bool, last: bool,
                 position: int = 0):
        super().__init__(layer, layer_index, slot)
        self.first, self.last, self.position = first, last, position
        self._buffer = buffer  # plain object, not a module: shared by the group's members

    def forward(self, hidden_states, *args, **kwargs):
        buf = self._buffer
        if self.first:
            buf.input, buf.outputs = hidden_states, []
            if buf.runner is not None:
                buf.runner.reset()
        hidden = buf.runner.output(self.position, buf.input, args, kwargs) if buf.runner is not None else None
        if hidden is None:
            out = self._call(buf.input, args, kwargs)
            hidden = _hidden(out)
        else:  # computed with its batch class; give it the layer's own output form
            n = buf.runner.classes[self.position].tuple_len
            out = (hidden,) + (None,) * (n - 1) if n else hidden
        buf.outputs.append(hidden)
        if not self.last:
            return _with_hidden(out, buf.input)
        mean = torch.stack(buf.outputs, dim=0).mean(dim=0)
        buf.input, buf.outputs = None, []
        return _with_hidden(out, mean)

    def extra_repr(self) -> str:
        return super().extra_repr() + (", first" if self.first else "") + (", last" if self.last else "")


class RewiredLayers(nn.ModuleList):
    """The layer list a plan runs. Keeps what ``remove_plan`` needs to restore the model."""

    def __init__(self, entries=None, plan: Plan | None = None, original: nn.ModuleList | None = None,
                 saved_config: dict | None = None, parallel: str = "loop"):
        # (defaults because ModuleList slicing, ``layers[:n]``, rebuilds the class from entries alone)
        super().__init__(entries)
        # not registered as submodules: the original list's layers are already the entries' layers
        object.__setattr__(self, "plan", plan)
        object.__setattr__(self, "original", original)
        object.__setattr__(self, "saved_config", saved_config)
        object.__setattr__(self, "parallel", parallel)


def _entries(plan: Plan, layers: nn.ModuleList, batched: bool = False, layer_types=None) -> list[PlanStep]:
    """One entry per executed layer. With ``batched``, each parallel group gets a BatchedGroup
    runner whose classes are the members of equal kind: equal layer type (``config.layer_types``:
    members of different types get different masks and rotary tables, so they cannot share one
    call) and equal per-layer settings (``layer_signature``: e.g. SmolLM3's ``use_rope``)."""
    entries: list[PlanStep] = []
    for unit in plan.units():
        if isinstance(unit, Layer):
            entries.append(PlanStep(layers[unit.index], unit.index, len(entries)))
            continue
        m, start = len(unit.members), len(entries)
        runner = None
        if batched:
            kinds = [(layer_types[i] if layer_types is not None else None, layer_signature(layers[i]))
                     for i in unit.members]
            runner = BatchedGroup([(j, layers[i], start + j, kinds[j]) for j, i in enumerate(unit.members)])
        buf = _GroupBuffer(runner)
        for j, i in enumerate(unit.members):
            entries.append(ParallelMember(layers[i], i, len(entries), buf, j == 0, j == m - 1, j))
    return entries


# ---- public API ---------------------------------------------------------------------------------
def current_plan(model: nn.Module) -> Plan | None:
    layers = _get_list(model)
    return layers.plan if isinstance(layers, RewiredLayers) else None


def original_layers(model: nn.Module) -> nn.ModuleList:
    layers = _get_list(model)
    return layers.original if isinstance(layers, RewiredLayers) else layers


def num_layers(model: nn.Module) -> int:
    """T, the number of layers of the untouched model (also while a plan is on)."""
    return len(original_layers(model))


def parallel_mode(model: nn.Module) -> str | None:
    """How the plan that is on runs its parallel groups: "loop", "batched" or None (no plan on)."""
    layers = _get_list(model)
    return layers.parallel if isinstance(layers, RewiredLayers) else None


def apply_plan(model: nn.Module, plan: Plan | str, parallel: str = "loop") -> nn.Module:
    """Rewire ``model`` in place to run ``plan`` (a Plan or its text). Returns the model.

    ``parallel`` says how a parallel group's members run: "loop" (one after another, the
    reference) or "batched" (one vmapped call over stacked parameters, batched.py; needs the
    architecture's ``batchable`` row, else the loop runs and ``parallel_mode`` says "loop"). The
    batched mode holds a copy of the groups' parameters while the plan is on.

    Replaces a plan already on. ``config.num_hidden_layers`` and per-layer config lists (e.g.
    ``layer_types``) follow the plan while it is on, so caches the model creates have one slot
    per executed layer. While a plan is on, the model's parameters are the ones the plan runs
    (a skipped layer is not among them, a repeated one counts once): so an optimizer built now
    trains exactly what runs, and a model should be moved or cast before a plan is applied (or
    after it is removed), not while it is on.
    """
    arch = arch_of(model)
    if parallel not in PARALLEL_MODES:
        raise RewireError(f"parallel must be one of {', '.join(PARALLEL_MODES)}, got '{parallel}'")
    if isinstance(plan, str):
        plan = Plan.parse(plan)
    remove_plan(model)
    owner, name = _layer_list_owner(model)
    original = getattr(owner, name)
    plan.validate(len(original))
    config = _config(model)
    if getattr(config, "is_heterogeneous", False):
        raise RewireError("models with a heterogeneous per_layer_config are not supported yet")
    saved = {"num_hidden_layers": config.num_hidden_layers}
    batched = parallel == "batched" and arch.batchable and not plan.is_sequential
    entries = _entries(plan, original, batched, getattr(config, "layer_types", None))
    for field, values in per_layer_fields(config, len(original)).items():
        saved[field] = getattr(config, field)
        setattr(config, field, [values[e.layer_index] for e in entries])
    config.num_hidden_layers = len(entries)
    setattr(owner, name, RewiredLayers(entries, plan, original, saved, "batched" if batched else "loop"))
    return model


def remove_plan(model: nn.Module) -> nn.Module:
    """Put the original layer list and config values back (a no-op on an untouched model)."""
    layers = _get_list(model)
    if isinstance(layers, RewiredLayers):
        config = _config(model)
        for field, value in layers.saved_config.items():
            setattr(config, field, value)
        owner, name = _layer_list_owner(model)
        setattr(owner, name, layers.original)
    return model


@contextlib.contextmanager
def rewired(model: nn.Module, plan: Plan | str, parallel: str = "loop"):
    """``with rewired(model, plan): ...`` runs the plan inside and restores whatever was on before."""
    before, before_mode = current_plan(model), parallel_mode(model)
    apply_plan(model, plan, parallel)
    try:
        yield model
    finally:
        remove_plan(model)
        if before is not None:
            apply_plan(model, before, before_mode)


def materialize(model: nn.Module, plan: Plan | str) -> nn.Module:
    """A new, ordinary model that runs a sequential ``plan`` (skips, reorders, repeats).

    Each executed layer becomes a real layer (a repeated one is deep-copied), renumbered so its
    ``layer_idx`` is its new position; the result needs no glue-painters to run and saves and
    reloads with ``save_pretrained``/``from_pretrained``. Parallel groups have no such form.
    """
    if isinstance(plan, str):
        plan = Plan.parse(plan)
    if not plan.is_sequential:
        raise RewireError(
            f"plan '{plan.text}' has a parallel group: only skip/reorder/repeat plans can be saved as "
            "an ordinary checkpoint (keep the plan text with the original model instead)"
        )
    arch_of(model)
    out = copy.deepcopy(model)
    remove_plan(out)
    owner, name = _layer_list_owner(out)
    original = getattr(owner, name)
    plan.validate(len(original))
    config = _config(out)
    per_layer = per_layer_fields(config, len(original))
    new_layers, order = [], [u.index for u in plan.units()]
    for pos, i in enumerate(order):
        layer = original[i] if order.index(i) == pos else copy.deepcopy(original[i])
        for module in layer.modules():
            if isinstance(getattr(module, "layer_idx", None), int):
                module.layer_idx = pos
        new_layers.append(layer)
    for field, values in per_layer.items():
        setattr(config, field, [values[i] for i in order])
    config.num_hidden_layers = len(order)
    setattr(owner, name, nn.ModuleList(new_layers))
    _check_rebuilds(out, owner, name, plan)
    return out


def _check_rebuilds(model: nn.Module, owner: nn.Module, name: str, plan: Plan) -> None:
    """Refuse an export whose config would not rebuild the layers it holds.

    ``from_pretrained`` builds each layer from the config by its position (DeepSeek-V3's first
    ``first_k_dense_replace`` layers have a dense MLP, Qwen2-MoE's ``mlp_only_layers`` ...). A
    plan that moves a layer to a position built differently would reload with missing weights or
    other settings: a different model under the same plan text. So the model the config builds
    (on the meta device: no memory, no time) must have the same parameters and per-layer settings.
    """
    with torch.device("meta"):
        fresh = type(model)(copy.deepcopy(model.config))
    fresh_layers = getattr(_walk(fresh, owner, model), name)
    ours = getattr(owner, name)
    for pos, (a, b) in enumerate(zip(ours, fresh_layers)):
        shapes_a = {k: tuple(v.shape) for k, v in a.state_dict().items()}
        shapes_b = {k: tuple(v.shape) for k, v in b.state_dict().items()}
        if shapes_a != shapes_b or layer_signature(a, identities=False) != layer_signature(b, identities=False):
            raise RewireError(
                f"plan '{plan.text}' cannot be exported for model_type '{model.config.model_type}': its config "
                f"builds position {pos} as a different kind of layer than the one the plan puts there, so the "
                "saved checkpoint would reload as another model (use the plan on the original model instead)")


def _walk(fresh: nn.Module, owner: nn.Module, model: nn.Module) -> nn.Module:
    """The module of ``fresh`` at the path where ``owner`` sits in ``model``."""
    path = next(n for n, m in model.named_modules() if m is owner)
    out = fresh
    for part in filter(None, path.split(".")):
        out = getattr(out, part)
    return out


def export_plan(model: nn.Module, plan: Plan | str, out_dir: str | Path, tokenizer: Any = None,
                dtype: str | torch.dtype | None = None) -> Path:
    """Save ``materialize(model, plan)`` as a normal HF checkpoint (with the plan in its config).

    Pass the ``tokenizer`` so the folder is complete (``from_pretrained`` on it then needs
    nothing else); ``dtype`` (e.g. "bfloat16") converts the copy's weights before saving - the
    model handed in keeps its own."""
    new = materialize(model, plan)
    if dtype is not None:
        new = new.to(getattr(torch, dtype) if isinstance(dtype, str) else dtype)
    plan_text = plan if isinstance(plan, str) else plan.text
    new.config.painters_plan = Plan.parse(plan_text).text
    out_dir = Path(out_dir)
    new.save_pretrained(out_dir)
    if tokenizer is not None:
        tokenizer.save_pretrained(out_dir)
    return out_dir
