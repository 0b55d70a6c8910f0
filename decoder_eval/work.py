"""Work accounting for a sweep: the floating-point work it must do against what the engine runs.

Why: a speed-up over stock lm-eval says nothing about how close the engine is to the machine.
Counting the work gives the two numbers that do: executed / required (how much the engine does
that no engine would have to) and required FLOPs / wall time against the measured matmul rate.

**Required** is a property of the sweep, not of our engine:

* every distinct (layer execution, token): a layer run on a state that several plans reach is
  counted once (perfect prefix sharing across plans). Sharing is by the *input state*, not by the
  plan step, so a parallel group's member ``i`` on the state after ``0..N`` is the same work as a
  plain step ``Layer(i)`` there (the full model's next layer, a reversed middle's first layer);
* tokens are the distinct tokens of each item's trie (``packing``): no padding;
* attention: each token against its ancestors only (query x key pairs, QK^T and AV);
* LM head: logits only at the scored positions, each distinct (row, node) once per plan.

**Executed** is what the engine runs on its prepared batches: padded ``B x P`` tokens per layer
execution, the trie's executions (members of a group computed apart from equal single steps),
attention over the whole masked ``P x P`` block (the CPU kernel computes masked blocks; a plain
batch without a mask runs causal, half of it), the head at every gathered position (duplicates
included); without prefix sharing every plan from scratch with logits at every position.

FLOPs are multiply-adds x 2 of the matmuls: a layer's linear weights (counted from the layer
modules, so GQA, MoE-free variants and odd MLPs come out right; one token through layer ``i``
costs ``2 x params(i)``), ``4 x heads x head_dim`` per attention pair, ``2 x hidden x vocab`` per
logit row. Norms, rotary tables, softmax and the embedding lookup are O(hidden) per token and left
out (they show up as time, not FLOPs). Generation (``generation_work``) counts its prefill per
distinct layer state, each row's decode steps (known once it ran: when each row stops), the
engine's padding and finished rows still in the batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch

from glue_painters.plans import Parallel, Plan

PHASES = ("prefix", "suffix", "attention", "lm_head", "generation")


@dataclass(frozen=True)
class Shapes:
    """What the counts need of a model: per-layer linear parameters and attention/head sizes."""

    layer_params: tuple[int, ...]  # linear weight elements of each original layer
    heads: int
    head_dim: int
    hidden: int
    vocab: int  # rows of the output head (a classifier's labels for an encoder)
    layer_io: tuple[int, ...] = ()  # sum of (in + out) features over each layer's linears: activation traffic
    causal: bool = True  # False: every token attends to its whole row (an encoder)

    @classmethod
    def of(cls, model, causal: bool = True, head_rows: int | None = None) -> "Shapes":
        """From a (possibly meta-device) model: its own modules, whatever the architecture."""
        from glue_painters.rewire import original_layers

        config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
        linears = [[m for m in layer.modules() if isinstance(m, torch.nn.Linear)] for layer in original_layers(model)]
        params = tuple(sum(m.weight.numel() for m in ms) for ms in linears)
        io = tuple(sum(m.in_features + m.out_features for m in ms) for ms in linears)
        heads = config.num_attention_heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        vocab = head_rows or (out.weight.shape[0] if out is not None else config.vocab_size)
        return cls(params, heads, head_dim, config.hidden_size, vocab, io, causal)

    @classmethod
    def from_config(cls, config, causal: bool = True, head_rows: int | None = None) -> "Shapes":
        """Without weights: the model built on the meta device (no memory, no time). An encoder
        (``causal=False``) is built headless; ``head_rows`` is then its classifier's labels."""
        from transformers import AutoModel, AutoModelForCausalLM

        with torch.device("meta"):
            model = (AutoModelForCausalLM if causal else AutoModel).from_config(config)
        return cls.of(model, causal, head_rows)

    def layer_flops(self, layer: int) -> int:
        return 2 * self.layer_params[layer]

    @property
    def pair_flops(self) -> int:
        return 4 * self.heads * self.head_dim

    @property
    def logit_flops(self) -> int:
        return 2 * self.hidden * self.vocab


