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

Cache slots: attention modules write ``past_key_values.update(k, v, self.layer_idx)`` with the
layer's *original* index. An entry passes the layer a ``SlotCache`` view that turns that into the
entry's own slot. Nothing on the HF modules is changed; all rewiring state lives in the swapped-in
``RewiredLayers`` list (our own module), so removing it restores the model exactly.

Per-architecture knowledge is the ``ARCHITECTURES`` table: where the list lives under the base
model, which keyword (if any) carries the cache into a layer, and whether a parallel group's
members may run as one batched (vmapped) computation (``parallel="batched"``, see batched.py).
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .batched import BatchedGroup
from .errors import UserError
from .plans import Layer, Parallel, Plan

PARALLEL_MODES = ("loop", "batched")


@dataclass(frozen=True)
class Arch:
    """Where the layer list lives (dotted path under ``model.base_model``), and the keyword a
    layer receives its KV cache by (``None`` for encoders, which run without one)."""

    layers: str
    cache_kwarg: str | None = "past_key_values"
    # config fields that hold one value per layer and must follow the plan
    per_layer_fields: tuple[str, ...] = ("layer_types",)
    # parallel="batched" may vmap the layer's forward over stacked member parameters (tested
    # equal to the loop on the tiny model in tests/test_rewire_batched.py); False: always the loop
    batchable: bool = True


# model_type -> Arch. A new architecture is one row; see ``arch_of`` for the error that says so.
ARCHITECTURES: dict[str, Arch] = {
    "llama": Arch("layers"),
    "mistral": Arch("layers"),
    "qwen2": Arch("layers"),
    "gemma3_text": Arch("layers"),
    # no tiny model of these in tests/tiny.py, so batched is not claimed for them
    "gemma2": Arch("layers", batchable=False),
    "olmo2": Arch("layers", batchable=False),
    "phi3": Arch("layers", batchable=False),
    "gpt_neox": Arch("layers", cache_kwarg="layer_past"),
    "bert": Arch("encoder.layer", cache_kwarg=None),
    "roberta": Arch("encoder.layer", cache_kwarg=None),
    "mpnet": Arch("encoder.layer", cache_kwarg=None),
}


class RewireError(UserError):
    """A model or plan the rewiring cannot handle; the message says what to do."""


def _base(model: nn.Module) -> nn.Module:
    return getattr(model, "base_model", model)


def arch_of(model: nn.Module) -> Arch:
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in ARCHITECTURES:
        raise RewireError(
            f"glue-painters does not know where the layers of model_type '{model_type}' "
            f"({type(model).__name__}) live. Add a row to glue_painters.rewire.ARCHITECTURES, e.g. "
            f"ARCHITECTURES['{model_type}'] = Arch('layers', cache_kwarg='past_key_values'), giving "
            f"the layer list's path under model.base_model and the keyword its layers take the cache by."
        )
    return ARCHITECTURES[model_type]


def _layer_list_owner(model: nn.Module) -> tuple[nn.Module, str]:
    owner = _base(model)
    *parents, name = arch_of(model).layers.split(".")
    for p in parents:
        owner = getattr(owner, p)
    return owner, name


def _get_list(model: nn.Module) -> nn.ModuleList:
    owner, name = _layer_list_owner(model)
    return getattr(owner, name)


def _config(model: nn.Module):
    return _base(model).config


# ---- cache view ---------------------------------------------------------------------------------
class SlotCache:
    """A view of a cache in which every layer index means one fixed slot.

    Attention modules call ``update(k, v, self.layer_idx)``; their ``layer_idx`` is the layer's
    original position, not the step it runs at, so the view replaces it with the step's slot.
    Every other attribute is the real cache's.
    """

    __slots__ = ("_cache", "_slot")

    def __init__(self, cache, slot: int):
        self._cache = cache
        self._slot = slot

    def update(self, key_states, value_states, layer_idx=None, *args, **kwargs):
        return self._cache.update(key_states, value_states, self._slot, *args, **kwargs)

    def get_seq_length(self, layer_idx=None, *args, **kwargs):
        return self._cache.get_seq_length(self._slot, *args, **kwargs)

    def __getattr__(self, name):
        if name in SlotCache.__slots__:  # not set yet (torch.compile builds it field by field): no recursion
            raise AttributeError(name)
        return getattr(self._cache, name)


