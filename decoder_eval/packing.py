"""Rows and batches for loglikelihood scoring: one forward per shared context.

Why: a multiple-choice item asks for several continuations of one context (ARC: 4 answers after
one question; HellaSwag: 4 endings after one story; WinoGrande: two contexts that share their
first words). Scoring each request as its own sequence, as lm-eval does, runs the shared tokens
once per choice. Here the requests of one item are merged into a **token trie** laid out as one
row: shared prefixes appear once, every token attends to its ancestors in the trie (a 4-D
attention mask) and gets its depth as position id. Each token then sees exactly the tokens it
would see in its own sequence, at the same positions, so the logits are the same up to float
rounding (tests hold them to 1e-5).

Rows are then filled with several items (first fit, longest first, up to ``ROW_TOKENS`` tokens or
the longest item): each item keeps its own positions and sees only itself, so nothing changes
for the numbers, but a batch of rows of nearly equal length wastes almost nothing on padding
(with one item per row, padding was a quarter of the tokens on our benchmarks).

Where the mask trick is not safe the requests stay separate, each in its own row, right-padded
and without a mask, exactly lm-eval's layout:

* attention implementations other than ``sdpa``/``eager`` (flash attention takes no 4-D mask);
* sequences longer than a sliding window (the 4-D mask replaces the model's own window mask);
* ``pack=False``.

Rows are sorted longest first (as lm-eval's Collator does, so the first batch shows the memory
peak) and cut into batches of ``batch_size`` rows; a batch is built once and reused for every
plan of a sweep.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .encoding import Encoder, EncodedPair

PACKING_ATTENTION = ("sdpa", "eager")
ROW_TOKENS = 256  # tokens per packed row: long enough to fill, short enough that masked attention stays cheap


@dataclass
class Target:
    """One request's scoring spots in its row: the node whose logits predict each token."""

    request: int  # global request id
    nodes: list[int]
    tokens: list[int]


@dataclass
class Row:
    tokens: list[int] = field(default_factory=list)
    parents: list[int] = field(default_factory=list)  # -1 for a root token
    depth: list[int] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    _children: dict = field(default_factory=dict, repr=False)

    @property
    def branched(self) -> bool:
        """True when the row is not a plain sequence (some token is not its predecessor's child)."""
        return any(p != i - 1 for i, p in enumerate(self.parents))

    def add(self, sequence: list[int]) -> list[int]:
        """Insert a token sequence into the trie; returns the node index of each of its tokens."""
        node, path = -1, []
        for tok in sequence:
            key = (node, tok)
            child = self._children.get(key)
            if child is None:
                child = len(self.tokens)
                self._children[key] = child
                self.tokens.append(tok)
                self.parents.append(node)
                self.depth.append(0 if node < 0 else self.depth[node] + 1)
            node = child
            path.append(node)
        return path

    def extend(self, other: "Row") -> None:
        """Append another row's tokens as separate trees (they see nothing of this row's)."""
        offset = len(self.tokens)
        self.tokens += other.tokens
        self.parents += [p + offset if p >= 0 else -1 for p in other.parents]
        self.depth += other.depth
        self.targets += [Target(t.request, [n + offset for n in t.nodes], t.tokens) for t in other.targets]


@dataclass
class Batch:
    """Model inputs for a group of rows, plus where each request's scores are read."""

    input_ids: torch.Tensor  # (B, P)
    position_ids: torch.Tensor | None  # (B, P), None for plain right-padded rows
    attention_mask: torch.Tensor | None  # (B, 1, P, P) trie mask, None for plain rows
    rows: torch.Tensor  # (R,) batch row of every scored position
    nodes: torch.Tensor  # (R,) node index of every scored position
    tokens: torch.Tensor  # (R,) the token each scored position should predict
    spans: list[tuple[int, int, int]]  # (request id, start, end) into the scored positions
    n_tokens: int
    lengths: tuple[int, ...] = ()  # real tokens of each row (the rest is padding): for work accounting

    def to(self, device) -> "Batch":
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return Batch(move(self.input_ids), move(self.position_ids), move(self.attention_mask),
                     move(self.rows), move(self.nodes), move(self.tokens), self.spans, self.n_tokens, self.lengths)


def can_pack(model) -> bool:
    """Packed rows restart positions inside a row (``position_ids``) and mask across items (a 4-D
    mask): only an attention implementation that takes such a mask, in a model whose forward
    takes ``position_ids`` by name (BLOOM's ALiBi forward has none and fails on packed rows; a
    forward taking them only through ``**kwargs`` could drop them without a word)."""
    import inspect

    if "position_ids" not in inspect.signature(model.forward).parameters:
        return False
    return getattr(model.config, "_attn_implementation", None) in PACKING_ATTENTION


