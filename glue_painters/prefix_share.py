"""Run many plans on the same inputs, computing each shared prefix of layers once.

The plans of a sweep mostly agree on their first steps: every paper variant with parameter N
starts with layers ``0..N``, which are also the first steps of the full model and of every variant
with a larger N. The plans form a **trie** over their executed steps (repeats unrolled); walking it
depth first, the hidden state after a shared prefix is computed once and handed to each branch.
A branch (a run of steps between two branch points) is itself a plan, put on the model with
``rewire.rewired``; the model's own forward runs it.

Two ways to start a branch from a hidden state, both used by a track:

- ``run_segment`` (the decoder track's ``decoder_eval.prefix`` and the calibration loss in
  ``scores``) feeds it as ``inputs_embeds``: exact for causal LMs, whose forward does nothing to
  ``inputs_embeds`` before the first layer, and checked per model by ``split_is_exact``;
- ``run_from`` (the GLUE probe) runs the model's ordinary forward from the token ids and replaces
  the *input of the first entry of the rewired layer list* with the hidden state (a forward
  pre-hook on our own ``PlanStep`` module). Whatever the model does before its layers (BERT's
  position and token-type embeddings and LayerNorm, masks) runs as usual and is simply not used
  by the layers, so this is exact for any model ``rewire`` supports; the cost wasted is one
  embedding lookup per branch.

Either way, a forward hook on the last entry of the rewired list captures the branch's output
(before any final norm) for the branches below it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from .plans import Plan
from .rewire import RewiredLayers, rewired


@dataclass
class _Node:
    children: dict = field(default_factory=dict)  # unit -> _Node
    ends: list[str] = field(default_factory=list)  # texts of plans that end here


@dataclass
class Edge:
    """A run of steps from one branch point to the next; ``child`` is where it leads."""

    units: list
    child: "_Node"


class PlanTrie:
    """The plans of a sweep as a trie over their executed steps (repeats unrolled)."""

    def __init__(self, plans: list[Plan], share: bool = True):
        self.plans = {p.text: p for p in plans}
        self.root = _Node()
        self.share = share
        if share:
            for plan in self.plans.values():
                node = self.root
                for unit in plan.units():
                    node = node.children.setdefault(unit, _Node())
                node.ends.append(plan.text)

    def edges(self, node: _Node) -> list[Edge]:
        """Each child path, followed down while it neither branches nor ends a plan."""
        out = []
        for unit, child in node.children.items():
            units = [unit]
            while len(child.children) == 1 and not child.ends:
                (unit, child), = child.children.items()
                units.append(unit)
            out.append(Edge(units, child))
        return out

    def layer_executions(self) -> int:
        """Layer executions per token for one pass over all plans (the work the trie saves shows
        against ``sum(plan.executions)``)."""
        if not self.share:
            return sum(p.executions for p in self.plans.values())

        def count(node):
            return sum(len(getattr(u, "members", (0,))) + count(c) for u, c in node.children.items())

        return count(self.root)

    def walk(self, run_edge: Callable[[Plan, Any, bool], tuple[Any, Any]],
             on_end: Callable[[str, Any], None]) -> None:
        """Depth first over the trie. ``run_edge(segment, state, capture)`` runs one branch from
        ``state`` (``None`` at the root: from the inputs) and returns ``(result, state_after)``
        (``state_after`` is only needed when ``capture``, i.e. when branches continue below);
        ``on_end(text, result)`` is called for each plan that ends there. Only the states on the
        current path are alive at any time."""
        def visit(node: _Node, state):
            for edge in self.edges(node):
                below = bool(edge.child.children)
                result, after = run_edge(Plan(tuple(edge.units)), state, below)
                for text in edge.child.ends:
                    on_end(text, result)
                del result
                if below:
                    visit(edge.child, after)

        visit(self.root, None)


def last_entry(model):
    """The last entry of the rewired layer list now on ``model`` (our ``PlanStep`` module)."""
    layers = next(m for m in model.modules() if isinstance(m, RewiredLayers))
    return layers[len(layers) - 1]


def first_entry(model):
    layers = next(m for m in model.modules() if isinstance(m, RewiredLayers))
    return layers[0]


def run_from(model, segment: Plan, hidden: torch.Tensor | None, capture: bool, forward: Callable[[], Any]):
    """Run ``segment`` through ``forward()`` (the model's own forward from the token ids), its first
    layer fed ``hidden`` instead of the embeddings when given. Returns ``(forward's output, the
    last step's output before any final norm if capture else None)``."""
    captured = {}

    def feed(module, args, kwargs):
        if args:
            return (hidden,) + tuple(args[1:]), kwargs
        return args, dict(kwargs, hidden_states=hidden)

    def grab(module, args, out):
        captured["h"] = out[0] if isinstance(out, tuple) else out

    with rewired(model, segment):
        handles = []
        try:
            if hidden is not None:
                handles.append(first_entry(model).register_forward_pre_hook(feed, with_kwargs=True))
            if capture:
                handles.append(last_entry(model).register_forward_hook(grab))
            out = forward()
        finally:
            for h in handles:
                h.remove()
    return out, captured.get("h")


# ---- causal LMs: a branch fed its start state as ``inputs_embeds`` ---------------------------------

def output_logits(model, hidden: torch.Tensor) -> torch.Tensor:
    """The model's logits from its final-normed hidden states (output embedding, Gemma's soft cap)."""
    logits = model.get_output_embeddings()(hidden)
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


def run_segment(model, segment: Plan, inputs: dict, hidden: torch.Tensor | None, capture: bool):
    """Run ``segment`` from ``hidden`` given as ``inputs_embeds`` (or from the token ids when None).
    Returns the final-normed hidden states and, if ``capture``, the last step's output before the
    final norm (the state the branches below start from)."""
    captured = {}

    def grab(module, args, out):
        captured["h"] = out[0] if isinstance(out, tuple) else out

    with rewired(model, segment):
        handle = last_entry(model).register_forward_hook(grab) if capture else None
        try:
            feed = {"input_ids": inputs["input_ids"]} if hidden is None else {"inputs_embeds": hidden}
            out = model.base_model(**feed, attention_mask=inputs.get("attention_mask"),
                                   position_ids=inputs.get("position_ids"), use_cache=False)
        finally:
            if handle is not None:
                handle.remove()
    return out.last_hidden_state, captured.get("h")


@torch.no_grad()
def split_is_exact(model, inputs: dict, atol: float = 1e-4) -> tuple[bool, float]:
    """Does the full plan run in two pieces (the second fed ``inputs_embeds``) plus
    ``output_logits`` give the model's own logits on ``inputs``? Checked once per model before
    sharing prefixes: a model whose forward transforms ``inputs_embeds`` or its logits otherwise
    is then run plan by plan. Returns (exact, max abs difference)."""
    from .plans import full_plan
    from .rewire import num_layers

    t = num_layers(model)
    with rewired(model, full_plan(t)):
        ref = model(**inputs, use_cache=False).logits.float()
    if t < 2:
        return True, 0.0
    units = list(full_plan(t).units())
    _, state = run_segment(model, Plan(tuple(units[:1])), inputs, None, capture=True)
    final, _ = run_segment(model, Plan(tuple(units[1:])), inputs, state, capture=False)
    diff = (output_logits(model, final).float() - ref).abs().max().item()
    return diff <= atol * max(1.0, ref.abs().max().item()), diff
