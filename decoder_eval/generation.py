"""Greedy generation until a stop string, lm-evaluation-harness style, under a plan.

Mirrors lm-eval's ``HFLM.generate_until``: contexts are grouped by their generation settings,
sorted longest first and batched, left
padded with an attention mask and left-truncated to ``max_length - max_gen_toks``; generation is
greedy for at most ``max_gen_toks`` new tokens; the tokenizer's EOS text joins the stop strings;
the decoded continuation (special tokens skipped) is cut at the first occurrence of any stop
string. Stopping itself uses transformers' own ``stop_strings`` (per row; lm-eval stops a batch
when every row has hit the same string), which changes nothing in the cut text.

``Generator.run`` generates plan by plan under ``rewired`` with the model's KV cache (the rewiring
gives each executed layer its own cache slot); sweeps run all plans at once with
``generation_engine.BatchGenerator``, which falls back to this where it cannot share exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from glue_painters.errors import UserError
from glue_painters.plans import Plan
from glue_painters.rewire import rewired

from .encoding import Encoder
from .tasks import GenerationRequest


@dataclass
class PreparedGeneration:
    order: list[int]  # request indices, longest context first
    batches: list[tuple[torch.Tensor, torch.Tensor, list[int]]]  # (ids, mask, request indices)
    stops: list[list[str]]
    max_gen_toks: list[int]
    n_requests: int


class Generator:
    def __init__(self, model, tokenizer, batch_size: int = 8):
        self.model = model
        self.tokenizer = tokenizer
        self.encoder = Encoder(tokenizer, model.config)
        self.batch_size = batch_size
        eos = tokenizer.eos_token_id
        self.eos_text = tokenizer.decode(eos, skip_special_tokens=False) if eos is not None else None

    def prepare(self, requests: Sequence[GenerationRequest]) -> PreparedGeneration:
        lengths = [len(self.encoder.encode(r.context)) for r in requests]
        # as lm-eval's Collator: requests grouped by their generation settings (a batch shares its
        # stop strings and length), longest context first within a group
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault((tuple(r.until), r.max_gen_toks), []).append(i)
        order, chunks = [], []
        for members in groups.values():
            members = sorted(members, key=lambda i: (-lengths[i], requests[i].context))
            order += members
            chunks += [members[s:s + self.batch_size] for s in range(0, len(members), self.batch_size)]
        batches = []
        for idx in chunks:
            gen_toks = max(requests[i].max_gen_toks for i in idx)
            enc = self.tokenizer([requests[i].context for i in idx], padding="longest", padding_side="left",
                                 return_tensors="pt")
            keep = self.encoder.max_length - gen_toks
            if keep <= 0:
                raise UserError(f"generating {gen_toks} tokens leaves no room for a prompt in the model's "
                                f"{self.encoder.max_length}-token context")
            batches.append((enc["input_ids"][:, -keep:], enc["attention_mask"][:, -keep:], idx))
        stops = []
        for r in requests:
            until = list(r.until)
            if self.eos_text is not None and self.eos_text not in until:
                until.append(self.eos_text)
            stops.append(until)
        return PreparedGeneration(order, batches, stops, [r.max_gen_toks for r in requests], len(requests))

    @torch.no_grad()
    def run(self, prepared: PreparedGeneration, plan: Plan,
            progress: Callable[[int], None] | None = None) -> list[str]:
        """The cut continuation of every request, in request order."""
        device = next(self.model.parameters()).device
        out: list[str | None] = [None] * prepared.n_requests
        with rewired(self.model, plan):
            for ids, mask, idx in prepared.batches:
                stops = sorted({s for i in idx for s in prepared.stops[i]})
                generated = self.model.generate(
                    input_ids=ids.to(device), attention_mask=mask.to(device),
                    max_new_tokens=max(prepared.max_gen_toks[i] for i in idx), do_sample=False,
                    temperature=None, top_p=None, top_k=None, stop_strings=stops, tokenizer=self.tokenizer,
                    pad_token_id=self.tokenizer.pad_token_id, use_cache=True)
                for row, i in enumerate(idx):
                    text = self.tokenizer.decode(generated[row, ids.shape[1]:], skip_special_tokens=True)
                    for term in prepared.stops[i]:
                        if term:
                            text = text.split(term)[0]
                    out[i] = text
                if progress is not None:
                    progress(1)
        return out
