"""The KV cache of one branch of the plan trie while many (plan, document) rows decode through it.

Why a cache of our own (a ``transformers`` cache layer, its public extension point, not a patch):
``DynamicLayer`` grows by ``torch.cat`` - every decoding step copies the whole past of every
layer, which at a sweep's row count (plans x documents) costs more than the step itself. A
``GrowingLayer`` allocates its buffer once (prompt + the tokens to generate) and writes each step
in place; ``update`` returns the same thing ``DynamicLayer.update`` returns (the whole past, exactly
as long as it is, as a view), so masks and attention see what they see under stock generation.

Sliding-window layers keep the whole past too (no eviction): the model's sliding mask hides what
a window cache would have dropped, so the attention result is the same up to float rounding
(tests compare in float64).

Two operations the engine needs and a plain cache lacks:

* ``assemble_cache``: a branch's prompt is prefilled once per document (the plans below the branch
  share it; each prompt batch as ``generate`` would see it), then each of those plans' rows gets
  the document's prompt KV, batches of other widths left padded to one width; a shared tail's
  rows get their entries from each plan's prefilled remainder;
* ``compact``: rows whose generation stopped leave the batch; their KV is squeezed out in place.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import Cache, DynamicLayer


class GrowingLayer(DynamicLayer):
    """``DynamicLayer``'s answers from a buffer allocated once: ``[rows, heads, capacity, dim]``."""

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = capacity
        self.length = 0
        self.rows = 0
        self.key_buffer: torch.Tensor | None = None
        self.value_buffer: torch.Tensor | None = None

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        rows, heads, _, kdim = key_states.shape
        self._allocate(rows, heads, kdim, value_states.shape[1], value_states.shape[-1], key_states)

    def _allocate(self, rows, kheads, kdim, vheads, vdim, like: torch.Tensor) -> None:
        self.device = like.device
        self.key_buffer = torch.empty((rows, kheads, self.capacity, kdim), dtype=like.dtype, device=like.device)
        self.value_buffer = torch.empty((rows, vheads, self.capacity, vdim), dtype=like.dtype, device=like.device)
        self.rows = rows
        self.is_initialized = True
        self._views()

    def _views(self) -> None:
        self.keys = self.key_buffer[:self.rows, :, :self.length]
        self.values = self.value_buffer[:self.rows, :, :self.length]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        n, q = self.length, key_states.shape[-2]
        if key_states.shape[0] != self.rows or n + q > self.capacity:
            raise RuntimeError(f"GrowingLayer: {key_states.shape[0]} rows x {n + q} positions do not fit its "
                               f"{self.rows} rows x {self.capacity} positions")
        self.key_buffer[:self.rows, :, n:n + q] = key_states
        self.value_buffer[:self.rows, :, n:n + q] = value_states
        self.length = n + q
        self._views()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def compact(self, keep: torch.Tensor) -> None:
        """Keep rows ``keep`` (ascending) at the front of the buffer, in place."""
        index = keep.to(self.key_buffer.device)
        n = self.length
        self.key_buffer[:len(keep), :, :n] = self.key_buffer[index, :, :n]
        self.value_buffer[:len(keep), :, :n] = self.value_buffer[index, :, :n]
        self.rows = len(keep)
        self._views()

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self.compact(torch.as_tensor(indices))


def growing_cache(entries: int, capacity: int) -> Cache:
    """A cache of ``entries`` growing layers (one per executed step of a rewired branch)."""
    return Cache(layers=[GrowingLayer(capacity) for _ in range(entries)])


def compact_cache(cache: Cache, keep: torch.Tensor) -> None:
    for layer in cache.layers:
        layer.compact(keep)


def cache_bytes(cache: Cache) -> int:
    return sum(t.numel() * t.element_size() for layer in cache.layers
               for t in (layer.key_buffer, layer.value_buffer) if t is not None)


def assemble_cache(blocks: list[tuple[list[tuple[Cache, int]], int]], docs: int, width: int, capacity: int,
                   entries: int) -> Cache:
    """One decoding cache of ``entries`` layers for ``len(blocks)`` x ``docs`` rows, from prompt
    batches prefilled apart. Row block k (one plan's documents) takes ``blocks[k] = (parts,
    first)``: each prompt batch's prefill cache with the index of its first document, read from
    layer ``first`` on (a tail's entries sit inside each plan's prefilled remainder). A batch
    narrower than ``width`` is left padded in place (zeros, which the attention mask hides), so
    every row's next position is ``width``."""
    layers = []
    rows = len(blocks) * docs
    for j in range(entries):
        kb, vb = (getattr(blocks[0][0][0][0].layers[blocks[0][1] + j], n) for n in ("key_buffer", "value_buffer"))
        out = GrowingLayer(capacity)
        out.length = width
        out.key_buffer = kb.new_zeros((rows, kb.shape[1], capacity, kb.shape[-1]))
        out.value_buffer = vb.new_zeros((rows, vb.shape[1], capacity, vb.shape[-1]))
        out.rows, out.device, out.is_initialized = rows, kb.device, True
        for k, (parts, first) in enumerate(blocks):
            for cache, offset in parts:
                src = cache.layers[first + j]
                n, w = src.rows, src.length
                start = k * docs + offset
                out.key_buffer[start:start + n, :, width - w:width] = src.keys
                out.value_buffer[start:start + n, :, width - w:width] = src.values
        out._views()
        layers.append(out)
    return Cache(layers=layers)