def sliding_window(model) -> int | None:
    """The smallest attention window of any layer (None when every layer sees everything)."""
    window = getattr(model.config, "sliding_window", None)
    types = getattr(model.config, "layer_types", None)
    if window and (types is None or any("sliding" in t for t in types)):
        return int(window)
    return None


def _fill(rows: list[Row], capacity: int) -> list[Row]:
    """Spread whole item rows over ceil(total / capacity) rows, longest item first onto the
    shortest row (LPT scheduling): the rows come out nearly equal, so a batch pads little."""
    import heapq

    total = sum(len(r.tokens) for r in rows)
    count = max(1, -(-total // capacity))
    bins = [(0, i, Row()) for i in range(count)]
    for row in sorted(rows, key=lambda r: (-len(r.tokens), r.tokens)):
        size, i, home = heapq.heappop(bins)
        home.extend(row)
        heapq.heappush(bins, (size + len(row.tokens), i, home))
    return [home for _, _, home in sorted(bins, key=lambda b: b[1]) if home.tokens]


def build_rows(groups: list[list[EncodedPair]], encoder: Encoder, pack: bool, window: int | None,
               row_tokens: int = ROW_TOKENS) -> list[Row]:
    """When packing: one trie per group (item), several items per row. Otherwise (or where a
    sliding window forbids it) one plain row per request. Request ids count up over ``groups``."""
    rows: list[Row] = []
    packed: list[Row] = []
    request = 0
    for pairs in groups:
        inputs = []
        for pair in pairs:
            if not pair.continuation:
                raise ValueError("a continuation encoded to zero tokens")
            if len(pair.continuation) > encoder.max_length:
                raise ValueError(f"continuation of {len(pair.continuation)} tokens exceeds the model's "
                                 f"maximum length {encoder.max_length}")
            inputs.append(encoder.model_input(pair))
        fits = window is None or max(len(x) for x in inputs) <= window
        shared = Row() if pack and fits else None
        for pair, seq in zip(pairs, inputs):
            row = shared if shared is not None else Row()
            path = row.add(seq)
            n = len(pair.continuation)
            row.targets.append(Target(request, path[len(seq) - n:], list(pair.continuation)))
            request += 1
            if shared is None:
                rows.append(row)
        if shared is not None:
            packed.append(shared)
    if packed:
        rows += _fill(packed, max(row_tokens, max(len(r.tokens) for r in packed)))
    return rows


def _ancestor_mask(row: Row, size: int) -> torch.Tensor:
    """(size, size) bool: token i may attend to token j iff j is i or an ancestor of i; padding
    positions attend only to themselves (a fully masked query row would make NaNs)."""
    mask = torch.eye(size, dtype=torch.bool)
    for i, parent in enumerate(row.parents):
        if parent >= 0:
            mask[i] |= mask[parent]
    return mask


def make_batches(rows: list[Row], batch_size: int, pad_id: int, mask_dtype=None) -> list[Batch]:
    """Sort rows longest first and cut them into batches. ``mask_dtype``: None for a boolean
    mask (sdpa), or a float dtype for an additive mask (eager attention)."""
    order = sorted(range(len(rows)), key=lambda i: (-len(rows[i].tokens), rows[i].tokens))
    batches = []
    for start in range(0, len(order), batch_size):
        chunk = [rows[i] for i in order[start:start + batch_size]]
        width = max(len(r.tokens) for r in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        branched = any(r.branched for r in chunk)
        pos = torch.zeros((len(chunk), width), dtype=torch.long) if branched else None
        mask = torch.zeros((len(chunk), 1, width, width), dtype=torch.bool) if branched else None
        b_rows, b_nodes, b_tokens, spans = [], [], [], []
        for b, row in enumerate(chunk):
            n = len(row.tokens)
            ids[b, :n] = torch.tensor(row.tokens)
            if branched:
                pos[b, :n] = torch.tensor(row.depth)
                mask[b, 0] = _ancestor_mask(row, width)
            for t in row.targets:
                start_ix = len(b_nodes)
                b_rows += [b] * len(t.nodes)
                b_nodes += t.nodes
                b_tokens += t.tokens
                spans.append((t.request, start_ix, len(b_nodes)))
        if mask is not None and mask_dtype is not None:
            mask = torch.zeros(mask.shape, dtype=mask_dtype).masked_fill(~mask, torch.finfo(mask_dtype).min)
        batches.append(Batch(ids, pos, mask, torch.tensor(b_rows), torch.tensor(b_nodes),
                             torch.tensor(b_tokens), spans, sum(len(r.tokens) for r in chunk),
                             tuple(len(r.tokens) for r in chunk)))
    return batches
