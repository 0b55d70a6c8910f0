"""Work accounting (decoder_eval/work.py) against a hand count, and its 'executed' side against
what the engine really runs (forward hooks counting the tokens each layer sees)."""

from __future__ import annotations

import pytest
import torch

import tiny
from decoder_eval.evaluate import load_tasks
from decoder_eval.loglikelihood import LoglikelihoodScorer, Prepared
from decoder_eval.packing import Row, Target, make_batches
from decoder_eval.work import Shapes, engine_executions, loglikelihood_work, required_executions, sweep_work
from glue_painters import variants
from glue_painters.plans import Plan
from glue_painters.rewire import original_layers
from test_decoder_fixtures import byte_tokenizer, data_dir, one_thread, tiny_lm  # noqa: F401

PLANS = [Plan.parse("0-7"), Plan.parse("0-3,6-7"), Plan.parse("0-3,[4-5],6-7")]


def test_layer_executions_by_hand():
    # trie: 0-3 shared by all three; at the state after 3 the steps Layer(4), Layer(6) and the group
    # [4,5]; below them 5,6,7 / 7 / 6,7. Engine: 4 + (1 + 1 + 2) + (3 + 1 + 2) = 14, the first 4
    # serving several plans. Required: the group's member 4 is Layer(4) on the same state, so
    # 4 + |{4, 6, 5}| + 6 = 13, and layer 4 there serves two plans.
    done, need = engine_executions(PLANS), required_executions(PLANS)
    assert len(done) == 14 and sum(s > 1 for _, s in done) == 4
    assert len(need) == 13 and sum(s > 1 for _, s in need) == 5
    assert len(engine_executions(PLANS, share=False)) == 8 + 6 + 8


def _hand_batch():
    one, two = Row(), Row()
    one.add([1, 2, 3, 4])  # nodes 0-3, depths 0-3
    one.add([1, 2, 3, 5, 6])  # nodes 4 (parent 2, depth 3) and 5 (depth 4)
    one.targets += [Target(0, [2], [4]), Target(1, [2, 4], [5, 6])]  # node 2 scored twice
    two.add([7, 8])
    two.targets.append(Target(2, [1], [9]))
    return Prepared(make_batches([one, two], batch_size=2, pad_id=0), 3, True)


def test_flops_by_hand():
    # tiny llama: hidden 32, 4 heads of 8, 2 kv heads, intermediate 48, vocab 97
    shapes = Shapes.of(tiny.make("llama"))
    per_layer = 32 * 32 * 2 + 32 * 16 * 2 + 32 * 48 * 3  # q, o; k, v; gate, up, down
    assert shapes.layer_params == (per_layer,) * 8 and shapes.pair_flops == 4 * 4 * 8
    prepared = _hand_batch()
    assert prepared.batches[0].lengths == (6, 2) and prepared.batches[0].input_ids.shape == (2, 6)
    w = loglikelihood_work(shapes, PLANS, prepared).phases
    lf = 2 * per_layer
    # required: 8 real tokens; executed: 2 x 6 padded
    assert w["prefix"].required == 5 * 8 * lf and w["suffix"].required == 8 * 8 * lf
    assert w["prefix"].executed == 4 * 12 * lf and w["suffix"].executed == 10 * 12 * lf
    # attention pairs: ancestors (1+2+3+4+4+5) + (1+2) = 22 needed; the masked 2 x 6 x 6 block run
    assert w["attention"].required == 13 * 22 * 128 and w["attention"].executed == 14 * 72 * 128
    # head: 3 distinct scored positions (node 2 is read twice), per plan
    assert w["lm_head"].required == w["lm_head"].executed == 3 * 3 * 2 * 32 * 97
    plain = loglikelihood_work(shapes, PLANS, prepared, share=False).phases
    assert plain["prefix"].executed == 0 and plain["suffix"].executed == 22 * 12 * lf
    assert plain["lm_head"].executed == 3 * 12 * 2 * 32 * 97


