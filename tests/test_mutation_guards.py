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
import math

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


# ---- what the first mutation run left alive (reports/mutation.md) ------------------------------
def test_a_sequential_plan_materializes_and_exports_as_an_ordinary_model(tmp_path):
    """materialize: the plan's layers as a plain ModuleList (a repeat deep-copied, per-layer config
    lists reordered), whatever plan the model handed in has on; export_plan saves it with the
    tokenizer and in the dtype asked for, the model handed in keeping its own."""
    from transformers import AutoModelForCausalLM

    model = tiny.make("gemma3_text")
    plan = "0,3,2,5x2,7"
    order = [0, 3, 2, 5, 5, 7]
    ids = _ids()
    with rewired(model, plan):
        want = _logits(model, ids)
    types = list(model.config.layer_types)
    with rewired(model, "0-3"):
        out = rewire.materialize(model, plan)
    assert rewire.current_plan(out) is None and rewire.current_plan(model) is None
    layers = rewire.original_layers(out)
    assert len(layers) == 6 and out.config.num_hidden_layers == 6
    assert out.config.layer_types == [types[i] for i in order]
    assert layers[3] is not layers[4]  # the repeat is a copy, numbered by its new position
    assert [l.self_attn.layer_idx for l in layers] == list(range(6))
    torch.testing.assert_close(_logits(out, ids), want, rtol=0, atol=1e-6)
    path = rewire.export_plan(model, plan, tmp_path / "out", tokenizer=byte_tokenizer(), dtype="bfloat16")
    assert (path / "tokenizer.json").exists() and (path / "config.json").exists()
    back = AutoModelForCausalLM.from_pretrained(path)
    assert back.config.painters_plan == "0,3,2,5x2,7" and back.config.num_hidden_layers == 6
    assert next(back.parameters()).dtype == torch.bfloat16 and next(model.parameters()).dtype == torch.float32
    path = rewire.export_plan(model, plan, tmp_path / "plain")
    assert not (path / "tokenizer.json").exists()
    assert next(AutoModelForCausalLM.from_pretrained(path).parameters()).dtype == torch.float32


def test_the_slot_view_remaps_layer_index_methods_and_per_layer_lists():
    from transformers.cache_utils import DynamicCache

    from glue_painters.slot_cache import CacheBypassError, SlotCache

    cache = DynamicCache()
    for i in range(3):  # slot i holds i + 1 tokens
        cache.update(torch.zeros(1, 2, i + 1, 8), torch.zeros(1, 2, i + 1, 8), i)
    view = SlotCache(cache, 2)
    assert view.get_seq_length() == 3 and view.get_seq_length(0) == 3 and view.get_seq_length(layer_idx=0) == 3
    assert SlotCache(cache, 0).get_seq_length(layer_idx=2) == 1
    layers = view.layers
    assert layers[0] is cache.layers[2] and layers[1] is cache.layers[2] and len(layers) == 3
    with pytest.raises(CacheBypassError, match="sliced"):
        layers[0:2]
    with pytest.raises(CacheBypassError, match="^a layer iterated over every layer of the KV cache"):
        list(layers)
    assert view.is_compileable == cache.is_compileable  # anything else is the cache's own


def test_a_member_cache_refuses_a_second_update():
    from glue_painters.batched import Unbatchable, _MemberCache

    mc = _MemberCache(None, None)
    k = torch.zeros(1, 2, 3, 4)
    assert mc.update(k, k)[0] is k
    with pytest.raises(Unbatchable, match="twice"):
        mc.update(k, k)


def test_a_bad_range_names_its_step():
    from glue_painters.plans import Plan

    with pytest.raises(PlanError, match=r"'0,2-x' \(step 2\)"):
        Plan.parse("0,2-x")
    with pytest.raises(PlanError, match=r"\(step 3\)"):
        Plan.parse("0,1,[2-3,a]")


def test_variant_specs_custom_and_their_errors():
    from glue_painters.variants import VariantSpec

    spec = VariantSpec.of("custom", plan="0-3, 5")
    assert spec.plan(8).text == "0-3,5"
    with pytest.raises(PlanError, match="a custom variant takes one parameter, plan=<plan text>"):
        VariantSpec.of("custom", plan="0-3", n=1)
    with pytest.raises(PlanError, match="unknown variant 'nope'; known: full, skip"):
        VariantSpec.of("nope")
    with pytest.raises(PlanError, match="variant 'full' takes no parameters, not n"):
        VariantSpec.of("full", n=2)
    with pytest.raises(PlanError, match="skip_one needs a model of at least 2 layers"):
        variants.skip_one(1, 0)


def test_generation_reads_the_models_own_maximum_length():
    from decoder_eval.generation import Generator

    model, tok = tiny_lm("llama"), byte_tokenizer()
    assert tok.model_max_length != model.config.max_position_embeddings
    assert Generator(model, tok).encoder.max_length == model.config.max_position_embeddings