@dataclass
class Phase:
    required: float = 0.0  # FLOPs
    executed: float = 0.0

    @property
    def ratio(self) -> float:
        return self.executed / self.required if self.required else float("nan")


@dataclass
class Work:
    """Required and executed FLOPs per phase, and the token counts behind them."""

    phases: dict[str, Phase] = field(default_factory=lambda: {p: Phase() for p in PHASES})
    tokens_required: int = 0  # distinct tokens (per pass, not per plan)
    tokens_executed: int = 0  # padded tokens
    executions_required: float = 0.0  # (layer execution, token) pairs
    executions_executed: float = 0.0
    notes: dict = field(default_factory=dict)  # a phase's parts, where a counter splits it (generation)

    @property
    def required(self) -> float:
        return sum(p.required for p in self.phases.values())

    @property
    def executed(self) -> float:
        return sum(p.executed for p in self.phases.values())

    @property
    def ratio(self) -> float:
        return self.executed / self.required if self.required else float("nan")

    def add(self, other: "Work") -> "Work":
        for name, p in other.phases.items():
            self.phases[name].required += p.required
            self.phases[name].executed += p.executed
        self.tokens_required += other.tokens_required
        self.tokens_executed += other.tokens_executed
        self.executions_required += other.executions_required
        self.executions_executed += other.executions_executed
        return self

    def to_json(self) -> dict:
        return {"phases": {k: {"required_flops": p.required, "executed_flops": p.executed,
                               "ratio": round(p.ratio, 4) if p.required else None}
                           for k, p in self.phases.items()},
                "required_flops": self.required, "executed_flops": self.executed, "ratio": round(self.ratio, 4),
                "tokens_required": self.tokens_required, "tokens_executed": self.tokens_executed,
                "layer_executions_required": self.executions_required,
                "layer_executions_executed": self.executions_executed,
                **({"notes": self.notes} if self.notes else {})}


# ---- layer executions per token: (layer, plans served) -------------------------------------------
def _members(unit) -> tuple[int, ...]:
    return unit.members if isinstance(unit, Parallel) else (unit.index,)


def _tree(plans: Sequence[Plan]) -> dict:
    """The plans as a trie over their units: ``{unit: (child, plans below)}``."""
    root: dict = {}
    for plan in plans:
        node = root
        for unit in plan.units():
            child, texts = node.setdefault(unit, ({}, set()))
            texts.add(plan.text)
            node = child
    return root


def required_executions(plans: Sequence[Plan]) -> list[tuple[int, int]]:
    """Each distinct (layer, input state) as ``(layer, plans it serves)``: at every state, one run
    per layer any child step applies to it, be it a single step or a group's member."""
    out: list[tuple[int, int]] = []

    def visit(node: dict) -> None:
        served: dict[int, set] = {}
        for unit, (_, texts) in node.items():
            for layer in _members(unit):
                served.setdefault(layer, set()).update(texts)
        out.extend((layer, len(texts)) for layer, texts in served.items())
        for child, _ in node.values():
            visit(child)

    visit(_tree(list({p.text: p for p in plans}.values())))
    return out


def engine_executions(plans: Sequence[Plan], share: bool = True) -> list[tuple[int, int]]:
    """What the engine runs per token: the trie of ``prefix.PlanTrie`` (one run per member of every
    child step), or with ``share`` off every plan's every step, each serving one plan."""
    unique = list({p.text: p for p in plans}.values())
    if not share:
        return [(layer, 1) for p in unique for u in p.units() for layer in _members(u)]
    out: list[tuple[int, int]] = []

    def visit(node: dict) -> None:
        for unit, (child, texts) in node.items():
            out.extend((layer, len(texts)) for layer in _members(unit))
            visit(child)

    visit(_tree(unique))
    return out


# ---- per batch ------------------------------------------------------------------------------------
def _depths(batch, b: int, n: int) -> torch.Tensor:
    if batch.position_ids is not None:
        return batch.position_ids[b, :n]
    return torch.arange(n)