@pytest.mark.parametrize("pack", [True, False])
def test_executed_is_what_the_engine_runs(data_dir, pack):
    """Every token every layer module sees during ``score``, counted by hooks, is the executed
    layer work; the accounting must match it exactly (padding included: plain rows pad)."""
    model, tok = tiny_lm("llama"), byte_tokenizer()
    plans = [variants.build(v, 8, n=1) for v in ("skip", "reverse", "parallel", "middle_repeat")] + PLANS
    scorer = LoglikelihoodScorer(model, tok, batch_size=3, pack=pack)
    data = load_tasks(["arc_easy", "hellaswag"], data_dir)["hellaswag"]
    prepared = scorer.prepare([it.requests for it in data.items])
    scorer._sharing(prepared.batches[-1].input_ids[0, :8].tolist())  # the one-time check, not counted
    shapes = Shapes.of(model)
    seen, head_rows = [], []
    hooks = [layer.register_forward_hook(lambda m, a, o, i=i: seen.append((i, a[0].shape[0] * a[0].shape[1])))
             for i, layer in enumerate(original_layers(model))]
    hooks.append(model.get_output_embeddings().register_forward_hook(
        lambda m, a, o: head_rows.append(a[0].shape[:-1].numel())))
    try:
        scorer.score(prepared, plans)
    finally:
        for h in hooks:
            h.remove()
    work = sweep_work(shapes, plans, [prepared])
    ran = sum(shapes.layer_flops(i) * n for i, n in seen)
    assert ran == work.phases["prefix"].executed + work.phases["suffix"].executed
    assert sum(head_rows) * shapes.logit_flops == work.phases["lm_head"].executed
    if pack:  # the choices of an item share their context's last node: its logits are computed once
        assert work.phases["lm_head"].executed == work.phases["lm_head"].required
    assert work.tokens_executed == sum(b.input_ids.numel() for b in prepared.batches)
    assert work.tokens_required == prepared.n_tokens
    assert 1.0 < work.ratio < 2.0
    if not pack:
        assert work.tokens_executed > work.tokens_required  # so padding is really counted


def test_shapes_from_config_need_no_weights():
    from transformers import LlamaConfig

    config = LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                         num_key_value_heads=32, vocab_size=32000)
    shapes = Shapes.from_config(config)
    assert shapes.layer_params == (4 * 4096 * 4096 + 3 * 4096 * 11008,) * 32
    assert shapes.logit_flops == 2 * 4096 * 32000
    assert torch.get_default_device().type == "cpu"


@pytest.mark.parametrize("share", [True, False])
def test_work_ratio_is_one_without_waste(share):
    """One plan, one unpadded plain row scored at one position: nothing to waste but the causal
    half of attention the kernel computes."""
    row = Row()
    row.add([1, 2, 3])
    row.targets.append(Target(0, [2], [4]))
    prepared = Prepared(make_batches([row], 1, 0), 1, True)
    w = loglikelihood_work(Shapes.of(tiny.make("llama")), [Plan.parse("0-7")], prepared, share)
    assert w.phases["suffix"].ratio == 1.0 and w.phases["attention"].ratio == 1.0
    assert w.phases["lm_head"].ratio == (1.0 if share else 3.0)


def test_scorer_times_each_phase(data_dir):
    """``scorer.timing`` gets wall seconds per phase: shared branches, plan ends, the head."""
    model, tok = tiny_lm("llama"), byte_tokenizer()
    scorer = LoglikelihoodScorer(model, tok, batch_size=3)
    data = load_tasks(["arc_easy"], data_dir)["arc_easy"]
    prepared = scorer.prepare([it.requests for it in data.items])
    scorer.timing = {}
    scorer.score(prepared, PLANS)
    assert set(scorer.timing) == {"prefix", "suffix", "lm_head"} and min(scorer.timing.values()) > 0
    scorer.share_prefix, scorer.timing = False, {}
    scorer.score(prepared, PLANS)
    assert set(scorer.timing) == {"suffix", "lm_head"}