def test_plan_trie_counts_executions_with_and_without_sharing():
    from glue_painters.prefix_share import PlanTrie

    plans = [variants.skip(T, 2), variants.parallel(T, 2), variants.full(T)]
    alone = sum(p.executions for p in plans)
    assert PlanTrie(plans, share=False).layer_executions() == alone
    shared = PlanTrie(plans).layer_executions()
    assert shared < alone and shared == 8 + 2 + 3 + 2  # 0-2 shared by all, then 3-7 | 5,6,7 | [3,4] ...


@torch.no_grad()
def test_run_from_feeds_a_hidden_state_and_captures_the_last_steps_output():
    from glue_painters.plans import Plan
    from glue_painters.prefix_share import run_from

    model = tiny.make("llama").double()
    ids = _ids()
    full = _logits(model, ids)
    _, h = run_from(model, Plan.parse("0-3"), None, True, lambda: model(input_ids=ids, use_cache=False))
    assert h is not None and h.shape == (2, 7, 32)
    out, none = run_from(model, Plan.parse("4-7"), h, False, lambda: model(input_ids=ids, use_cache=False))
    assert none is None and rewire.current_plan(model) is None
    torch.testing.assert_close(out.logits, full, rtol=0, atol=1e-10)


# the statistics
def test_an_interval_without_finite_draws_is_empty_but_keeps_its_level_and_size():
    iv = S.interval_of(0.1, np.array([np.nan, np.inf]), 0.9, 7)
    assert math.isnan(iv.low) and math.isnan(iv.high) and math.isnan(iv.se)
    assert iv.estimate == 0.1 and iv.level == 0.9 and iv.n == 7


def test_a_one_document_comparison_has_a_zero_width_interval():
    iv = S.paired_bootstrap([0.75], [0.25])
    assert iv.estimate == iv.low == iv.high == 0.5 and iv.n == 1


@pytest.mark.parametrize("low,high,sign,expected", [
    (0.1, math.inf, +1, S.INCONCLUSIVE), (-math.inf, -0.1, -1, S.INCONCLUSIVE),
    (-0.2, 0.0, -1, S.INCONCLUSIVE), (-0.2, 0.0, +1, S.INCONCLUSIVE), (-0.3, -0.1, -1, S.SUPPORTED),
    (0.1, 0.3, -1, S.CONTRADICTED),
])
def test_verdict_at_zero_and_at_infinite_ends(low, high, sign, expected):
    assert S.verdict(S.Interval(0.0, low, high, 0.95, 100, 0.05), sign) == expected


def test_outlook_reports_the_full_sets_size_and_an_effect_exactly_at_the_half_width_is_open():
    iv = S.Interval(0.02, -0.02, 0.06, 0.95, 100, 0.02)
    assert S.outlook(iv, 1000).available == 1000
    z = S.NormalDist().inv_cdf(0.975)
    half = z * 0.02 * math.sqrt(100 / 120)
    edge = S.Interval(0.0001, -half, half, 0.95, 100, 0.02)
    assert S.outlook(edge, 120).status == S.OPEN


def test_the_normalized_median_is_silent_when_a_task_is_at_chance():
    import warnings

    stat = S.normalized_median_difference({}, {"t": 0.5})
    means = {"t": np.array([[0.6, 0.5, 0.5]])}  # the full model at chance: x / 0 and 0 / 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(stat(means)[0])


def test_resample_weights_draw_each_stratum_on_its_own():
    w = S.resample_weights(np.random.default_rng(0), [3, 5], 400)
    assert w.shape == (400, 8) and w.dtype == float
    assert (w[:, :3].sum(axis=1) == 3).all() and (w[:, 3:].sum(axis=1) == 5).all()
    assert w.mean() == pytest.approx(1.0, abs=0.05) and (w > 0).any(axis=0).all()


