"""The KV cache as one executed layer must see it: every layer index means that entry's own slot.

Attention modules write ``cache.update(k, v, self.layer_idx)`` with the layer's *original* index,
not the step it runs at; under a plan that repeats or reorders layers the two differ. Each entry
of a rewired layer list therefore hands its layer a ``SlotCache`` view instead of the real cache.

Robust by construction, not by names:

* The cache is found **by type**: whatever argument of the layer call (keyword of any name, or
  positional as GPT-2's blocks get it) holds an instance of ``transformers.cache_utils.Cache`` is
  what gets wrapped (``locate_cache``). A cache hidden in a container, or two caches, is refused.
* The view remaps **by signature**: any method of the real cache that takes a ``layer_idx``
  parameter (inspected at run time, once per cache class and method) is called with the entry's
  slot; per-layer lists (``cache.layers``, ``cache.is_sliding``) answer with the slot's element;
  a cache held inside the cache (an encoder-decoder cache's parts) is returned as a view too.
* **A guard** (``SlotGuard``) checks after each layer call that the layer did not write the slot
  of its original index behind the view's back (the silent failure of a keyword rename). If it
  did, the call raises ``CacheBypassError`` instead of returning a wrong number.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch

from .architectures import RewireError

try:
    from transformers.cache_utils import Cache
except Exception as e:  # pragma: no cover - transformers without cache_utils is not supported
    raise ImportError(f"glue-painters needs transformers.cache_utils.Cache ({e})") from e


class CacheBypassError(RewireError):
    """A layer reached the KV cache without going through its slot view: refusing to compute."""


@dataclass(frozen=True)
class CacheSite:
    """Where one layer call carries its cache: a position in ``args`` (counted after the hidden
    states) or a keyword."""

    position: int | None = None
    keyword: str | None = None

    def replace(self, args: tuple, kwargs: dict, value) -> tuple[tuple, dict]:
        if self.keyword is not None:
            return args, dict(kwargs, **{self.keyword: value})
        return args[:self.position] + (value,) + args[self.position + 1:], kwargs

    def remove(self, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        """The call without the cache (``None`` in its place)."""
        return self.replace(args, kwargs, None)


def _holds_cache(value) -> bool:
    if isinstance(value, (list, tuple)):
        return any(isinstance(v, Cache) for v in value)
    if isinstance(value, dict):
        return any(isinstance(v, Cache) for v in value.values())
    return False


def locate_cache(args: tuple, kwargs: dict) -> tuple[CacheSite | None, Any]:
    """The site and the real cache of one layer call (``(None, None)`` when it has no cache).

    Raises when the call holds a cache this module cannot give a slot view of (inside a container,
    or two of them): better no number than one computed on the wrong slots.
    """
    found = []
    for i, a in enumerate(args):
        if isinstance(a, Cache):
            found.append((CacheSite(position=i), a))
        elif isinstance(a, SlotCache):
            raise CacheBypassError("a layer call already holds a slot view: a rewired list inside a rewired list")
        elif _holds_cache(a):
            raise CacheBypassError(f"argument {i + 1} of a layer call holds a KV cache inside a container; "
                                   "glue-painters cannot give it a per-step slot, so it refuses to run")
    for k, v in kwargs.items():
        if isinstance(v, Cache):
            found.append((CacheSite(keyword=k), v))
        elif _holds_cache(v):
            raise CacheBypassError(f"keyword '{k}' of a layer call holds a KV cache inside a container; "
                                   "glue-painters cannot give it a per-step slot, so it refuses to run")
    if len(found) > 1:
        raise CacheBypassError("a layer call receives two KV caches; glue-painters cannot tell which to remap")
    return found[0] if found else (None, None)


# ---- the view -----------------------------------------------------------------------------------
_LAYER_IDX: dict[tuple[type, str], int | None] = {}  # (cache class, method) -> position of layer_idx


def _layer_idx_position(cache, name: str, method) -> int | None:
    """Where ``layer_idx`` sits among the method's parameters (None: it has none), inspected once
    per cache class: the remap follows the real signature, whatever upstream does to it."""
    key = (type(cache), name)
    if key not in _LAYER_IDX:
        try:
            params = list(inspect.signature(method).parameters)
        except (TypeError, ValueError):
            params = []
        _LAYER_IDX[key] = params.index("layer_idx") if "layer_idx" in params else None
    return _LAYER_IDX[key]


class _SlotMethod:
    """A bound method of the real cache with its ``layer_idx`` argument set to the slot."""

    __slots__ = ("method", "position", "slot")

    def __init__(self, method, position: int, slot: int):
        self.method, self.position, self.slot = method, position, slot

    def __call__(self, *args, **kwargs):
        if "layer_idx" in kwargs or len(args) <= self.position:
            kwargs["layer_idx"] = self.slot
        else:
            args = args[:self.position] + (self.slot,) + args[self.position + 1:]
        return self.method(*args, **kwargs)


class _SlotList:
    """A per-layer list seen from one layer: any index is the slot's element."""

    __slots__ = ("items", "slot")

    def __init__(self, items, slot: int):
        self.items, self.slot = items, slot

    def __getitem__(self, index):
        if isinstance(index, slice):
            raise CacheBypassError("a layer sliced a per-layer list of the KV cache; refusing to guess its slots")
        return self.items[self.slot]

    def __len__(self):
        return len(self.items)

    def __iter__(self):
        raise CacheBypassError("a layer iterated over every layer of the KV cache; refusing to guess its slots")


