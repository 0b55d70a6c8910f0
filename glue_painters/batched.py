"""Run the members of one parallel group as a single batched computation (``parallel="batched"``).

Why: a parallel group ``[a-b]`` runs m layers on the *same* input and averages their outputs. The
plain way (``parallel="loop"``, rewire.py) calls the m layers one after another: m times the kernel
launches, each on a small matrix. Since the members have identical structure, their parameters can
be stacked along a new leading dimension and the layer's own ``forward`` run once under
``torch.vmap`` over that dimension, with ``torch.func.functional_call`` swapping the stacked
parameters in. No modeling code is copied and no ``forward`` is patched: the HF layer runs as is,
only its parameters come from the stack.

What makes it less simple than ``vmap(functional_call(...))``:

* **KV cache.** Every member has its own cache slot (rewire.py's ``SlotCache``). Inside vmap the
  real cache cannot be written (its tensors are per member, vmap's are batched), so the members'
  past keys/values are stacked and handed to vmap as a batched input, through ``_MemberCache`` - a
  tiny Cache-like object whose ``update`` returns what the real cache layer would return and keeps
  the new keys/values. After vmap the new keys/values are written into each member's real slot with
  the real ``cache.update`` (so cropping of sliding windows, counters etc. stay transformers' own).
  Supported cache layers: ``DynamicLayer``, ``DynamicSlidingWindowLayer`` (not recording the past)
  and ``StaticLayer``; anything else falls back to the loop.
* **Heterogeneous groups.** Members of different layer types (Gemma3's sliding vs full attention)
  take different masks and rotary tables, which the model hands each *entry* by its position. So a
  group is split into classes of equal layer type; the first entry of a class computes the whole
  class (with the mask it was given, which is the class's mask), the others reuse the result.
* **Fallback.** Whatever vmap cannot do (a layer that asks the cache for something else, hooks that
  record outputs, an op without a batching rule that cannot fall back) makes that class run as the
  plain loop from then on, with one warning. The loop is the reference: the tests check that
  batched equals it.

Memory: the stacked parameters are a copy (``stack_module_state`` cannot alias m separate
tensors), held while the plan is on and rebuilt if any member parameter is changed or moved. With
gradients enabled and parameters requiring them, the stack is rebuilt each forward with
``torch.stack`` so gradients reach the members' own parameters.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, stack_module_state

from .slot_cache import locate_cache

try:  # transformers >= 5: output-capturing hooks are active only while this holds a dict
    from transformers.utils.output_capturing import _active_collector
except Exception:  # pragma: no cover - other transformers versions
    _active_collector = None

try:
    from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer, StaticLayer
except Exception:  # pragma: no cover
    DynamicLayer = DynamicSlidingWindowLayer = StaticLayer = ()


class Unbatchable(RuntimeError):
    """This group cannot run batched (or, if ``transient``, only this call cannot); the caller runs
    the loop instead."""

    def __init__(self, message: str, transient: bool = False):
        super().__init__(message)
        self.transient = transient


def _hidden(out):
    return out[0] if isinstance(out, tuple) else out


# ---- the cache seen by the vmapped layer ---------------------------------------------------------
class _MemberCache:
    """What one member's attention sees as its cache inside vmap.

    ``past_k``/``past_v`` are the member's stored keys/values (batched over members by vmap) or
    ``None`` before the first update; ``static_start`` is set for a static cache (the number of
    tokens it holds: new tokens are written from there on). ``update`` returns what the member's
    real cache layer would return, and keeps the new states for writing back after vmap.
    """

    def __init__(self, past_k, past_v, static_start=None):
        self.past_k, self.past_v, self.static_start = past_k, past_v, static_start
        self.new_k = self.new_v = None

    def update(self, key_states, value_states, layer_idx=None, *args, **kwargs):
        if self.new_k is not None:
            raise Unbatchable("a layer updated its cache twice in one call")
        self.new_k, self.new_v = key_states, value_states
        if self.past_k is None:
            return key_states, value_states
        if self.static_start is not None:  # StaticLayer: the whole buffer, written at the positions
            pos = torch.arange(key_states.shape[-2], device=key_states.device) + self.static_start
            return self.past_k.index_copy(-2, pos, key_states), self.past_v.index_copy(-2, pos, value_states)
        return torch.cat([self.past_k, key_states], dim=-2), torch.cat([self.past_v, value_states], dim=-2)

    def __getattr__(self, name):
        raise Unbatchable(f"the layer asked its cache for '{name}', which the batched path does not provide")


def _cache_layer(cache, slot):
    layers = getattr(cache, "layers", None)
    if layers is None:
        raise Unbatchable(f"cache {type(cache).__name__} has no per-layer storage")
    if getattr(cache, "offloading", False):
        raise Unbatchable("offloaded caches are not supported batched")
    if slot < len(layers):
        return layers[slot]
    if getattr(cache, "layer_class_to_replicate", None) is DynamicLayer:
        return None  # created empty by the first update
    raise Unbatchable(f"cache slot {slot} does not exist yet")


def _gather_past(cache, slots):
    """Stacked past keys/values of the members' slots (or None, None) and, for a static cache,
    the positions the new tokens go to."""
    layers = [_cache_layer(cache, s) for s in slots]
    kinds = {type(l) for l in layers}
    if len(kinds) != 1:
        raise Unbatchable(f"members' cache layers differ: {sorted(k.__name__ for k in kinds)}")
    kind = kinds.pop()
    if kind is type(None) or not any(getattr(l, "is_initialized", False) for l in layers):
        if kind is StaticLayer:  # its buffers get their shape from the first update: the loop does it
            raise Unbatchable("a static cache is filled by its first (prefill) call", transient=True)
        if kind not in (type(None), DynamicLayer, DynamicSlidingWindowLayer):
            raise Unbatchable(f"cache layer {kind.__name__} is not supported batched")
        return None, None, None
    if not all(l.is_initialized for l in layers):
        raise Unbatchable("some members' cache slots are initialized and some are not")
    if kind in (DynamicLayer, DynamicSlidingWindowLayer):
        if getattr(layers[0], "record_past", False):
            raise Unbatchable("sliding-window caches recording their past are not supported batched")
    elif kind is StaticLayer:
        lengths = {int(l.cumulative_length) for l in layers}
        if len(lengths) != 1:
            raise Unbatchable("members' static caches hold different lengths")
    else:
        raise Unbatchable(f"cache layer {kind.__name__} is not supported batched")
    shapes = {tuple(l.keys.shape) for l in layers}
    if len(shapes) != 1:
        raise Unbatchable("members' cached keys differ in shape")
    past_k = torch.stack([l.keys for l in layers])
    past_v = torch.stack([l.values for l in layers])
    static_start = layers[0].cumulative_length if kind is StaticLayer else None
    return past_k, past_v, static_start


def _foreign_hooks(layers) -> bool:
    """Hooks would see vmap's batched tensors (and could keep them): any hook other than
    transformers' output-capturing ones (inactive unless recording, checked separately) makes the
    call run as the loop."""
    from torch.nn.modules import module as _m

    if _m._global_forward_hooks or _m._global_forward_pre_hooks:
        return True
    for layer in layers:
        for mod in layer.modules():
            if mod._forward_pre_hooks:
                return True
            if any(getattr(h, "__name__", "") != "output_capturing_hook" for h in mod._forward_hooks.values()):
                return True
    return False


# ---- one class of members -------------------------------------------------------------------------
class _BatchClass:
    """Members of one group that share a layer type: computed together by one vmapped call."""

    def __init__(self, positions: list[int], layers: list[nn.Module], slots: list[int]):
        self.positions, self.layers, self.slots = positions, layers, slots
        self.broken: str | None = None  # the reason, once vmap failed for this class
        self.tuple_len: int | None = None  # the layer returns a tuple of this length (MPNet: 1)
        self._stack = None
        self._stack_key = None

    def _fingerprint(self):
        return tuple((p.data_ptr(), p._version, p.dtype, p.device)
                     for layer in self.layers for p in layer.parameters())

    def _stacked(self):
        layers = self.layers
        needs_grad = torch.is_grad_enabled() and any(p.requires_grad for l in layers for p in l.parameters())
        if needs_grad:  # differentiable: gradients reach each member's own parameters
            names = [n for n, _ in layers[0].named_parameters()]
            per = [dict(l.named_parameters()) for l in layers]
            params = {n: torch.stack([p[n] for p in per]) for n in names}
            bnames = [n for n, _ in layers[0].named_buffers()]
            bper = [dict(l.named_buffers()) for l in layers]
            buffers = {n: torch.stack([b[n] for b in bper]) for n in bnames}
            return params, buffers
        key = self._fingerprint()
        if self._stack is None or key != self._stack_key:
            self._stack, self._stack_key = None, None  # free the old copy first
            with torch.inference_mode(False), torch.no_grad():  # ordinary tensors, usable in any later mode
                params, buffers = stack_module_state(layers)
                self._stack = ({n: p.detach() for n, p in params.items()}, buffers)
            self._stack_key = key
        return self._stack

    def run(self, hidden, args: tuple, kwargs: dict) -> list[torch.Tensor]:
        """The members' outputs (hidden states), in the order of ``positions``."""
        if _active_collector is not None and _active_collector.get():
            raise Unbatchable("transformers is recording layer outputs (output_hidden_states/attentions)",
                              transient=True)
        if _foreign_hooks(self.layers):
            raise Unbatchable("a forward hook is registered on a member layer", transient=True)
        site, cache = locate_cache(args, kwargs)
        past_k = past_v = static_start = None
        if cache is not None:
            past_k, past_v, static_start = _gather_past(cache, self.slots)
            args, kwargs = site.remove(args, kwargs)
        params, buffers = self._stacked()
        base = self.layers[0]
        extra: dict[str, Any] = {}

        def one(p, b, pk, pv):
            member_args, member_kwargs = args, kwargs
            mc = None
            if cache is not None:
                mc = _MemberCache(pk, pv, static_start)
                member_args, member_kwargs = site.replace(args, kwargs, mc)
            out = functional_call(base, (p, b), (hidden,) + tuple(member_args), dict(member_kwargs), strict=True)
            if isinstance(out, tuple):
                if any(o is not None for o in out[1:]):
                    raise Unbatchable("the layer returns more than its hidden state (e.g. attention weights)")
                extra["tuple_len"] = len(out)
            h = _hidden(out)
            if mc is None:
                return h, h.new_zeros(()), h.new_zeros(())
            if mc.new_k is None:
                raise Unbatchable("the layer did not update its cache")
            return h, mc.new_k, mc.new_v

        pk_dim = 0 if past_k is not None else None
        outs, new_k, new_v = torch.vmap(one, in_dims=(0, 0, pk_dim, pk_dim), randomness="different")(
            params, buffers, past_k, past_v)
        if cache is not None:  # write each member's new states into its own slot, the real way
            for j, slot in enumerate(self.slots):
                cache.update(new_k[j], new_v[j], slot)
        self.tuple_len = extra.get("tuple_len")
        return list(outs.unbind(0))