def test_gpu_prediction_is_compute_or_traffic_bound_by_hand():
    """``predict_seconds``: the longer of FLOPs at the stated rate and bytes at the stated bandwidth."""
    from decoder_eval.work import predict_seconds

    row = Row()
    row.add([1, 2, 3])
    row.targets.append(Target(0, [2], [4]))
    prepared = Prepared(make_batches([row], 1, 0), 1, True)
    shapes, plan = Shapes.of(tiny.make("llama")), [Plan.parse("0-7")]
    per_layer, io = 7680, (32 + 32) * 2 + (32 + 16) * 2 + (32 + 48) * 3  # weights; in + out of each linear
    assert shapes.layer_io == (io,) * 8
    fast_memory = predict_seconds(shapes, plan, prepared, flops=1e9, bandwidth=1e30)
    assert fast_memory["suffix"] == pytest.approx(8 * 3 * 2 * per_layer / 1e9)
    assert fast_memory["attention"] == pytest.approx(8 * 9 * 128 / 1e9)  # a plain row: 3 x 3 pairs counted
    assert fast_memory["lm_head"] == pytest.approx(2 * 32 * 97 / 1e9)
    fast_math = predict_seconds(shapes, plan, prepared, flops=1e30, bandwidth=1.0)
    assert fast_math["suffix"] == pytest.approx(8 * (per_layer + 3 * io) * 2)
    assert fast_math["lm_head"] == pytest.approx((32 * 97 + 32 + 97) * 2)


def test_generation_work_counts_the_prefill_once_and_each_rows_decode_steps():
    """Hand count of ``generation_work`` on one unpadded prompt and two plans that share layers
    0-3; its executed side is checked against forward hooks counting the tokens each layer sees."""
    from decoder_eval.generation_engine import BatchGenerator
    from decoder_eval.tasks import GenerationRequest
    from decoder_eval.work import generation_work

    model, tok = tiny_lm("llama").double(), byte_tokenizer()
    plans = [Plan.parse("0-7"), Plan.parse("0-3,6-7")]
    engine = BatchGenerator(model, tok, batch_size=2)
    engine.trace = []
    prepared = engine.prepare([GenerationRequest("abcdef", ("zzzz",), 5)])
    assert engine.check(prepared.batches[0][0][0].tolist()) is None  # its one-off check, before counting
    seen = []
    hooks = [layer.register_forward_hook(lambda m, a, o: seen.append(a[0].shape[0] * a[0].shape[1]))
             for layer in original_layers(model)]
    try:
        engine.run(prepared, plans)
    finally:
        for h in hooks:
            h.remove()
    shapes = Shapes.of(model)
    work = generation_work(shapes, plans, prepared, engine.generated, engine.trace)
    n, f, pair = 6, shapes.layer_flops, shapes.pair_flops
    made = {p.text: engine.generated[p.text][0] for p in plans}
    layers = {p.text: [u.index for u in p.units()] for p in plans}
    # prefill: layers 0-3 once for both plans, then 4-7 and 6-7: 10 executions on 6 tokens
    shared = list(range(8)) + [6, 7]
    prefill = sum(f(i) for i in shared) * n + len(shared) * n * (n + 1) // 2 * pair
    decode = sum((made[t] - 1) * sum(f(i) for i in ls) + len(ls) * sum(n + s for s in range(1, made[t])) * pair
                 for t, ls in layers.items())
    head = sum(made.values()) * shapes.logit_flops
    notes = work.notes
    assert notes["prefill"]["required"] == prefill
    assert notes["decode"]["required"] == decode
    assert notes["head"]["required"] == notes["head"]["executed"] == head
    # executed: no padding and no mask (the causal kernel's triangle): the prefill as required
    assert notes["prefill"]["executed"] == prefill
    # every layer-token the hooks saw is in the trace, and nothing else
    assert sum(seen) == sum(e[1].executions * e[2] * e[3] for e in engine.trace if e[0] == "layers")
    assert work.phases["generation"].ratio >= 1.0
