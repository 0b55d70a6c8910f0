"""Rolling loglikelihood (perplexity tasks such as wikitext), cut into windows exactly as lm-eval does.

lm-eval's ``HFLM.loglikelihood_rolling`` encodes the whole text (``tok_encode``: the tokenizer's
default special tokens), cuts it with ``utils.get_rolling_token_windows`` (the first window
predicts from the BOS/EOS prefix token, each later one predicts the next ``max_length`` tokens
with the tokens before them as context), makes each window's context disjoint from its
continuation (``utils.make_disjoint_window``) and sums the windows' loglikelihoods. Those two
functions are lm-eval's own, imported, so the windows are the same token for token.

Why the windows become separate request groups: each window is a full-length sequence, and the
windows of one text share no prefix, so packing them into one trie row would only make a long row
with a large mask. As groups of their own they are packed with other short requests like any
loglikelihood request, and ``fold`` adds them up again per text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .encoding import EncodedPair, Encoder


@dataclass(frozen=True)
class RollingRequest:
    """``sum log P(text)`` over the whole text, in ``max_length`` windows (lm-eval's rolling request)."""

    text: str


def windows(encoder: Encoder, text: str) -> list[EncodedPair]:
    """The (context, continuation) token windows HFLM scores for ``text``, in order."""
    from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

    raw = get_rolling_token_windows(token_list=encoder.encode(text), prefix_token=encoder.prefix_token_id,
                                    max_seq_len=encoder.max_length, context_len=1)
    return [EncodedPair(tuple(ctx), tuple(cont)) for ctx, cont in map(make_disjoint_window, raw)]


def expand(groups: Sequence[Sequence], encoder: Encoder) -> tuple[list[list[EncodedPair]], list[list[int]]]:
    """Encode request groups for ``packing.build_rows``: the plain requests of a group stay one
    group, each window of a rolling request becomes a group of its own. Returns the pair groups
    and, per request in order, the ids (in pair-group order) of the pairs that make up its result."""
    pair_groups: list[list[EncodedPair]] = []
    owners: list[list[int]] = []
    count = 0
    for group in groups:
        plain: list[tuple[int, EncodedPair]] = []
        for request in group:
            owners.append([])
            if isinstance(request, RollingRequest):
                for pair in windows(encoder, request.text):
                    pair_groups.append([pair])
                    owners[-1].append(count)
                    count += 1
            else:
                plain.append((len(owners) - 1, encoder.pair(request.context, request.continuation)))
        if plain:
            pair_groups.append([pair for _, pair in plain])
            for owner, _ in plain:
                owners[owner].append(count)
                count += 1
    return pair_groups, owners


def fold(pair_results: list[tuple[float, bool]], owners: list[list[int]]) -> list[tuple[float, bool]]:
    """Per request: the sum of its pairs' loglikelihoods and whether every pair was greedy (a
    plain request has one pair, so its result is unchanged; a text with no tokens scores 0)."""
    out = []
    for ids in owners:
        parts = [pair_results[i] for i in ids]
        out.append((float(sum(ll for ll, _ in parts)), all(g for _, g in parts)))
    return out
