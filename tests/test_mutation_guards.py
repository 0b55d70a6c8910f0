"""Tests at the boundaries that decide silent bugs (issue 28): each one fails when the bug it is
named after is put back, where the older tests, run on T = 8 and 32, a dynamic cache, weights that
never change, items far longer than a window and a ±0.01 tolerance, all passed.

1. an odd layer count's N range (``variants.max_start``);
2. the cache guard's in-place version check (a static cache is written in place);
3. the stacked weights of a batched group rebuilt after the weights change;
4. sliding-window packing at exactly ``window`` and ``window + 1`` tokens;
5. a 95% interval made of the 2.5% / 97.5% quantiles of the resamples, and its false-claim rate;
6. packed rows' positions restarting at each item, checked on the batch (any architecture).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import tiny
from decoder_eval.encoding import Encoder
from decoder_eval.loglikelihood import LoglikelihoodScorer
from decoder_eval.packing import build_rows, make_batches
from decoder_eval.tasks import LoglikelihoodRequest
from glue_painters import rewire, stats as S, variants
from glue_painters.plans import PlanError
from glue_painters.rewire import RewireError, rewired
from test_decoder_fixtures import byte_tokenizer, tiny_lm

T = tiny.LAYERS


# ---- 1. N's range on every layer count, odd ones included --------------------------------------
@pytest.mark.parametrize("layers", range(2, 14))
def test_every_n_leaves_a_non_empty_middle_and_no_more_n_exists(layers):
    """N is valid exactly while the middle N+1..T-N-1 is non-empty: at the largest N every
    variant still differs from the full model, and one more N is refused."""
    ns = variants.n_range(layers)
    assert ns == list(range(len(ns))) and ns[-1] == variants.max_start(layers)
    full = variants.full(layers)
    for n in ns:
        assert len(variants.middle(layers, n)) >= 1
        assert variants.skip(layers, n).text != full.text
        assert len(list(variants.skip(layers, n).units())) < layers
    # the next N would leave an empty middle: T - 2(N+1) - 1 <= 0
    assert layers - 2 * (ns[-1] + 1) - 1 <= 0
    with pytest.raises(PlanError, match="out of range"):
        variants.middle(layers, ns[-1] + 1)
    with pytest.raises(PlanError):
        variants.skip(layers, ns[-1] + 1)


def test_a_nine_layer_model_has_n_up_to_three():
    assert variants.n_range(9) == [0, 1, 2, 3]
    assert variants.middle(9, 3) == [4, 5]
    for name in ("skip", "reverse", "random"):
        with pytest.raises(PlanError):
            variants.build(name, 9, n=4)


# ---- 2. the guard sees in-place writes (a static cache) ----------------------------------------
def _bypass(monkeypatch):
    """The silent failure the guard exists for: a layer writing its original index's slot."""
    monkeypatch.setattr(rewire.SlotCache, "update",
                        lambda self, k, v, layer_idx=None, *a, **kw: self._cache.update(k, v, layer_idx, *a, **kw))


def test_a_write_around_the_slot_view_into_a_static_cache_is_refused(monkeypatch):
    """A static cache is written in place (same tensors, new version): the guard must compare
    versions, not only identities and counters. Under 0-7,3 the last entry is layer 3 in slot 8;
    bypassing the view it writes slot 3 again."""
    from transformers.cache_utils import StaticCache

    model = tiny.make("llama")
    ids = torch.randint(3, 90, (1, 6), generator=torch.Generator().manual_seed(1))
    with rewired(model, "0-7,3"), torch.no_grad():
        model(input_ids=ids, past_key_values=StaticCache(config=model.config, max_cache_len=16), use_cache=True)
        _bypass(monkeypatch)
        with pytest.raises(RewireError, match="without going through its slot view"):
            model(input_ids=ids, past_key_values=StaticCache(config=model.config, max_cache_len=16), use_cache=True)


