"""The scoring engine against the plainest possible reference, on tiny random models of every
decoder architecture: for each plan, each request alone, ``model(ids).logits`` under
``rewired(model, plan)``, log-softmax, sum. Prefix reuse, packing (one row per shared context),
batching with padding and scoring only the needed positions must all agree with it."""

from __future__ import annotations

import pytest
import torch

import tiny
from decoder_eval.encoding import Encoder
from decoder_eval.evaluate import Evaluator, evaluate_plan, evaluate_plans, load_tasks
from decoder_eval.generation import Generator
from decoder_eval.loglikelihood import LoglikelihoodScorer
from decoder_eval.prefix import PlanTrie, check_exact
from decoder_eval.tasks import GenerationRequest
from glue_painters import variants
from glue_painters.rewire import current_plan, rewired
from test_decoder_fixtures import byte_tokenizer, data_dir, one_thread, tiny_lm  # noqa: F401

T = tiny.LAYERS
# models whose forward transforms ``inputs_embeds`` before the first layer (learned positions
# added, an embedding LayerNorm): a prefix cannot be handed on as ``inputs_embeds``, the exactness
# check says so, and the engine runs them plan by plan
EMBEDS_TRANSFORMED = {"gpt2", "opt", "bloom"}
PLANS = [variants.build("full", T), variants.build("skip", T, n=1), variants.build("reverse", T, n=0),
         variants.build("random", T, n=1, seed=3), variants.build("parallel", T, n=2),
         variants.build("looped_parallel", T, n=1, k=3), variants.build("middle_repeat", T, n=2)]


@torch.no_grad()
def reference(model, tokenizer, plan, requests):
    """One request at a time, from scratch, the model's own logits."""
    enc, out = Encoder(tokenizer, model.config), []
    with rewired(model, plan):
        for r in requests:
            pair = enc.pair(r.context, r.continuation)
            ids = enc.model_input(pair)
            logprobs = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), -1)
            cont = torch.tensor(pair.continuation)
            rows = logprobs[len(ids) - len(cont):]
            out.append((float(rows.gather(1, cont[:, None]).sum()), bool((rows.argmax(-1) == cont).all())))
    return out


@pytest.mark.parametrize("arch", list(tiny.DECODERS))
def test_shared_prefixes_and_packed_rows_equal_scoring_each_plan_from_scratch(arch, data_dir):
    model, tok = tiny_lm(arch), byte_tokenizer()
    data = load_tasks(["lambada_openai", "arc_easy", "hellaswag", "winogrande"], data_dir)
    scorer = LoglikelihoodScorer(model, tok, batch_size=3)
    assert scorer.pack == (arch != "bloom")  # sdpa: one row per item (not ALiBi: no position_ids)
    for name, task_data in data.items():
        requests = [r for it in task_data.items for r in it.requests]
        got = scorer.score(scorer.prepare([it.requests for it in task_data.items]), PLANS)
        assert scorer.share_prefix == (arch not in EMBEDS_TRANSFORMED), "check_exact's verdict"
        for plan in PLANS:
            want = reference(model, tok, plan, requests)
            for (ll, greedy), (ll_ref, greedy_ref) in zip(got[plan.text], want, strict=True):
                assert ll == pytest.approx(ll_ref, abs=1e-4), (name, plan.text)
                assert greedy == greedy_ref, (name, plan.text)
    assert current_plan(model) is None  # nothing left rewired


@pytest.mark.parametrize("arch", list(tiny.DECODERS))
def test_split_forward_is_bit_exact(arch):
    ok, diff = check_exact(tiny_lm(arch), list(range(5, 17)))
    if arch in EMBEDS_TRANSFORMED:
        assert not ok and diff > 0
    else:
        assert ok and diff == 0.0