def _layer_work(work: Work, shapes: Shapes, runs: list[tuple[int, int]], tokens: float, executed: bool) -> None:
    for layer, served in runs:
        flops = shapes.layer_flops(layer) * tokens
        phase = work.phases["prefix" if served > 1 else "suffix"]
        if executed:
            phase.executed += flops
        else:
            phase.required += flops


def loglikelihood_work(shapes: Shapes, plans: Sequence[Plan], prepared, share: bool = True) -> Work:
    """Required and executed work of scoring ``prepared`` (``LoglikelihoodScorer.prepare``) under
    ``plans``; ``share``: whether the engine shares prefixes (the scorer's ``share_prefix``)."""
    unique = list({p.text: p for p in plans}.values())
    need, done = required_executions(unique), engine_executions(unique, share)
    work = Work()
    for batch in prepared.batches:
        rows, width = batch.input_ids.shape
        lengths = batch.lengths or (width,) * rows
        real = sum(lengths)
        if shapes.causal:
            pairs_needed = sum(int(_depths(batch, b, n).add(1).sum()) for b, n in enumerate(lengths))
        else:
            pairs_needed = sum(n * n for n in lengths)  # plain rows only: an encoder sees its whole row
        masked = batch.attention_mask is not None or not shapes.causal
        pairs_run = rows * width * width if masked else rows * width * (width + 1) // 2
        _layer_work(work, shapes, need, real, executed=False)
        _layer_work(work, shapes, done, rows * width, executed=True)
        attention = work.phases["attention"]
        attention.required += len(need) * pairs_needed * shapes.pair_flops
        attention.executed += len(done) * pairs_run * shapes.pair_flops
        scored = len(set(zip(batch.rows.tolist(), batch.nodes.tolist())))
        head = work.phases["lm_head"]
        head.required += len(unique) * scored * shapes.logit_flops
        head.executed += len(unique) * (scored if share else rows * width) * shapes.logit_flops
        work.tokens_required += real
        work.tokens_executed += rows * width
        work.executions_required += len(need) * real
        work.executions_executed += len(done) * rows * width
    return work


def _plan_flops(shapes: Shapes, plan: Plan) -> int:
    return sum(shapes.layer_flops(layer) for u in plan.units() for layer in _members(u))


def generation_work(shapes: Shapes, plans: Sequence[Plan], prepared, generated: dict | None = None,
                    trace: list | None = None) -> Work:
    """Generation of ``prepared`` (``Generator.prepare``) under ``plans``, in the "generation" phase
    (``work.notes`` splits it into prefill, decode and head).

    Required: the prefill once per distinct layer state (``required_executions``) on the real
    prompt tokens, causal pairs only; then, per (plan, request) row, every generated token after
    the first is one decode step through the plan's layers attending to the real prompt and the
    tokens before it; one logit row per generated token. ``generated`` ({plan text: {request:
    tokens}}, ``BatchGenerator.generated``) gives the decode steps; without it only the prefill
    and the first token are counted.

    Executed: with the engine's ``trace`` (``BatchGenerator.trace``) every forward it ran - rows x
    query positions through the branch's layers (left padding and finished rows still in the
    batch included), attention over the whole block when masked (the causal triangle without a
    mask), every logit row; without it, the
    plan-by-plan prefill of stock generation."""
    unique = list({p.text: p for p in plans}.values())
    need = required_executions(unique)
    work = Work()
    notes = {k: {"required": 0.0, "executed": 0.0} for k in ("prefill", "decode", "head")}
    prompt = {}
    for ids, mask, idx in prepared.batches:
        for row, request in enumerate(idx):
            prompt[request] = int(mask[row].sum())
        rows, width = ids.shape
        work.tokens_executed += rows * width
    for n in prompt.values():
        notes["prefill"]["required"] += sum(shapes.layer_flops(layer) for layer, _ in need) * n
        notes["prefill"]["required"] += len(need) * n * (n + 1) // 2 * shapes.pair_flops
        work.tokens_required += n
    for plan in unique:
        flops, execs = _plan_flops(shapes, plan), plan.executions
        for request, n in prompt.items():
            made = (generated or {}).get(plan.text, {}).get(request, 1)
            steps = max(made - 1, 0)
            notes["decode"]["required"] += flops * steps
            notes["decode"]["required"] += execs * sum(n + t for t in range(1, steps + 1)) * shapes.pair_flops
            notes["head"]["required"] += max(made, 1) * shapes.logit_flops
    if trace is not None:
        for entry in trace:
            if entry[0] == "head":
                notes["head"]["executed"] += entry[1] * shapes.logit_flops
                continue
            _, segment, rows, q, kv, masked = entry
            phase = notes["prefill" if q > 1 else "decode"]
            phase["executed"] += _plan_flops(shapes, segment) * rows * q
            # a mask: the whole block; none: the causal kernel's triangle
            pairs = q * kv if masked else q * (kv - q) + q * (q + 1) // 2
            phase["executed"] += segment.executions * rows * pairs * shapes.pair_flops
    else:
        done = engine_executions(unique, share=False)
        for ids, mask, _ in prepared.batches:
            rows, width = ids.shape
            notes["prefill"]["executed"] += sum(shapes.layer_flops(layer) for layer, _ in done) * rows * width
            notes["prefill"]["executed"] += len(done) * rows * width * width * shapes.pair_flops
            notes["head"]["executed"] += len(unique) * rows * shapes.logit_flops
    gen = work.phases["generation"]
    gen.required = sum(v["required"] for v in notes.values())
    gen.executed = sum(v["executed"] for v in notes.values())
    work.notes = {k: dict(v, ratio=round(v["executed"] / v["required"], 4) if v["required"] else None)
                  for k, v in notes.items()}
    return work


