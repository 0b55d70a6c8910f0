"""Tests that kill the mutants earlier mutation runs of the core, the engine and the statistics
left alive (issue 28, ``reports/mutation.md``): each one sits at the boundary that decides its
mutant. The guards of the issue's own silent bugs are in ``test_mutation_guards.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import transformers
import torch

import tiny
from decoder_eval.encoding import Encoder
from decoder_eval.loglikelihood import LoglikelihoodScorer
from decoder_eval.packing import build_rows
from decoder_eval.tasks import LoglikelihoodRequest
from glue_painters import rewire, stats as S, variants
from glue_painters.plans import PlanError
from glue_painters.rewire import rewired
from test_decoder_fixtures import byte_tokenizer, tiny_lm
from test_mutation_guards import _ids, _logits

T = tiny.LAYERS


def _the_batched_runner(model):
    """The one batched runner of the plan on ``model`` (shared by every entry of its group)."""
    from glue_painters.rewire import _get_list

    runners = {id(e._buffer.runner): e._buffer.runner for e in _get_list(model)
               if getattr(getattr(e, "_buffer", None), "runner", None)}
    (runner,) = runners.values()
    return runner


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
    model = tiny.make("llama").double()
    ids = _ids()
    plan = "0-2,[3,4],5-7"
    with rewired(model, plan):
        want = _logits(model, ids)
    with rewired(model, plan, parallel="batched"):
        got = _logits(model, ids)
        runner = _the_batched_runner(model)
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


# ---- what the second run left alive ------------------------------------------------------------
def test_a_heterogeneous_config_is_refused_before_anything_changes():
    """A config whose layers differ (transformers' ``per_layer_config``) cannot be reordered by
    index: the refusal names the reason, and the model is left as it was."""
    model = tiny.make("llama")
    if not hasattr(model.config, "is_heterogeneous"):  # transformers before per_layer_config (5.6.0)
        pytest.skip(f"transformers {transformers.__version__} has no per_layer_config: no such model exists")
    model.config.per_layer_config = {1: {"intermediate_size": model.config.intermediate_size}}
    assert model.config.is_heterogeneous
    layers = list(rewire.original_layers(model))
    with pytest.raises(rewire.RewireError, match="^models with a heterogeneous per_layer_config are not supported"):
        rewire.apply_plan(model, "0,1,2")
    assert rewire.current_plan(model) is None and list(model.model.layers) == layers
    assert model.config.num_hidden_layers == T


def test_the_slot_view_reads_each_cache_class_signature_and_refuses_a_moved_layer_idx():
    """The remap follows the real signature, inspected once per cache class: a class never seen
    before (defined here, so no earlier test filled the per-class table) gets its ``layer_idx``
    found and replaced by the slot; a release that moved ``layer_idx`` in ``update`` is refused
    with the reason, not fed the slot in the wrong place."""
    from transformers.cache_utils import DynamicCache

    from glue_painters.slot_cache import CacheBypassError, SlotCache

    class Fresh(DynamicCache):
        pass

    cache = Fresh()
    for i in range(3):
        cache.update(torch.zeros(1, 2, i + 1, 8), torch.zeros(1, 2, i + 1, 8), i)
    view = SlotCache(cache, 1)
    k, v = view.update(torch.ones(1, 2, 1, 8), torch.ones(1, 2, 1, 8), 0)
    assert k.shape[2] == 3 and cache.get_seq_length(1) == 3 and cache.get_seq_length(0) == 1
    assert view.get_seq_length(0) == 3 and view.get_seq_length() == 3

    class Moved(DynamicCache):
        def update(self, layer_idx, key_states, value_states, cache_kwargs=None):
            return super().update(key_states, value_states, layer_idx, cache_kwargs)

    with pytest.raises(CacheBypassError, match=r"^Moved\.update no longer takes \(key_states, value_states, "
                                               r"layer_idx, \.\.\.\): this transformers release changed the cache API"):
        SlotCache(Moved(), 0).update(torch.zeros(1, 2, 1, 8), torch.zeros(1, 2, 1, 8), 0)


def test_padding_is_the_tokenizers_pad_token():
    """Rows shorter than their batch are padded with the tokenizer's pad token (lm-eval's
    padding), not with token 0, a real byte of this vocabulary."""
    tok = byte_tokenizer()
    assert tok.pad_token_id not in (None, 0)
    scorer = LoglikelihoodScorer(tiny_lm("llama"), tok, pack=False)
    assert scorer.pad_id == tok.pad_token_id
    prepared = scorer.prepare([[LoglikelihoodRequest("a long context here", " x")],
                               [LoglikelihoodRequest("ab", " y")]])
    (batch,) = prepared.batches
    short = min(range(2), key=lambda r: batch.lengths[r])
    assert batch.lengths[short] < batch.input_ids.shape[1]
    assert (batch.input_ids[short, batch.lengths[short]:] == tok.pad_token_id).all()


def test_results_are_folded_only_when_a_request_is_not_its_own_pair_in_order():
    """``Prepared.owners`` is None exactly when request i is pair i alone (nothing to fold); a
    rolling request scored before the plain one of its group makes the order differ, and then
    the map is kept, whose fold gives each request its own pair's result."""
    from decoder_eval.rolling import RollingRequest

    scorer = LoglikelihoodScorer(tiny_lm("llama"), byte_tokenizer())
    plain = LoglikelihoodRequest("abc", " d")
    assert scorer.prepare([[plain, LoglikelihoodRequest("abc", " e")], [plain]]).owners is None
    assert scorer.prepare([[RollingRequest("some text")], [plain]]).owners is None
    mixed = scorer.prepare([[plain, RollingRequest("some text")]])
    assert mixed.owners == [[1], [0]]
    plan = variants.full(T)
    ll = scorer.score(mixed, [plan])[plan.text]
    alone = scorer.score(scorer.prepare([[plain]]), [plan])[plan.text]
    assert len(ll) == 2 and ll[0][1] == alone[0][1] and math.isclose(ll[0][0], alone[0][0], abs_tol=1e-4)