class SlotCache:
    """A view of a cache in which every layer index means one fixed slot; all else is the cache's."""

    __slots__ = ("_cache", "_slot")

    def __init__(self, cache, slot: int):
        self._cache = cache
        self._slot = slot

    def update(self, key_states, value_states, layer_idx=None, *args, **kwargs):
        # the hot path, spelled out; its signature is checked like every other method's
        real = self._cache.update
        position = _layer_idx_position(self._cache, "update", real)
        if position != 2:
            raise CacheBypassError(
                f"{type(self._cache).__name__}.update no longer takes (key_states, value_states, "
                "layer_idx, ...): this transformers release changed the cache API glue-painters remaps")
        return real(key_states, value_states, self._slot, *args, **kwargs)

    def __getattr__(self, name):
        if name in SlotCache.__slots__:  # not set yet (torch.compile builds it field by field): no recursion
            raise AttributeError(name)
        value = getattr(self._cache, name)
        if isinstance(value, Cache):
            return SlotCache(value, self._slot)
        if callable(value) and not isinstance(value, type):
            position = _layer_idx_position(self._cache, name, value)
            return value if position is None else _SlotMethod(value, position, self._slot)
        if isinstance(value, (list, tuple)) and len(value) == len(getattr(self._cache, "layers", ())) > 0:
            return _SlotList(value, self._slot)
        return value


# ---- the guard ----------------------------------------------------------------------------------
def _state(layer) -> tuple:
    """What changes when a cache layer is written: its tensors (by identity and in-place version)
    and its counters. The tensors themselves are held, so no identity can be reused meanwhile.
    (Inference-mode tensors keep no version: for them identity and counters must do.)"""
    out = []
    for key, value in vars(layer).items():
        if isinstance(value, torch.Tensor):
            out.append((key, value, None if value.is_inference() else value._version))
        elif isinstance(value, (bool, int)):
            out.append((key, value, None))
    return tuple(out)


def _same(a: tuple, b: tuple) -> bool:
    if len(a) != len(b):
        return False
    for (ka, va, ra), (kb, vb, rb) in zip(a, b):
        if ka != kb or ra != rb or (va is not vb if isinstance(va, torch.Tensor) else va != vb):
            return False
    return True


class SlotGuard:
    """Checks one layer call for writes to its *original* index's slot (where a write that
    bypassed the view lands), when that slot is not the entry's own."""

    __slots__ = ("cache", "watched", "before")

    def __init__(self, cache, slot: int, layer_index: int):
        layers = getattr(cache, "layers", None)
        self.cache = cache
        self.watched = layer_index if layers is not None and layer_index != slot else None
        self.before = _state(layers[layer_index]) if self.watched is not None and layer_index < len(layers) else None

    def check(self, what: str) -> None:
        layers = getattr(self.cache, "layers", None)
        if self.watched is None or layers is None:
            return
        now = _state(layers[self.watched]) if self.watched < len(layers) else None
        if (self.before is None) != (now is None) or (now is not None and not _same(self.before, now)):
            raise CacheBypassError(
                f"{what} wrote KV-cache slot {self.watched} (its original index) without going through its "
                "slot view: this transformers release passes the cache in a way glue-painters does not "
                "remap. Refusing to return numbers computed on the wrong cache slots.")
