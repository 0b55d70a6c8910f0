"""How the plans of a sweep are laid out for one decoding batch: shared prefixes, shared tails, groups.

A decoding step is bound by reading weights, not by arithmetic (a 135M model on this CPU: ~4 ms
per layer forward whether it advances 2 rows or 40), so what a step costs is how many layer
forwards it runs, and the layout's job is to give each layer forward as many rows as possible:

* **Prefix branches** (``Branch``): the plans' trie over their executed steps (``PlanTrie``, as for
  scoring). Plans that start alike run their common first steps as one forward over all their
  rows; a plan's own steps start where it leaves the others.
* **Shared tails** (``Tail``): the paper's variants also *end* alike (every variant with
  parameter N ends with layers ``T-N..T-1``, as does the full model). After each plan has run its
  own middle, the rows of every plan ending with the same steps go through them as one forward.
  A tail is found on the steps after a plan's last branch point (its own remainder), so a step is
  never in a prefix and a tail at once. For the paper's 19 plans at N = 4, 8, 12 on 30 layers this
  takes a step from 406 layer forwards to 303.

Both are exact: a forward computes each row from that row's own state and cache; what rows share
is the weights read. The prefill (bound by arithmetic on ~1,000 prompt positions) needs no tails:
each prefix branch runs once per document, a plan's remainder once per plan, and the decoding
caches of its own part and of its tails are cut from the remainder's prefill cache
(``Layout.sources``).

``plan_groups``/``decode_units`` cut a sweep into groups whose KV fits a memory budget, along the
trie's depth-first order (plans sharing a prefix stay together); the dry run shows the same cut.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Sequence

import torch

from glue_painters.plans import Plan
from glue_painters.prefix_share import PlanTrie

from .generation_cache import growing_cache


@dataclass(eq=False)
class Branch:
    """A run of steps between two branch points of the prefix trie, with the plans below it
    (``lo``..``hi`` in depth-first order) and those ending right after it. For a plan's own last
    branch that continues into a shared ``tail``, ``segment`` is only its own part (None if it has
    none) and ``prefill`` the whole remainder."""

    segment: Plan | None
    lo: int
    hi: int
    ends: list[int]
    children: list["Branch"] = field(default_factory=list)
    prefill: Plan | None = None
    tail: "Tail | None" = None
    cache: object = None

    def __post_init__(self):
        if self.prefill is None:
            self.prefill = self.segment

    def all(self):
        yield self
        for c in self.children:
            yield from c.all()


@dataclass(eq=False)
class Tail:
    """Final steps that the plans ``plans`` (depth-first indices, ascending) all end with, after
    their own steps; ``parent`` is the tail run after this one (None: the plans end here).
    ``offsets[p]``: where this tail's first cache entry sits in plan p's remainder."""

    segment: Plan
    plans: list[int]
    offsets: dict[int, int]
    parent: "Tail | None" = None
    children: list["Tail"] = field(default_factory=list)
    cache: object = None

    def post_order(self):
        """This tail after every tail that runs before it (its children)."""
        for c in self.children:
            yield from c.post_order()
        yield self


@dataclass
class Layout:
    roots: list[Branch]
    ordered: list[Plan]  # the plans in depth-first order: row block p holds plan ordered[p]
    tails: list[Tail]  # the last tails (each the root of the tails running before it)

    def branches(self):
        for root in self.roots:
            yield from root.all()

    def tails_in_order(self):
        """Every tail, each after the tails that feed it."""
        for top in self.tails:
            yield from top.post_order()

    def leaf_of(self, plan: int) -> Branch:
        return next(b for b in self.branches() if b.tail is not None and b.lo == plan)

    def forwards(self):
        """(segment, plan indices) of every layer forward one decoding step runs, in order."""
        for b in self.branches():
            if b.segment is not None:
                yield b.segment, range(b.lo, b.hi)
        for t in self.tails_in_order():
            yield t.segment, t.plans


def layout(plans: Sequence[Plan], share: bool = True, tails: bool = True) -> Layout:
    """The prefix branches and (with ``tails``) shared tails of ``plans`` (duplicates dropped).
    Without ``share`` every plan is its own root branch and nothing is shared."""
    unique = list({p.text: p for p in plans}.values())
    if not share:
        return Layout([Branch(p, i, i + 1, [i]) for i, p in enumerate(unique)], unique, [])
    trie = PlanTrie(unique)
    order: list[str] = []

    def build(node) -> list[Branch]:
        out = []
        for edge in trie.edges(node):
            lo, ends = len(order), []
            for text in edge.child.ends:
                ends.append(len(order))
                order.append(text)
            children = build(edge.child)
            out.append(Branch(Plan(tuple(edge.units)), lo, len(order), ends, children))
        return out

    roots = build(trie.root)
    ordered = [trie.plans[t] for t in order]
    if not tails:
        return Layout(roots, ordered, [])
    leaves = {b.lo: b for r in roots for b in r.all() if not b.children and b.hi - b.lo == 1}
    return Layout(roots, ordered, _tails(leaves, {id(r) for r in roots}))


def _tails(leaves: dict[int, Branch], roots: set[int]) -> list[Tail]:
    """Shared tails over the plans' own remainders (a suffix trie, runs shared by one set of two
    or more plans); cuts each leaf into its own part and its tails. A plan alone from its first
    step keeps that step as its own (a tail is fed a hidden state, never token ids)."""
    remainders = {p: list(b.segment.units()) for p, b in leaves.items()}
    room = {p: len(remainders[p]) - (id(leaves[p]) in roots) for p in leaves}  # units a tail may take

    def grow(plans: list[int], depth: int, parent: Tail | None) -> list[Tail]:
        """Tails starting ``depth`` units before the end of the remainders of ``plans``."""
        groups: dict = {}
        for p in plans:
            if room[p] > depth:
                groups.setdefault(remainders[p][-1 - depth], []).append(p)
        out = []
        for members in groups.values():
            if len(members) < 2:
                continue
            length = 1  # extend while every member goes on with the same unit
            while all(room[p] > depth + length for p in members) and \
                    len({remainders[p][-1 - depth - length] for p in members}) == 1:
                length += 1
            units = remainders[members[0]][len(remainders[members[0]]) - depth - length:
                                          len(remainders[members[0]]) - depth]
            tail = Tail(Plan(tuple(units)), sorted(members), {}, parent)
            for p in members:
                start = len(remainders[p]) - depth - length
                tail.offsets[p] = Plan(tuple(remainders[p][:start])).executions if start else 0
            tail.children = grow(members, depth + length, tail)
            out.append(tail)
        return out

    tops = grow(sorted(leaves), 0, None)
    for top in tops:
        for tail in top.post_order():
            for p in tail.plans:
                leaf = leaves[p]
                if leaf.tail is None or tail.offsets[p] < leaf.tail.offsets[p]:
                    leaf.tail = tail  # the earliest tail the plan runs: its own part feeds it
    for p, leaf in leaves.items():
        if leaf.tail is not None:
            own = remainders[p][:_units_before(remainders[p], leaf.tail.offsets[p])]
            leaf.segment = Plan(tuple(own)) if own else None
    return tops


def _units_before(units: list, executions: int) -> int:
    """How many of ``units`` come before the cache entry ``executions``."""
    count = 0
    for n, unit in enumerate(units):
        if count == executions:
            return n
        count += Plan((unit,)).executions
    return len(units)


def branches(plans: Sequence[Plan], share: bool = True) -> tuple[list[Branch], list[Plan]]:
    """The prefix trie's branches (roots) and the plans in depth-first order (each branch's plans
    are then one contiguous range), without tails."""
    lay = layout(plans, share, tails=False)
    return lay.roots, lay.ordered


def cache_keyword(model) -> str:
    """The cache argument of the model's forward (transformers 5.24 renamed it; read, not assumed)."""
    params = inspect.signature(model.base_model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def kv_bytes_per_token(model) -> int:
    """Bytes of K and V one token leaves in one layer's cache, measured on the model itself (a
    one-token forward), so grouped-query, latent or odd attention come out right."""
    from glue_painters.rewire import num_layers

    device = next(model.parameters()).device
    cache = growing_cache(num_layers(model), 1)
    with torch.no_grad():
        model.base_model(input_ids=torch.zeros((1, 1), dtype=torch.long, device=device),
                         **{cache_keyword(model): cache}, use_cache=True)
    sizes = [layer.keys.numel() * layer.keys.element_size() + layer.values.numel() * layer.values.element_size()
             for layer in cache.layers if layer.is_initialized]
    return max(sizes) if sizes else 0


def kv_bytes_from_config(config, dtype_bytes: int) -> int:
    """The same from a config alone (the dry run has no weights): K and V of every key/value head."""
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    heads = config.num_attention_heads
    kv = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return 2 * kv * head_dim * dtype_bytes


def group_bytes(plans: Sequence[Plan], rows: int, length: int, per_token: int) -> int:
    """KV bytes of decoding ``plans`` together on ``rows`` documents of ``length`` positions."""
    roots, _ = branches(plans)
    return sum(b.segment.executions * (b.hi - b.lo) * rows * length * per_token
               for r in roots for b in r.all())


def plan_groups(plans: Sequence[Plan], rows: int, length: int, per_token: int,
                budget: int | None) -> list[list[Plan]]:
    """The plans cut into consecutive groups (depth-first trie order keeps shared prefixes
    together) whose KV fits ``budget`` bytes; a plan that alone exceeds it runs alone."""
    _, ordered = branches(plans)
    if budget is None:
        return [ordered] if ordered else []
    groups: list[list[Plan]] = []
    for plan in ordered:
        if groups and group_bytes(groups[-1] + [plan], rows, length, per_token) <= budget:
            groups[-1].append(plan)
        else:
            groups.append([plan])
    return groups


def decode_units(shapes: Sequence[tuple[int, int, int]], plans: Sequence[Plan], per_token: int,
                 budget: int | None) -> list[tuple[tuple[int, ...], list[Plan]]]:
    """Work units in order: (prompt batches decoded together, plan group). ``shapes``: per prompt
    batch (documents, padded width, tokens to generate). Prompt batches join one decoding batch
    while the costliest plan alone still fits the budget; the plans are then cut into groups that
    fit (``plan_groups``). Also what the dry run shows."""
    def size(chunk):
        return sum(shapes[i][0] for i in chunk), max(shapes[i][1] for i in chunk) + max(shapes[i][2] for i in chunk)

    widest = max(plans, key=lambda p: p.executions)
    chunks: list[list[int]] = []
    for index in range(len(shapes)):
        grown = (chunks[-1] if chunks else []) + [index]
        if chunks and (budget is None or group_bytes([widest], *size(grown), per_token) <= budget):
            chunks[-1] = grown
        else:
            chunks.append([index])
    return [(tuple(chunk), group) for chunk in chunks for group in plan_groups(plans, *size(chunk), per_token, budget)]


