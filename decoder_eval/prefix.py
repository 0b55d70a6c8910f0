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

from typing import Callable

import torch

from glue_painters.prefix_share import PlanTrie, output_logits, run_segment, split_is_exact
from glue_painters.rewire import rewired


Gather = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def walk(model, trie: PlanTrie, inputs: dict, on_plan: Callable[[str, Gather], None]) -> None:
    """Run every plan of ``trie`` on ``inputs``. As each plan finishes, ``on_plan(text, gather)``
    is called; ``gather(rows, positions)`` returns that plan's logits at those (row, position)
    pairs, so only the positions that are scored go through the output embedding.

    Without sharing (``trie.share`` False, the fallback), each plan runs from the token ids with
    the model's own ``forward`` and its ``.logits``.
    """
    if not trie.share:
        for text, plan in trie.plans.items():
            with rewired(model, plan):
                logits = model(**inputs, use_cache=False).logits
            on_plan(text, lambda r, n, logits=logits: logits[r, n])
            del logits
        return

    def run_edge(segment, hidden, capture):
        return run_segment(model, segment, inputs, hidden, capture)

    def on_end(text, final):
        on_plan(text, lambda r, n, final=final: output_logits(model, final[r, n]))

    trie.walk(run_edge, on_end)


def check_exact(model, tokens: list[int], atol: float = 1e-4) -> tuple[bool, float]:
    """``prefix_share.split_is_exact`` on one row of ``tokens``: run once per model before a sweep;
    a model whose forward treats ``inputs_embeds`` or its logits differently from what the walk
    assumes is then evaluated plan by plan instead."""
    device = next(model.parameters()).device
    return split_is_exact(model, {"input_ids": torch.tensor([tokens], device=device)}, atol)