def _hidden(out):
    return out[0] if isinstance(out, tuple) else out


def _with_hidden(out, hidden):
    return (hidden,) + tuple(out[1:]) if isinstance(out, tuple) else hidden


# ---- list entries -------------------------------------------------------------------------------
class PlanStep(nn.Module):
    """One executed layer: calls the shared layer module with the cache seen through its slot."""

    def __init__(self, layer: nn.Module, layer_index: int, slot: int, cache_kwarg: str | None):
        super().__init__()
        self.layer = layer
        self.layer_index = layer_index
        self.slot = slot
        self.cache_kwarg = cache_kwarg
        if hasattr(layer, "attention_type"):  # some models pick masks by it
            self.attention_type = layer.attention_type

    def _call(self, hidden_states, args, kwargs):
        cache = kwargs.get(self.cache_kwarg) if self.cache_kwarg else None
        if cache is not None:
            kwargs = dict(kwargs, **{self.cache_kwarg: SlotCache(cache, self.slot)})
        return self.layer(hidden_states, *args, **kwargs)

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

    def __init__(self, layer, layer_index, slot, cache_kwarg, buffer: _GroupBuffer, first: bool, last: bool,
                 position: int = 0):
        super().__init__(layer, layer_index, slot, cache_kwarg)
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


def _entries(plan: Plan, layers: nn.ModuleList, cache_kwarg, batched: bool = False,
             layer_types=None) -> list[PlanStep]:
    """One entry per executed layer. With ``batched``, each parallel group gets a BatchedGroup
    runner whose classes are the members of equal layer type (``config.layer_types``: members of
    different types get different masks and rotary tables, so they cannot share one call)."""
    entries: list[PlanStep] = []
    for unit in plan.units():
        if isinstance(unit, Layer):
            entries.append(PlanStep(layers[unit.index], unit.index, len(entries), cache_kwarg))
            continue
        m, start = len(unit.members), len(entries)
        runner = None
        if batched:
            kinds = [layer_types[i] if layer_types is not None else None for i in unit.members]
            runner = BatchedGroup([(j, layers[i], start + j, kinds[j]) for j, i in enumerate(unit.members)],
                                  cache_kwarg)
        buf = _GroupBuffer(runner)
        for j, i in enumerate(unit.members):
            entries.append(ParallelMember(layers[i], i, len(entries), cache_kwarg, buf, j == 0, j == m - 1, j))
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
    original = _get_list(model)
    plan.validate(len(original))
    config = _config(model)
    if getattr(config, "is_heterogeneous", False):
        raise RewireError("models with a heterogeneous per_layer_config are not supported yet")
    saved = {"num_hidden_layers": config.num_hidden_layers}
    batched = parallel == "batched" and arch.batchable and not plan.is_sequential
    entries = _entries(plan, original, arch.cache_kwarg, batched, getattr(config, "layer_types", None))
    for field in arch.per_layer_fields:
        values = getattr(config, field, None)
        if values is not None:
            saved[field] = values
            setattr(config, field, [values[e.layer_index] for e in entries])
    config.num_hidden_layers = len(entries)
    owner, name = _layer_list_owner(model)
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
    arch = arch_of(model)
    out = copy.deepcopy(model)
    remove_plan(out)
    original = _get_list(out)
    plan.validate(len(original))
    config = _config(out)
    per_layer = {f: getattr(config, f) for f in arch.per_layer_fields if getattr(config, f, None) is not None}
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
    owner, name = _layer_list_owner(out)
    setattr(owner, name, nn.ModuleList(new_layers))
    return out


def export_plan(model: nn.Module, plan: Plan | str, out_dir: str | Path, tokenizer: Any = None) -> Path:
    """Save ``materialize(model, plan)`` as a normal HF checkpoint (with the plan in its config)."""
    new = materialize(model, plan)
    plan_text = plan if isinstance(plan, str) else plan.text
    new.config.painters_plan = Plan.parse(plan_text).text
    out_dir = Path(out_dir)
    new.save_pretrained(out_dir)
    if tokenizer is not None:
        tokenizer.save_pretrained(out_dir)
    return out_dir