# ---- the group --------------------------------------------------------------------------------------
class BatchedGroup:
    """The batched runner of one parallel group, shared (as a plain object) by its member entries.

    ``members`` are (position in group, layer module, cache slot, kind) in entry order; members
    of one kind (layer type and ``layer_signature``) run as one vmapped call.
    ``output(position, ...)`` returns that member's output hidden state, computing its whole class
    on first request, or ``None`` when the class runs as the loop.
    """

    def __init__(self, members: list[tuple[int, nn.Module, int, Any]]):
        by_type: dict[Any, list] = {}
        for pos, layer, slot, kind in members:
            by_type.setdefault(kind, []).append((pos, layer, slot))
        self.classes: dict[int, _BatchClass] = {}
        for rows in by_type.values():
            layers = [r[1] for r in rows]
            cls = _BatchClass([r[0] for r in rows], layers, [r[2] for r in rows])
            reason = _structure_mismatch(layers)
            if reason or len(rows) < 2:
                cls.broken = reason or "a class of one member runs as is"
            for r in rows:
                self.classes[r[0]] = cls
        self.results: dict[int, torch.Tensor] = {}
        self.loop_now: set[int] = set()  # ids of classes running as the loop for this call only

    def reset(self):
        self.results, self.loop_now = {}, set()

    def output(self, position: int, hidden, args, kwargs):
        if position in self.results:
            return self.results.pop(position)
        cls = self.classes[position]
        if cls.broken is not None or id(cls) in self.loop_now:
            return None
        try:
            outs = cls.run(hidden, args, kwargs)
        except Unbatchable as e:
            if e.transient:  # this call only (the next may differ, e.g. no outputs recorded)
                self.loop_now.add(id(cls))
                return None
            cls.broken = str(e)
            _warn_once(f"parallel group members {cls.positions} fall back to the loop: {e}")
            return None
        except Exception as e:  # vmap could not run this layer: loop from now on
            cls.broken = f"{type(e).__name__}: {e}"
            _warn_once(f"parallel group members {cls.positions} fall back to the loop: {cls.broken}")
            return None
        for pos, out in zip(cls.positions, outs):
            self.results[pos] = out
        return self.results.pop(position)


