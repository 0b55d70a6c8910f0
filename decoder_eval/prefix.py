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

from glue_painters.plans import Plan
from glue_painters.prefix_share import Edge, PlanTrie, _Node, last_entry as _last_entry  # noqa: F401 (shared with the GLUE probe)
from glue_painters.rewire import rewired


def output_logits(model, hidden: torch.Tensor) -> torch.Tensor:
    """The model's logits from its final hidden states (after the final norm)."""
    logits = model.get_output_embeddings()(hidden)
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


def run_segment(model, plan: Plan, inputs: dict, hidden: torch.Tensor | None, capture: bool):
    """Run ``plan`` from ``hidden`` (or from the token ids when None). Returns the final-normed
    hidden states and, if ``capture``, the last step's output before the final norm."""
    captured = {}

    def hook(module, args, out):
        captured["h"] = out[0] if isinstance(out, tuple) else out

    with rewired(model, plan):
        handle = _last_entry(model).register_forward_hook(hook) if capture else None
        try:
            feed = {"input_ids": inputs["input_ids"]} if hidden is None else {"inputs_embeds": hidden}
            out = model.base_model(**feed, attention_mask=inputs.get("attention_mask"),
                                   position_ids=inputs.get("position_ids"), use_cache=False)
        finally:
            if handle is not None:
                handle.remove()
    return out.last_hidden_state, captured.get("h")


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


@torch.no_grad()
def check_exact(model, tokens: list[int], atol: float = 1e-4) -> tuple[bool, float]:
    """Does running the full plan in two pieces plus ``output_logits`` give ``model(...).logits``?

    Run once per model before a sweep; a model whose forward treats ``inputs_embeds`` or its
    logits differently from what ``prefix`` assumes is then evaluated plan by plan instead.
    """
    from glue_painters.rewire import num_layers
    from glue_painters.plans import full_plan

    t = num_layers(model)
    device = next(model.parameters()).device
    ids = torch.tensor([tokens], device=device)
    full = full_plan(t)
    with rewired(model, full):
        ref = model(input_ids=ids).logits.float()
    if t < 2:
        return True, 0.0
    units = list(full.units())
    inputs = {"input_ids": ids}
    _, state = run_segment(model, Plan(tuple(units[:1])), inputs, None, capture=True)
    final, _ = run_segment(model, Plan(tuple(units[1:])), inputs, state, capture=False)
    diff = (output_logits(model, final).float() - ref).abs().max().item()
    scale = max(1.0, ref.abs().max().item())
    return diff <= atol * scale, diff
