"""Greedy generation for every plan of a sweep at once: shared prefill, one decoding batch.

What stock lm-eval does per plan (``HFLM.generate_until``: ``model.generate`` over left-padded
batches of prompts) this engine does for all plans together, with the same outputs:

1. **Shared prefill.** The plans form a trie over their executed steps (``PlanTrie``, as for
   scoring). A prompt batch's prefill walks it depth first: each branch (a run of steps between
   two branch points, itself a plan put on the model with ``rewire.rewired``) runs once on the
   documents, fed the hidden state its parent branch left (``inputs_embeds``), so a layer state
   that several plans reach is computed once.
2. **One decoding batch.** Every (plan, document) pair is a row. Each step feeds every unfinished
   row its last token: rows of all plans go through a branch they share as one batch and split
   where the plans diverge (rows are ordered plan by plan in the trie's depth-first order, so a
   branch's rows are one contiguous slice); after their own steps, the rows of every plan that
   ends with the same steps run them as one batch too (shared tails, ``generation_layout``: a
   step costs the weights it reads, so fewer, fuller forwards). Each branch and tail keeps its
   rows' KV in a ``GrowingLayer``
   cache (``generation_cache``), started from the shared prefill's KV. A row stops at its own
   stop string, EOS or ``max_gen_toks`` and leaves the batch (finished rows are squeezed out of
   the caches once they are an eighth of the batch).
3. **Bounded memory.** ``memory_budget`` (bytes) splits the plans into groups whose caches fit,
   cut along the trie's order so plans sharing a prefix stay together (``plan_groups``).
4. **Guards, falling back to plan-by-plan ``model.generate`` (``generation.Generator``)** rather
   than computing something else: a model whose forward transforms ``inputs_embeds``
   (``prefix_share.split_is_exact``), a generation config that changes greedy argmax (repetition
   penalty, beams, suppressed tokens ...), a pad token that would show in the decoded text.

What "the same outputs" rests on: the prefill and every step run the model's own forward on the
same token ids, positions (``generate``'s: the attention mask's cumulative sum) and masks as
``generate`` would; greedy is the argmax of the same logits; the text is cut at the request's stop
strings as lm-eval cuts it. Rounding can differ with batch shapes, so the tests compare with stock
lm-eval in float64, where a near-tie cannot flip.
"""

from __future__ import annotations

import inspect
from typing import Callable, Sequence

import torch

from glue_painters.plans import Plan
from glue_painters.prefix_share import last_entry, output_logits, split_is_exact
from glue_painters.rewire import rewired

from .generation import Generator, PreparedGeneration
from .generation_cache import assemble_cache, compact_cache, growing_cache
from .generation_layout import (Branch, Layout, branches, cache_keyword, decode_units, group_bytes,
                                kv_bytes_from_config, kv_bytes_per_token, layout, plan_groups)

__all__ = ["BatchGenerator", "branches", "decode_units", "greedy_is_argmax", "group_bytes", "kv_bytes_from_config",
           "kv_bytes_per_token", "plan_groups"]

# generation-config fields that make ``generate`` pick something else than the logits' argmax
_NOT_ARGMAX = ("num_beams", "repetition_penalty", "encoder_repetition_penalty", "no_repeat_ngram_size",
               "bad_words_ids", "min_length", "min_new_tokens", "forced_bos_token_id", "forced_eos_token_id",
               "suppress_tokens", "begin_suppress_tokens", "sequence_bias", "exponential_decay_length_penalty",
               "guidance_scale", "watermarking_config", "diversity_penalty", "penalty_alpha", "dola_layers",
               "prompt_lookup_num_tokens", "assistant_model")


def greedy_is_argmax(model) -> tuple[bool, str]:
    """Does greedy ``generate`` on this model pick the logits' argmax? (False, why) if its
    generation config adds a logits processor or another decoding strategy."""
    from transformers import GenerationConfig

    config = getattr(model, "generation_config", None)
    if config is None:
        return True, ""
    default = GenerationConfig()
    for name in _NOT_ARGMAX:
        value, base = getattr(config, name, None), getattr(default, name, None)
        if value != base and value not in (None, 0, 1, 1.0, [], (), False):
            return False, f"its generation config sets {name}={value!r}"
    return True, ""