def test_a_degenerate_interval_is_empty_and_counts_its_resamples():
    """Fewer than two finite resamples, or a point that is not finite, give no interval (NaN
    ends and spread), with the resamples made and dropped still counted."""
    one = S.effect_interval([0.5], [[0.3], [math.nan]], 0.95, 10)
    assert math.isnan(one.low) and math.isnan(one.high) and math.isnan(one.se)
    assert (one.estimate, one.level, one.n, one.dropped, one.draws) == (0.5, 0.95, 10, 1, 2)
    no_point = S.effect_interval([math.nan], np.linspace(0, 1, 50)[:, None], 0.95, 10)
    assert math.isnan(no_point.estimate) and math.isnan(no_point.low) and math.isnan(no_point.high)
    assert (no_point.dropped, no_point.draws) == (0, 50)


def test_a_percentile_interval_counts_its_resamples_and_is_for_one_component():
    draws = np.concatenate([np.linspace(0.2, 1.0, 1001), [math.nan, math.inf, -math.inf]])[:, None]
    iv = S.effect_interval([1.0], draws, 0.9, 30, method="percentile")
    finite = np.linspace(0.2, 1.0, 1001)
    assert (iv.low, iv.high) == tuple(float(x) for x in np.quantile(finite, [0.05, 0.95]))
    assert iv.se == float(np.std(finite, ddof=1))
    assert (iv.dropped, iv.draws) == (3, 1004)
    assert S.effect_interval([1.0], finite[:, None], 0.9, 30, method="percentile").dropped == 0
    with pytest.raises(ValueError, match="^a percentile interval is for one component"):
        S.effect_interval([1.0, 0.5], np.zeros((10, 2)), 0.9, 30, method="percentile")



def test_a_deep_copy_of_a_model_with_a_parallel_plan_on_is_still_seen_as_rewired():
    """The layer list is found by our rewired list first, then by structure: a copy of a model
    with a plan on (not yet remembered, and whose list holds entries of two classes, which the
    structural search cannot take for a layer list) reads its plan back and removes it."""
    import copy

    model = tiny.make("llama")
    rewire.apply_plan(model, "0-2,[3,4],5-7")
    twin = copy.deepcopy(model)
    assert str(rewire.current_plan(twin)) == "0-2,[3,4],5-7"
    assert len(rewire.original_layers(twin)) == T
    rewire.remove_plan(twin)
    assert rewire.current_plan(twin) is None and twin.config.num_hidden_layers == T
    assert [type(layer).__name__ for layer in twin.model.layers] == ["LlamaDecoderLayer"] * T
    assert str(rewire.current_plan(model)) == "0-2,[3,4],5-7"


def test_batched_members_of_different_config_layer_types_run_in_separate_calls():
    """Members whose ``config.layer_types`` differ get different masks and rotary tables from
    a forward that picks them by position, so they never share one vmapped call, even when
    their modules look alike (here a llama given a layer_types list its layers do not record)."""
    model = tiny.make("llama").double()
    model.config.layer_types = ["full_attention", "sliding_attention"] * (T // 2)
    ids = _ids()
    plan = "0-2,[3,4,5,6],7"
    with rewired(model, plan):
        want = _logits(model, ids)
    with rewired(model, plan, parallel="batched"):
        got = _logits(model, ids)
        runner = _the_batched_runner(model)
        classes = {id(c): c for c in runner.classes.values()}.values()
        assert sorted(sorted(c.positions) for c in classes) == [[0, 2], [1, 3]]
        assert all(c.broken is None for c in classes)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-10)