def sweep_work(shapes: Shapes, plans: Sequence[Plan], prepared: Sequence, share: bool = True) -> Work:
    """The whole sweep: ``prepared`` holds each task's prepared batches (loglikelihood or generation)."""
    from .generation import PreparedGeneration

    total = Work()
    for p in prepared:
        total.add(generation_work(shapes, plans, p) if isinstance(p, PreparedGeneration)
                  else loglikelihood_work(shapes, plans, p, share))
    return total


def predict_seconds(shapes: Shapes, plans: Sequence[Plan], prepared, flops: float, bandwidth: float,
                    bytes_per_value: int = 2, share: bool = True) -> dict[str, float]:
    """Roofline time of the engine's executed work on an accelerator doing ``flops`` FLOP/s and
    ``bandwidth`` bytes/s: each layer execution on a batch takes the longer of its matmul FLOPs and
    its traffic (weights once, activations in and out of every linear); attention and the head
    likewise. Why per batch: a small batch on a large model is bandwidth-bound, and that is what a
    first GPU run of a wide sweep with few documents meets. Returns seconds per phase."""
    unique = list({p.text: p for p in plans}.values())
    done = engine_executions(unique, share)
    out = {"prefix": 0.0, "suffix": 0.0, "attention": 0.0, "lm_head": 0.0}
    for batch in prepared.batches:
        rows, width = batch.input_ids.shape
        tokens = rows * width
        for layer, served in done:
            compute = shapes.layer_flops(layer) * tokens / flops
            traffic = (shapes.layer_params[layer] + tokens * shapes.layer_io[layer]) * bytes_per_value / bandwidth
            out["prefix" if served > 1 else "suffix"] += max(compute, traffic)
            pairs = rows * width * width
            kv = 3 * tokens * shapes.heads * shapes.head_dim * bytes_per_value  # q, k, v read once (flash)
            out["attention"] += max(pairs * shapes.pair_flops / flops, kv / bandwidth)
        scored = len(set(zip(batch.rows.tolist(), batch.nodes.tolist())))
        head_traffic = (shapes.hidden * shapes.vocab + scored * (shapes.hidden + shapes.vocab)) * bytes_per_value
        out["lm_head"] += len(unique) * max(scored * shapes.logit_flops / flops, head_traffic / bandwidth)
    return out