class BatchGenerator:
    """Runs ``generation.Generator``'s prepared requests for many plans at once (see module doc)."""

    def __init__(self, model, tokenizer, batch_size: int = 8, memory_budget: int | None = None,
                 share_prefix: bool = True):
        self.model = model
        self.tokenizer = tokenizer
        self.plain = Generator(model, tokenizer, batch_size)
        self.memory_budget = memory_budget
        self.share_prefix = share_prefix
        self.fallback: str | None = None  # why this model runs plan by plan (None: it does not)
        self._checked = False
        self._per_token: int | None = None
        config = getattr(model, "generation_config", None)
        eos = getattr(config, "eos_token_id", None) if config is not None else None
        eos = eos if eos is not None else tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, (list, tuple)) else [eos]) - {None}
        self.positions = "position_ids" in inspect.signature(model.forward).parameters
        # set to [] to record every forward the engine runs (``work.generation_work`` counts it):
        # ("layers", segment, rows, query positions, key positions, masked) and ("head", rows)
        self.trace: list | None = None
        self.generated: dict[str, dict[int, int]] = {}  # plan text -> request -> tokens generated

    def prepare(self, requests) -> PreparedGeneration:
        return self.plain.prepare(requests)

    @property
    def per_token(self) -> int:
        if self._per_token is None:
            self._per_token = kv_bytes_per_token(self.model)
        return self._per_token

    def check(self, sample: list[int]) -> str | None:
        """Why this model must run plan by plan (None: the engine may run it). Checked once."""
        if self._checked:
            return self.fallback
        self._checked = True
        ok, why = greedy_is_argmax(self.model)
        if not ok:
            self.fallback = why
        pad = self.tokenizer.pad_token_id
        if self.fallback is None and pad is not None and pad not in self.tokenizer.all_special_ids:
            self.fallback = "its pad token is not a special token (stock lm-eval's text would show it)"
        if self.fallback is None:
            device = next(self.model.parameters()).device
            exact, diff = split_is_exact(self.model, {"input_ids": torch.tensor([sample], device=device)})
            if not exact:
                self.fallback = f"running a plan in pieces differs from one forward by {diff:.2e}"
        if self.fallback is not None:
            import warnings

            warnings.warn(f"{type(self.model).__name__}: generating plan by plan: {self.fallback}")
        return self.fallback

    def units(self, prepared: PreparedGeneration, plans: Sequence[Plan]) -> list[tuple[tuple[int, ...], list[Plan]]]:
        """The engine's work units in order (``decode_units`` on the prepared prompt batches)."""
        shapes = [(len(idx), ids.shape[1], max(prepared.max_gen_toks[i] for i in idx))
                  for ids, _, idx in prepared.batches]
        return decode_units(shapes, plans, self.per_token if self.memory_budget else 0, self.memory_budget)

    @torch.no_grad()
    def run(self, prepared: PreparedGeneration, plans: Sequence[Plan],
            progress: Callable[[int], None] | None = None, checkpoint=None) -> dict[str, list[str]]:
        """Per plan text, the cut continuation of every request (request order). ``checkpoint``
        (``progress.GenerationProgress``) supplies units finished before and keeps each new one."""
        unique = list({p.text: p for p in plans}.values())
        out = {p.text: [None] * prepared.n_requests for p in unique}
        if not prepared.batches:
            return out
        if self.check(prepared.batches[-1][0][0, -8:].tolist()) is not None:
            for plan in unique:
                out[plan.text] = self.plain.run(prepared, plan, progress)
            return out
        for number, (chunk, group) in enumerate(self.units(prepared, unique)):
            done = checkpoint.load(number) if checkpoint is not None else None
            if done is None:
                done = self.decode([prepared.batches[i] for i in chunk], group, prepared)
                if checkpoint is not None:
                    checkpoint.save(number, done)
            for text, rows in done.items():
                for request, generated in rows:
                    out[text][request] = generated
            if progress is not None:
                progress(len(group) * len(chunk))
        return out

    # ---- prompt batches under one plan group -----------------------------------------------------
    def decode(self, batches: Sequence[tuple], plans: Sequence[Plan],
               prepared: PreparedGeneration) -> dict[str, list[tuple[int, str]]]:
        """Every plan's generation for the prompt batches ``batches`` (each ``(ids, mask, request
        indices)``, left padded; each prefilled as it is, as ``generate`` would see it, then all
        decoded together): ``{plan text: [(request, text), ...]}``."""
        device = next(self.model.parameters()).device
        lay = layout(plans, self.share_prefix)
        ordered = lay.ordered
        width = max(ids.shape[1] for ids, _, _ in batches)
        offsets, idx = [], []
        for _, _, part in batches:
            offsets.append(len(idx))
            idx += list(part)
        docs = len(idx)
        mask = torch.cat([torch.cat([m.new_zeros((m.shape[0], width - m.shape[1])), m], dim=1)
                          for _, m, _ in batches]).to(device)
        lengths = mask.sum(dim=1)
        gen_max = [prepared.max_gen_toks[i] for i in idx]
        capacity = width + max(gen_max)
        keep_mask = not bool((mask == 1).all())  # generate drops an all-ones mask
        rows = len(ordered) * docs
        tokens: list[list[int]] = [[] for _ in range(rows)]
        finished = [False] * rows
        last = torch.zeros(rows, dtype=torch.long, device=device)

        def pick(logits: torch.Tensor, row_ids: torch.Tensor) -> None:
            last[row_ids] = logits.float().argmax(dim=-1)
            if self.trace is not None:
                self.trace.append(("head", len(row_ids)))

        # prefill: each prompt batch as generate would see it, each branch once per document (a
        # plan's own last branch: its whole remainder, tails included); the decoding caches are
        # then cut from these (assemble_cache)
        parts: dict[Branch, list] = {}

        def prefill(branch: Branch, hidden, ids, bmask, offset):
            n, w = ids.shape
            positions = (bmask.long().cumsum(-1) - 1).masked_fill(bmask == 0, 0) if self.positions else None
            feed = {"input_ids": ids} if hidden is None else {"inputs_embeds": hidden}
            final, after, cache = self._forward(branch.prefill, feed, None if bool((bmask == 1).all()) else bmask,
                                                positions, growing_cache(branch.prefill.executions, w),
                                                bool(branch.children))
            parts.setdefault(branch, []).append((cache, offset))
            for p in branch.ends:
                rows_of = torch.arange(p * docs + offset, p * docs + offset + n, device=device)
                pick(output_logits(self.model, final[:, -1]), rows_of)
            del final
            for child in branch.children:
                prefill(child, after, ids, bmask, offset)

        for (ids, bmask, _), offset in zip(batches, offsets):
            for root in lay.roots:
                prefill(root, None, ids.to(device), bmask.to(device), offset)
        for b in lay.branches():
            if b.segment is not None:
                b.cache = assemble_cache([(parts[b], 0)] * (b.hi - b.lo), docs, width, capacity,
                                         b.segment.executions)
        for t in lay.tails_in_order():
            t.cache = assemble_cache([(parts[lay.leaf_of(p)], t.offsets[p]) for p in t.plans], docs, width,
                                     capacity, t.segment.executions)
        parts.clear()
        active = torch.arange(rows, device=device)
        step = 0
        while True:
            step += 1
            self._record(last, active, tokens, finished, docs, gen_max, idx, prepared)
            live = torch.tensor([not finished[r] for r in active.tolist()], device=device)
            if not bool(live.any()):
                break
            dead = len(active) - int(live.sum())
            if dead and dead * 8 >= len(active):
                self._compact(lay, active, live, docs)
                active = active[live]
            doc_of = active % docs
            feed_ids = last[active].unsqueeze(1)
            step_mask = None
            if keep_mask:
                step_mask = torch.cat([mask[doc_of], mask.new_ones((len(active), step))], dim=1)
            step_pos = (lengths[doc_of] - 1 + step).unsqueeze(1) if self.positions else None
            ended: list[tuple[torch.Tensor, torch.Tensor]] = []  # (final states, rows) of plans ending
            into_tails: dict[int, torch.Tensor] = {}  # active position -> state entering its tail

            def run(segment, cache, at, hidden, capture):
                """``segment`` on the rows at active positions ``at`` (a slice or an index)."""
                feed = {"input_ids": feed_ids[at]} if hidden is None else {"inputs_embeds": hidden}
                return self._forward(segment, feed, None if step_mask is None else step_mask[at],
                                     None if step_pos is None else step_pos[at], cache, capture)

            def visit(branch: Branch, s: int, e: int, hidden):
                if branch.segment is None:  # a plan whose steps after its last branch point are all shared
                    into_tails.update(zip(range(s, e), hidden))
                    return
                final, after, _ = run(branch.segment, branch.cache, slice(s, e), hidden,
                                      bool(branch.children) or branch.tail is not None)
                if branch.tail is not None:
                    into_tails.update(zip(range(s, e), after))
                    return
                for p in branch.ends:
                    ps, pe = self._slice(active, p * docs, (p + 1) * docs)
                    if pe > ps:
                        ended.append((final[ps - s:pe - s, -1], active[ps:pe]))
                for child in branch.children:
                    cs, ce = self._slice(active, child.lo * docs, child.hi * docs)
                    if ce > cs:
                        visit(child, cs, ce, after[cs - s:ce - s])

            for root in lay.roots:
                s, e = self._slice(active, root.lo * docs, root.hi * docs)
                if e > s:
                    visit(root, s, e, None)
            for tail in lay.tails_in_order():
                at = self._positions(active, tail.plans, docs)
                if len(at) == 0:
                    continue
                hidden = torch.stack([into_tails[i] for i in at.tolist()])
                final, after, _ = run(tail.segment, tail.cache, at, hidden, tail.parent is not None)
                if tail.parent is not None:
                    into_tails.update(zip(at.tolist(), after))
                else:
                    ended.append((final[:, -1], active[at]))
            # one output head for the rows of every plan: a decoding step is bound by weight reads,
            # and the head (vocabulary x hidden) is the largest matrix; read once, not once per plan
            pick(output_logits(self.model, torch.cat([h for h, _ in ended])),
                 torch.cat([r for _, r in ended]))
        for b in lay.branches():
            b.cache = None
        for t in lay.tails_in_order():
            t.cache = None
        out: dict[str, list[tuple[int, str]]] = {p.text: [] for p in ordered}
        for r in range(rows):
            plan, doc = ordered[r // docs], r % docs
            self.generated.setdefault(plan.text, {})[idx[doc]] = len(tokens[r])
            text = self.tokenizer.decode(tokens[r], skip_special_tokens=True)
            for term in prepared.stops[idx[doc]]:
                if term:
                    text = text.split(term)[0]
            out[plan.text].append((idx[doc], text))
        return out

    def _record(self, last, active, tokens, finished, docs, gen_max, idx, prepared) -> None:
        """Append each unfinished row's new token; mark rows that reached EOS, their length or a
        stop string (then the cut text can no longer change)."""
        new = last[active].tolist()
        check = []
        for r, token in zip(active.tolist(), new):
            if finished[r]:
                continue
            tokens[r].append(token)
            doc = r % docs
            if token in self.eos_ids or len(tokens[r]) >= gen_max[doc]:
                finished[r] = True
            else:
                check.append(r)
        if check:
            texts = self.tokenizer.batch_decode([tokens[r] for r in check], skip_special_tokens=True)
            for r, text in zip(check, texts):
                if any(term and term in text for term in prepared.stops[idx[r % docs]]):
                    finished[r] = True

    @staticmethod
    def _slice(active: torch.Tensor, lo: int, hi: int) -> tuple[int, int]:
        bounds = torch.searchsorted(active, torch.tensor([lo, hi], device=active.device))
        return int(bounds[0]), int(bounds[1])

    def _positions(self, active: torch.Tensor, plans: Sequence[int], docs: int) -> torch.Tensor:
        """Active positions of the rows of ``plans`` (ascending plan indices), ascending."""
        spans = [self._slice(active, p * docs, (p + 1) * docs) for p in plans]
        return torch.cat([torch.arange(a, b, device=active.device) for a, b in spans])

    def _compact(self, lay: Layout, active: torch.Tensor, live: torch.Tensor, docs: int) -> None:
        for b in lay.branches():
            if b.segment is not None:
                s, e = self._slice(active, b.lo * docs, b.hi * docs)
                compact_cache(b.cache, torch.nonzero(live[s:e]).flatten())
        for t in lay.tails_in_order():
            compact_cache(t.cache, torch.nonzero(live[self._positions(active, t.plans, docs)]).flatten())

    def _forward(self, segment: Plan, feed: dict, mask, positions, cache, capture: bool):
        """``segment`` on the model from ``feed`` (token ids or a hidden state) with ``cache``:
        (final-normed hidden states, the last step's output before the norm if ``capture``, cache)."""
        captured = {}

        def grab(module, args, out):
            captured["h"] = out[0] if isinstance(out, tuple) else out

        if self.trace is not None:
            x = feed.get("input_ids", feed.get("inputs_embeds"))
            self.trace.append(("layers", segment, x.shape[0], x.shape[1], cache.get_seq_length() + x.shape[1],
                               mask is not None))
        with rewired(self.model, segment):
            handle = last_entry(self.model).register_forward_hook(grab) if capture else None
            try:
                extra = {} if positions is None else {"position_ids": positions}
                out = self.model.base_model(**feed, attention_mask=mask, use_cache=True,
                                            **{cache_keyword(self.model): cache}, **extra)
            finally:
                if handle is not None:
                    handle.remove()
        return out.last_hidden_state, captured.get("h"), cache