def test_the_guard_sees_an_in_place_write_to_a_watched_slot():
    """The guard's state compares in-place versions of the watched layer's tensors."""
    from transformers.cache_utils import DynamicCache

    from glue_painters.slot_cache import CacheBypassError, SlotGuard

    cache = DynamicCache()
    for i in range(3):
        cache.update(torch.zeros(1, 2, 4, 8), torch.zeros(1, 2, 4, 8), i)
    guard = SlotGuard(cache, slot=2, layer_index=1)
    guard.check("untouched")  # nothing written: silent
    cache.layers[1].keys.add_(1.0)  # in place: same tensor, same counters
    with pytest.raises(CacheBypassError, match="slot 1"):
        guard.check("the layer")
    # the entry's own slot is not watched
    own = SlotGuard(cache, slot=1, layer_index=1)
    cache.layers[1].keys.add_(1.0)
    own.check("the layer")


# ---- 3. batched groups follow changed weights --------------------------------------------------
def _ids():
    g = torch.Generator().manual_seed(3)
    return torch.randint(3, 90, (2, 7), generator=g)


@torch.no_grad()
def _logits(model, ids):
    return model(input_ids=ids, use_cache=False).logits


@torch.no_grad()
def _perturb(model, seed):
    g = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.05)  # in place, as an optimizer step


@pytest.mark.parametrize("change", ["optimizer_step", "load_state_dict", "parameter_swap"])
def test_batched_follows_weights_changed_while_the_plan_is_on(change):
    """float64: batched and the loop then agree to ~1e-15, and a stale stack is off by ~1e-3."""
    model = tiny.make("llama").double()
    other = copy.deepcopy(model)
    _perturb(other, 7)
    ids = _ids()
    plan = variants.parallel(T, 2)
    with rewired(model, plan, parallel="batched"):
        before = _logits(model, ids)  # builds the stack
        if change == "optimizer_step":
            _perturb(model, 7)
        elif change == "load_state_dict":
            for mine, theirs in zip(rewire.original_layers(model), rewire.original_layers(other)):
                mine.load_state_dict(theirs.state_dict())
        else:  # a parameter replaced by a new tensor (e.g. moved or re-created)
            layer = rewire.original_layers(model)[3]
            layer.mlp.up_proj.weight = torch.nn.Parameter(layer.mlp.up_proj.weight.detach().clone() * 1.5)
        after = _logits(model, ids)
    with rewired(model, plan, parallel="loop"):
        want = _logits(model, ids)
    assert (after - before).abs().max() > 1e-4  # the change did change the output
    torch.testing.assert_close(after, want, rtol=0, atol=1e-10)


# ---- 4. sliding-window packing at the window's edge --------------------------------------------
def _items(context_len: int):
    """Two items whose two choices branch right after a ``context_len``-token context (byte
    tokenizer: one character, one token); each request's model input is context_len + 1 tokens."""
    return [[LoglikelihoodRequest("abcdefgh"[:context_len], c) for c in ("ij", "kl")],
            [LoglikelihoodRequest("mnopqrst"[:context_len], c) for c in ("uv", "wx")]]


@torch.no_grad()
def _one_by_one(model, tok, groups):
    enc, out = Encoder(tok, model.config), []
    for group in groups:
        for r in group:
            pair = enc.pair(r.context, r.continuation)
            ids = enc.model_input(pair)
            lp = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), -1)
            cont = torch.tensor(pair.continuation)
            out.append(float(lp[len(ids) - len(cont):].gather(1, cont[:, None]).sum()))
    return out


@pytest.mark.parametrize("extra", [0, 1])
def test_packing_at_exactly_the_window_and_one_token_over(extra):
    """Tiny Gemma 3 has a 4-token window. Items of exactly 4 input tokens are packed (the trie mask
    equals the window there); items of 5 must not be, or their last token sees one token too many."""
    model, tok = tiny_lm("gemma3_text").double(), byte_tokenizer()
    window = model.config.sliding_window
    assert window == 4
    groups = _items(window - 1 + extra)
    scorer = LoglikelihoodScorer(model, tok, batch_size=8)
    prepared = scorer.prepare(groups)
    lengths = [len(Encoder(tok, model.config).model_input(Encoder(tok, model.config).pair(r.context, r.continuation)))
               for g in groups for r in g]
    assert set(lengths) == {window + extra}
    packed = any(b.attention_mask is not None for b in prepared.batches)
    assert packed == (extra == 0)
    got = [ll for ll, _ in scorer.score(prepared, [variants.full(T)])[variants.full(T).text]]
    want = _one_by_one(model, tok, groups)
    assert got == pytest.approx(want, abs=1e-5)