_NOT_SETTINGS = {"training", "layer_idx", "layer_index"}


def _setting(value, identities: bool):
    """A hashable stand-in for one plain attribute (objects such as the shared config by identity,
    or by type alone when ``identities`` is off)."""
    if isinstance(value, (bool, int, float, str, type(None))):
        return value
    if isinstance(value, (tuple, list)) and all(isinstance(v, (bool, int, float, str, type(None))) for v in value):
        return tuple(value)
    return ("id", id(value)) if identities else ("object", type(value).__name__)


def layer_signature(layer: nn.Module, identities: bool = True) -> tuple:
    """Everything about a layer other than its weights and its index that its forward may read:
    each submodule's class and plain attributes (SmolLM3 sets ``use_rope`` per layer, Gemma
    ``is_sliding``). Members whose signatures differ must not be merged into one vmapped call,
    which would run every member with the first member's settings."""
    out = []
    for name, module in layer.named_modules():
        settings = tuple(sorted((k, _setting(v, identities)) for k, v in vars(module).items()
                                if not k.startswith("_") and k not in _NOT_SETTINGS
                                and not isinstance(v, (torch.Tensor, nn.Module))))
        out.append((name, type(module).__name__, settings))
    return tuple(out)


def _structure_mismatch(layers: list[nn.Module]) -> str | None:
    first = layers[0]
    shapes = [(n, p.shape, p.dtype, p.device) for n, p in first.named_parameters()]
    bshapes = [(n, b.shape, b.dtype) for n, b in first.named_buffers()]
    for layer in layers[1:]:
        if type(layer) is not type(first):
            return f"members are of different classes ({type(first).__name__}, {type(layer).__name__})"
        if [(n, p.shape, p.dtype, p.device) for n, p in layer.named_parameters()] != shapes:
            return "members' parameters differ in names, shapes, dtypes or devices"
        if [(n, b.shape, b.dtype) for n, b in layer.named_buffers()] != bshapes:
            return "members' buffers differ"
    return None


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)
