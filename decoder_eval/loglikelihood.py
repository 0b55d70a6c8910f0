"""Loglikelihood requests for many plans at once: tokenize and batch once, share the rest.

What the speed comes from, each exact up to float rounding (tests hold every plan's per-request
loglikelihoods to those of a plain one-plan-at-a-time run):

1. requests are tokenized and batched **once** for a whole sweep (``prepare``), rows sorted by
   length so padding stays small;
2. the requests of one item share one trie in a row (``packing``: one forward per shared
   context), and rows hold several items so batches carry almost no padding;
3. the hidden state after the layers plans share is computed once per batch (``prefix``);
4. only the positions that are scored go through the output embedding and the log-softmax
   (lm-eval projects every position of every row onto the whole vocabulary).

``score`` returns, per plan, ``(loglikelihood, is_greedy)`` for each request in order, the pair
lm-eval's ``loglikelihood`` returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from glue_painters.plans import Plan

from .encoding import Encoder
from .packing import Batch, build_rows, can_pack, make_batches, sliding_window
from .prefix import PlanTrie, check_exact, walk
from .rolling import expand, fold
from .tasks import LoglikelihoodRequest


@dataclass
class Prepared:
    """Batches for a list of request groups, ready to run under any number of plans."""

    batches: list[Batch]
    n_requests: int
    packed: bool
    owners: list[list[int]] | None = None  # per request, its pairs (several for a rolling request)

    @property
    def n_tokens(self) -> int:
        return sum(b.n_tokens for b in self.batches)


class LoglikelihoodScorer:
    """Scores loglikelihood requests on ``model`` under many plans.

    pack: merge the requests of one item into one row where safe (see ``packing``).
    share_prefix: compute shared plan prefixes once (see ``prefix``); switched off automatically,
    with a warning, if ``prefix.check_exact`` finds this model's forward does not allow it.
    """

    def __init__(self, model, tokenizer, batch_size: int = 16, pack: bool = True, share_prefix: bool = True):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.model = model
        self.encoder = Encoder(tokenizer, model.config)
        self.batch_size = batch_size
        self.pack = pack and can_pack(model)
        self.share_prefix = share_prefix
        self.timing: dict[str, float] | None = None  # set to {} to get wall seconds per phase (prefix.walk)
        self._checked = False
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.pad_id = pad if pad is not None else 0

    @property
    def device(self):
        return next(self.model.parameters()).device

    def prepare(self, groups: Sequence[Sequence[LoglikelihoodRequest]]) -> Prepared:
        """Tokenize (lm-eval's rules) and batch; request ids run over ``groups`` in order. A
        ``rolling.RollingRequest`` is scored as its windows and gets their sum."""
        encoded, owners = expand(groups, self.encoder)
        rows = build_rows(encoded, self.encoder, self.pack, sliding_window(self.model))
        eager = getattr(self.model.config, "_attn_implementation", None) == "eager"
        batches = make_batches(rows, self.batch_size, self.pad_id,
                               mask_dtype=self.model.dtype if eager else None)
        plain = all(ids == [i] for i, ids in enumerate(owners))
        return Prepared(batches, sum(len(g) for g in encoded), self.pack, None if plain else owners)

    def _sharing(self, sample_tokens: list[int]) -> bool:
        if self.share_prefix and not self._checked:
            ok, diff = check_exact(self.model, sample_tokens)
            if not ok:
                import warnings

                warnings.warn(f"{type(self.model).__name__}: running a plan in pieces differs from one "
                              f"forward by {diff:.2e}; evaluating every plan from scratch instead")
                self.share_prefix = False
            self._checked = True
        return self.share_prefix

    @torch.no_grad()
    def score(self, prepared: Prepared, plans: Sequence[Plan],
              progress: Callable[[int], None] | None = None, checkpoint=None) -> dict[str, list[tuple[float, bool]]]:
        """Per plan text, ``(loglikelihood, is_greedy)`` of every request. ``checkpoint`` (a
        ``progress.PassProgress``) supplies batches finished before and keeps each new one."""
        unique = list({p.text: p for p in plans}.values())
        if not prepared.batches:
            return {p.text: fold([], prepared.owners) if prepared.owners else [] for p in unique}
        sample = prepared.batches[-1].input_ids[0, :8].tolist()
        trie = PlanTrie(unique, share=self._sharing(sample))
        out = {p.text: [None] * prepared.n_requests for p in unique}
        for index, batch in enumerate(prepared.batches):
            done = checkpoint.load(index) if checkpoint is not None else None
            if done is not None:
                for text, rows in done.items():
                    for request, ll, greedy in rows:
                        out[text][request] = (ll, greedy)
                if progress is not None:
                    progress(len(done))
                continue
            b = batch.to(self.device)
            inputs = {"input_ids": b.input_ids, "attention_mask": b.attention_mask, "position_ids": b.position_ids}
            rows, nodes, inverse = scored_positions(b)

            def on_plan(text, gather, b=b, rows=rows, nodes=nodes, inverse=inverse):
                logprobs = torch.log_softmax(gather(rows, nodes).float(), dim=-1)
                token_lp = logprobs[inverse, b.tokens].cpu()
                is_max = (logprobs.argmax(dim=-1)[inverse] == b.tokens).cpu()
                results = out[text]
                for request, start, end in b.spans:
                    results[request] = (float(token_lp[start:end].sum()), bool(is_max[start:end].all()))
                if progress is not None:
                    progress(1)

            walk(self.model, trie, inputs, on_plan, self.timing)
            if checkpoint is not None:
                checkpoint.save(index, {text: [(r, *out[text][r]) for r, _, _ in b.spans] for text in out})
        if prepared.owners is not None:
            out = {text: fold(results, prepared.owners) for text, results in out.items()}
        return out


def scored_positions(batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each scored (row, node) once, and for every scored token the index of its position there.
    Why: the requests of an item share their context, so its last node predicts the first
    continuation token of every choice (four times for ARC and HellaSwag); its logits, the
    log-softmax over the vocabulary and the argmax are computed once and read four times."""
    width = batch.input_ids.shape[1]
    unique, inverse = torch.unique(batch.rows * width + batch.nodes, return_inverse=True)
    return unique // width, unique % width, inverse