# ---- 5. the interval's quantiles and its false-claim rate --------------------------------------
@pytest.mark.parametrize("level", [0.95, 0.9, 0.99])
def test_the_interval_is_the_central_quantiles_of_the_resamples(level):
    """A level-L percentile interval is the (1-L)/2 and (1+L)/2 quantiles of the resampled
    statistic: on draws 0, 0.001, ..., 1 those are (1-L)/2 and (1+L)/2 themselves."""
    draws = np.linspace(0.0, 1.0, 1001)
    iv = S.interval_of(0.5, np.random.default_rng(0).permutation(draws), level, 50)
    assert iv.low == pytest.approx((1 - level) / 2, abs=1e-9)
    assert iv.high == pytest.approx((1 + level) / 2, abs=1e-9)
    assert iv.level == level and iv.n == 50 and iv.estimate == 0.5
    assert iv.se == pytest.approx(np.std(draws, ddof=1))


def test_paired_bootstrap_interval_leaves_two_and_a_half_percent_of_resamples_each_side():
    rng = np.random.default_rng(5)
    a, b = rng.normal(0.2, 1, 150), rng.normal(0, 1, 150)
    iv = S.paired_bootstrap(a, b, resamples=4000, seed=3)
    idx = np.random.default_rng(3).integers(0, a.size, size=(4000, a.size))
    draws = a[idx].mean(axis=1) - b[idx].mean(axis=1)  # the resamples, by definition
    below, above = (draws < iv.low).mean(), (draws > iv.high).mean()
    assert below == pytest.approx(0.025, abs=0.004) and above == pytest.approx(0.025, abs=0.004)


def test_with_no_effect_a_95_percent_interval_decides_about_five_claims_in_a_hundred():
    """400 simulated studies with no true effect: a 95% interval excludes zero in ~5% of them
    (20, sd 4.4); a 90% interval labelled 95% would in ~10% (40)."""
    rng = np.random.default_rng(11)
    decided = 0
    for study in range(400):
        a, b = rng.normal(0, 1, 200), rng.normal(0, 1, 200)
        iv = S.paired_bootstrap(a, b, resamples=1000, seed=study)
        decided += S.verdict(iv) != S.INCONCLUSIVE
    assert 8 <= decided <= 30, decided


# ---- 6. positions in packed rows, for every architecture ---------------------------------------
def test_packed_rows_give_each_token_its_position_in_its_own_sequence():
    """Several items share a row; each token's position id is where it sits in its own request
    (rotary models are blind to a shift of a whole item, so the batch itself is checked)."""
    tok = byte_tokenizer()
    model = tiny_lm("llama")
    enc = Encoder(tok, model.config)
    groups = [[LoglikelihoodRequest("the cat sat", " down"), LoglikelihoodRequest("the cat sat", " up")],
              [LoglikelihoodRequest("one two", " three"), LoglikelihoodRequest("one two", " four")],
              [LoglikelihoodRequest("x", " y")]]
    encoded = [[enc.pair(r.context, r.continuation) for r in g] for g in groups]
    rows = build_rows(encoded, enc, pack=True, window=None)
    assert len(rows) == 1  # all three items in one row
    (batch,) = make_batches(rows, batch_size=4, pad_id=0)
    assert batch.position_ids is not None
    pairs = [p for g in encoded for p in g]
    seen = 0
    for request, start, end in batch.spans:
        ids = enc.model_input(pairs[request])
        n = len(pairs[request].continuation)
        nodes = batch.nodes[start:end]
        want = torch.arange(len(ids) - n, len(ids))
        assert torch.equal(batch.position_ids[batch.rows[start:end], nodes], want), request
        # and the token at each scored node is the request's own token there
        assert batch.input_ids[batch.rows[start:end], nodes].tolist() == ids[len(ids) - n:]
        seen += 1
    assert seen == len(pairs)
    # every item's root is at position 0
    roots = [i for i, p in enumerate(rows[0].parents) if p < 0]
    assert len(roots) == 3 and all(batch.position_ids[0, r] == 0 for r in roots)