def test_bootstrap_scores_row_zero_is_observed_and_chunks_do_not_change_the_draws():
    x = np.random.default_rng(1).normal(size=(40, 2))
    sc = S.Scorer((40,), lambda w, rng: (w @ x) / w.sum(axis=1, keepdims=True))
    seen = []
    sc_seen = S.Scorer((40,), lambda w, rng: (seen.append(rng), (w @ x) / w.sum(axis=1, keepdims=True))[1])
    one = S.bootstrap_scores({"t": sc}, resamples=300, seed=4)["t"]
    chunked = S.bootstrap_scores({"t": sc_seen}, resamples=300, seed=4, budget=40 * 7)["t"]
    assert one.shape == (301, 2) and np.allclose(one[0], x.mean(axis=0))
    np.testing.assert_allclose(one, chunked, rtol=0, atol=1e-12)  # the same draws (matmul rounding aside)
    assert seen[0] is None and all(r is not None for r in seen[1:]) and len(seen) == 1 + -(-300 // 7)
    other = S.bootstrap_scores({"t": sc}, resamples=300, seed=5)["t"]
    assert not np.array_equal(one[1:], other[1:]) and np.array_equal(one[0], other[0])


def test_a_multi_level_layer_list_materializes():
    """OPT's layers sit at model.decoder.layers: the rebuild check walks a dotted path."""
    model = tiny.make("opt")
    ids = _ids()
    with rewired(model, "0,2,2,7"):
        want = _logits(model, ids)
    out = rewire.materialize(model, "0,2,2,7")
    assert len(rewire.original_layers(out)) == 4
    torch.testing.assert_close(_logits(out, ids), want, rtol=0, atol=1e-6)


def test_a_forward_pre_hook_on_a_member_is_foreign():
    from glue_painters.batched import _foreign_hooks

    layer = tiny.make("llama").model.layers[3]
    assert not _foreign_hooks([layer])
    handle = layer.self_attn.register_forward_pre_hook(lambda m, a: None)
    assert _foreign_hooks([layer])
    handle.remove()
    handle = layer.register_forward_hook(lambda m, a, o: None)
    assert _foreign_hooks([layer])
    handle.remove()


def test_layer_signatures_tell_objects_apart_by_identity_by_default():
    from glue_painters.batched import layer_signature

    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    a.table, b.table = object(), object()  # e.g. a per-layer rotary table: same class, other object
    assert layer_signature(a) != layer_signature(b)
    assert layer_signature(a, identities=False) == layer_signature(b, identities=False)


@torch.no_grad()
def test_a_two_member_group_runs_batched_and_keeps_its_stack():
    from glue_painters.rewire import _get_list

    model = tiny.make("llama").double()
    ids = _ids()
    plan = "0-2,[3,4],5-7"
    with rewired(model, plan):
        want = _logits(model, ids)
    with rewired(model, plan, parallel="batched"):
        got = _logits(model, ids)
        runners = {id(e._buffer.runner): e._buffer.runner for e in _get_list(model)
                   if getattr(getattr(e, "_buffer", None), "runner", None)}
        (runner,) = runners.values()
        (cls,) = {id(c): c for c in runner.classes.values()}.values()
        assert cls.broken is None and len(cls.positions) == 2
        stack = cls._stack
        assert stack is not None  # inference: the stacked copy is kept (not re-stacked per call)
        _logits(model, ids)
        assert cls._stack is stack  # nothing changed: the stacked copy is reused, not rebuilt
    torch.testing.assert_close(got, want, rtol=0, atol=1e-10)


def test_generation_orders_every_request_and_keeps_at_least_one_prompt_token():
    from decoder_eval.generation import Generator
    from decoder_eval.tasks import GenerationRequest
    from glue_painters.errors import UserError

    model, tok = tiny_lm("llama"), byte_tokenizer()
    gen = Generator(model, tok, batch_size=2)
    top = gen.encoder.max_length
    requests = [GenerationRequest("a b c", ("\n",), 4), GenerationRequest("d", (".",), 4),
                GenerationRequest("e f", ("\n",), 4), GenerationRequest("g h i j", (".",), top - 1)]
    prepared = gen.prepare(requests)
    assert sorted(prepared.order) == [0, 1, 2, 3]  # every group's requests, in its order
    last = [b for b in prepared.batches if 3 in b[2]][0]
    assert last[0].shape[1] == 1  # top - 1 new tokens leave room for one prompt token
    with pytest.raises(UserError, match="leaves no room"):
        gen.prepare([GenerationRequest("x", ("\n",), top)])


def test_a_scorer_takes_a_batch_of_one_and_refuses_zero():
    model, tok = tiny_lm("llama"), byte_tokenizer()
    assert LoglikelihoodScorer(model, tok, batch_size=1).batch_size == 1
    with pytest.raises(ValueError, match="at least 1"):
        LoglikelihoodScorer(model, tok, batch_size=0)


def test_the_sharing_check_names_the_model_and_timing_names_the_phases():
    model, tok = tiny_lm("gpt2"), byte_tokenizer()
    scorer = LoglikelihoodScorer(model, tok)
    groups = [[LoglikelihoodRequest("abc", "de")]]
    with pytest.warns(UserWarning, match="^GPT2LMHeadModel: running a plan in pieces differs"):
        scorer.score(scorer.prepare(groups), [variants.full(T)])
    llama = LoglikelihoodScorer(tiny_lm("llama"), tok)
    llama.timing = {}
    llama.score(llama.prepare(groups), [variants.skip(T, 2), variants.skip(T, 1)])
    assert {"prefix", "suffix", "lm_head"} <= set(llama.timing)


def test_rows_are_filled_to_about_their_capacity():
    tok = byte_tokenizer()
    enc = Encoder(tok, tiny_lm("llama").config)
    groups = [[enc.pair("context %d" % i, " yes"), enc.pair("context %d" % i, " no")] for i in range(12)]
    rows = build_rows(groups, enc, pack=True, window=None, row_tokens=40)
    total = sum(len(r.tokens) for r in rows)
    assert len(rows) == -(-total // 40) > 1
    assert max(len(r.tokens) for r in rows) - min(len(r.tokens) for r in rows) <= 15