def test_packing_rows_share_contexts_and_respect_sliding_windows(data_dir):
    tok = byte_tokenizer()
    arc = load_tasks(["arc_easy"], data_dir)["arc_easy"]
    groups = [it.requests for it in arc.items]
    packed = LoglikelihoodScorer(tiny_lm("llama"), tok, batch_size=8).prepare(groups)
    plain = LoglikelihoodScorer(tiny_lm("llama"), tok, batch_size=8, pack=False).prepare(groups)
    assert len(packed.batches[0].input_ids) == 1 and len(plain.batches[0].input_ids) == 7  # both items, one row
    assert packed.n_tokens < plain.n_tokens / 2  # the question is in each row once, not once per answer
    assert packed.batches[0].attention_mask is not None and plain.batches[0].attention_mask is None
    # tiny Gemma 3 has a 4-token sliding window: longer items must not be packed
    gemma = LoglikelihoodScorer(tiny_lm("gemma3_text"), tok, batch_size=8).prepare(groups)
    assert gemma.batches[0].attention_mask is None and gemma.n_tokens == plain.n_tokens


def test_eager_attention_gets_an_additive_mask_and_the_same_scores(data_dir):
    tok = byte_tokenizer()
    sdpa, eager = tiny_lm("llama"), tiny_lm("llama")
    eager.config._attn_implementation = "eager"
    data = load_tasks(["arc_easy"], data_dir)
    a = evaluate_plans(sdpa, tok, PLANS[:3], data)
    b = evaluate_plans(eager, tok, PLANS[:3], data)
    for plan in PLANS[:3]:
        assert a[plan.text]["arc_easy"].metrics == b[plan.text]["arc_easy"].metrics
    prep = LoglikelihoodScorer(eager, tok).prepare([it.requests for it in data["arc_easy"].items])
    assert prep.batches[0].attention_mask.dtype == torch.float32


def test_fallback_without_sharing_gives_the_same_results(data_dir):
    model, tok = tiny_lm("qwen2"), byte_tokenizer()
    data = load_tasks(["winogrande", "lambada_openai"], data_dir)
    shared = evaluate_plans(model, tok, PLANS, data)
    alone = evaluate_plans(model, tok, PLANS, data, share_prefix=False, pack=False)
    for plan in PLANS:
        for task in data:
            for a, b in zip(shared[plan.text][task].per_item, alone[plan.text][task].per_item, strict=True):
                assert a == pytest.approx(b, abs=1e-4)  # "perplexity" items are loglikelihoods


def test_trie_shares_the_common_layers():
    trie = PlanTrie(PLANS)
    alone = sum(p.executions for p in {p.text: p for p in PLANS}.values())
    assert trie.layer_executions() < alone
    # every plan starts with layer 0: the root has one child
    assert len(trie.root.children) == 1


def test_generation_batches_and_cuts_at_stop_strings():
    model, tok = tiny_lm("llama"), byte_tokenizer()
    plan = variants.build("skip", T, n=1)
    reqs = [GenerationRequest("Question: a b c\nAnswer:", ("\n",), 6),
            GenerationRequest("Hi", ("zz",), 6), GenerationRequest("Question: longer prompt here\nAnswer:", ("q",), 6)]
    gen = Generator(model, tok, batch_size=2)
    out = gen.run(gen.prepare(reqs), plan)
    for req, text in zip(reqs, out):
        ids = tok(req.context, return_tensors="pt")["input_ids"]
        with torch.no_grad(), rewired(model, plan):
            alone = model.generate(ids, max_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id)
        want = tok.decode(alone[0, ids.shape[1]:], skip_special_tokens=True)
        for stop in req.until + (tok.eos_token,):
            want = want.split(stop)[0]
        assert text == want
        assert not any(stop in text for stop in req.until)


def test_evaluate_plan_accepts_variant_specs(data_dir):
    model, tok = tiny_lm("gpt_neox"), byte_tokenizer()
    scores = evaluate_plan(model, tok, "skip:n=2", ["arc_easy"], limit=1, data_dir=data_dir)
    assert set(scores["arc_easy"]) == {"acc", "acc_norm"}
    with pytest.raises(Exception, match="N=9 is out of range"):
        evaluate_plan(model, tok, "skip:n=9", ["arc_easy"], data_dir=data_dir)


def test_evaluator_prepares_each_task_once(data_dir):
    ev = Evaluator(tiny_lm("llama"), byte_tokenizer())
    data = load_tasks(["arc_easy"], data_dir)["arc_easy"]
    assert ev.prepare(data) is ev.prepare(data)
