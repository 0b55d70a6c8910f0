"""Run many plans on one batch, computing each shared prefix of layers once.

The trie and its walk are shared with the GLUE probe (``glue_painters.prefix_share``).

Why: the plans of a sweep mostly agree on their first steps. Every paper variant with parameter N
starts with layers ``0..N``, which are also the first steps of the full model and of every
variant with a larger N. The plans form a **trie** over their steps; walking it depth first, the
hidden state after a shared prefix is computed once and handed to each branch.

How, without touching the model's code: a branch (a run of steps between two branch points) is
itself a plan. ``glue_painters.rewire.rewired`` puts it on the model, and the model's own base
forward runs it with ``inputs_embeds=<hidden state after the prefix>``. A forward hook on the last
entry of the rewired layer list (our own module, not the model's) captures that branch's output
before the final norm, for the branches below it; the model's ``last_hidden_state`` (after the
final norm) is what the plans ending there are scored on, through the output embedding.

This is exact when the model does nothing to ``inputs_embeds`` before its first layer and its
logits are ``output_embeddings(last_hidden_state)`` (with Gemma's final soft-capping). Gemma 3
scales embeddings inside its embedding module, so the hidden state passes through unscaled, as it
should; GPT-NeoX's embedding dropout is a no-op in eval mode. Tests check Llama, Mistral, Qwen2,
Gemma 3 and GPT-NeoX bit for bit; ``check_exact`` re-checks any model at run time on a short
input and the caller falls back to running every plan from scratch (``model(...).logits``) if the
two paths disagree.
"""

from __future__ import annotations

import contextlib
import time
from typing import Callable

import torch

from glue_painters.prefix_share import PlanTrie, output_logits, run_segment, split_is_exact
from glue_painters.rewire import rewired


Gather = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def walk(model, trie: PlanTrie, inputs: dict, on_plan: Callable[[str, Gather], None],
         timing: dict[str, float] | None = None) -> None:
    """Run every plan of ``trie`` on ``inputs``. As each plan finishes, ``on_plan(text, gather)``
    is called; ``gather(rows, positions)`` returns that plan's logits at those (row, position)
    pairs, so only the positions that are scored go through the output embedding.

    Without sharing (``trie.share`` False, the fallback), each plan runs from the token ids with
    the model's own ``forward`` and its ``.logits``.

    ``timing``: if given, wall seconds are added to it per phase (``work.PHASES``): "prefix" for
    branches that several plans continue from, "suffix" for those one plan ends on, "lm_head"
    for ``on_plan`` (the work accounting sets them against the FLOPs of each phase).
    """
    clock = _Clock(timing)
    if not trie.share:
        for text, plan in trie.plans.items():
            with clock("suffix"), rewired(model, plan):
                logits = model(**inputs, use_cache=False).logits
            with clock("lm_head"):
                on_plan(text, lambda r, n, logits=logits: logits[r, n])
            del logits
        return

    def run_edge(segment, hidden, capture):
        with clock("prefix" if capture else "suffix"):
            return run_segment(model, segment, inputs, hidden, capture)

    def on_end(text, final):
        with clock("lm_head"):
            on_plan(text, lambda r, n, final=final: output_logits(model, final[r, n]))

    trie.walk(run_edge, on_end)


class _Clock:
    """``with clock(phase):`` adds the block's wall time to ``timing[phase]`` (nothing if None)."""

    def __init__(self, timing: dict[str, float] | None):
        self.timing = timing

    @contextlib.contextmanager
    def __call__(self, phase: str):
        if self.timing is None:
            yield
            return
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timing[phase] = self.timing.get(phase, 0.0) + time.perf_counter() - start


def check_exact(model, tokens: list[int], atol: float = 1e-4) -> tuple[bool, float]:
    """``prefix_share.split_is_exact`` on one row of ``tokens``: run once per model before a sweep;
    a model whose forward treats ``inputs_embeds`` or its logits differently from what the walk
    assumes is then evaluated plan by plan instead."""
    device = next(model.parameters()).device
    return split_is_exact(model, {"input_ids": torch.tensor([tokens], device=device)}, atol)
