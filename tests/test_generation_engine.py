"""Generation for all plans at once (``decoder_eval.generation_engine``) against stock lm-eval's
``HFLM.generate_until`` run plan by plan on the rewired model.

Why float64: greedy argmax on a tiny random model has near-ties, and the engine's batch shapes
(rows of many plans, growing caches, a prefix computed apart) round differently from stock's in
float32, so a float32 comparison could fail on rounding, or pass by luck with another thread
count. Cast to float64, rounding differences are ~1e-16 while the gap between the two best
logits on these models is orders of magnitude larger, so the verdict is the same on any machine;
the tests check the gap too (``_margin``) rather than assume it. The byte-level tokenizer makes
text equality token equality (one token per byte).
"""

from __future__ import annotations

import pytest
import torch

import tiny
from decoder_eval.generation_engine import BatchGenerator, branches, greedy_is_argmax, plan_groups
from decoder_eval.lm_eval_interop import local_task_yamls, prompt_mismatches, rewired_lm, seed_like_simple_evaluate
from decoder_eval.progress import GenerationProgress
from decoder_eval.tasks import GenerationRequest
from glue_painters import variants
from test_decoder_fixtures import byte_tokenizer, data_dir, one_thread, tiny_lm  # noqa: F401

pytest.importorskip("lm_eval", reason="stock lm-eval is not installed (pip install -e '.[test]')")

T = tiny.LAYERS
PLANS = [variants.build("full", T), variants.build("skip", T, n=1), variants.build("reverse", T, n=0),
         variants.build("random", T, n=1, seed=3), variants.build("parallel", T, n=2),
         variants.build("looped_parallel", T, n=1, k=3), variants.build("middle_repeat", T, n=2),
         variants.build("skip", T, n=2)]
# prompts of different lengths (left padding), stop strings that fire early in some rows and never
# in others, and two lengths to generate (lm-eval batches requests by their generation settings)
REQUESTS = [("Question: a b c\nAnswer:", ["\n"], 14), ("Hi", ["zz"], 14), ("x y", ["!"], 14),
            ("Question: a longer prompt is here\nAnswer:", ["q", "e"], 14), ("Say it", ["."], 9)]


def _requests():
    return [GenerationRequest(c, tuple(u), n) for c, u, n in REQUESTS]


def stock_generate(model, tok, plan, batch_size=2) -> list[str]:
    """Stock lm-eval: ``HFLM.generate_until`` on the model under ``plan``."""
    from lm_eval.api.instance import Instance

    instances = [Instance("generate_until", {}, (c, {"until": list(u), "max_gen_toks": n, "do_sample": False}), i)
                 for i, (c, u, n) in enumerate(REQUESTS)]
    with rewired_lm(model, tok, plan, batch_size=batch_size) as lm:
        return lm.generate_until(instances, disable_tqdm=True)


def _model(arch):
    return tiny_lm(arch).double()


@pytest.mark.parametrize("arch", ["llama", "gemma3_text", "gemma2", "qwen2", "gpt_neox", "mistral"])
def test_every_plan_generates_what_stock_lm_eval_generates(arch):
    """llama/qwen2/mistral: grouped-query attention; gemma3_text and gemma2: sliding-window layers
    (a 4-token window, far shorter than the prompts) and embeddings scaled by the embedding module
    (the first layer's input is not the table's row), Gemma 2's logit soft-capping; gpt_neox:
    parallel residual. One call for all plans, compared plan by plan."""
    model, tok = _model(arch), byte_tokenizer()
    engine = BatchGenerator(model, tok, batch_size=3)
    ours = engine.run(engine.prepare(_requests()), PLANS)
    assert engine.fallback is None  # the shared engine ran, not the plan-by-plan fallback
    for plan in PLANS:
        assert ours[plan.text] == stock_generate(model, tok, plan), (arch, plan.text)


@pytest.mark.parametrize("arch", ["gpt2", "opt"])
def test_models_that_transform_inputs_embeds_fall_back_to_plan_by_plan(arch):
    """GPT-2 and OPT add learned positions to ``inputs_embeds`` inside their forward: a branch fed
    a hidden state would be wrong, so the engine refuses to share and generates plan by plan."""
    model, tok = _model(arch), byte_tokenizer()
    engine = BatchGenerator(model, tok, batch_size=3)
    ours = engine.run(engine.prepare(_requests()), PLANS[:3])
    assert engine.fallback is not None and "pieces" in engine.fallback
    for plan in PLANS[:3]:
        assert ours[plan.text] == stock_generate(model, tok, plan, batch_size=3), plan.text


def test_a_generation_config_that_is_not_argmax_falls_back():
    model, tok = _model("llama"), byte_tokenizer()
    model.generation_config.repetition_penalty = 1.5
    assert not greedy_is_argmax(model)[0]
    engine = BatchGenerator(model, tok, batch_size=3)
    ours = engine.run(engine.prepare(_requests()), PLANS[:2])
    assert "repetition_penalty" in engine.fallback
    for plan in PLANS[:2]:
        assert ours[plan.text] == stock_generate(model, tok, plan, batch_size=3), plan.text


def test_margins_are_far_above_float64_rounding():
    """The verdicts above do not hang on rounding: at every greedy step of every plan the best
    logit leads the second by far more than float64 rounding could move it."""
    from glue_painters.rewire import rewired

    model, tok = _model("gemma3_text"), byte_tokenizer()
    worst = float("inf")
    for plan in PLANS:
        with rewired(model, plan), torch.no_grad():
            for context, _, n in REQUESTS:
                ids = tok(context, return_tensors="pt")["input_ids"]
                out = model.generate(ids, max_new_tokens=n, do_sample=False, output_scores=True,
                                     return_dict_in_generate=True, pad_token_id=tok.pad_token_id)
                for scores in out.scores:
                    top = scores[0].topk(2).values
                    worst = min(worst, float(top[0] - top[1]))
    assert worst > 1e-9


def test_memory_budget_groups_keep_prefixes_together_and_change_nothing():
    model, tok = _model("llama"), byte_tokenizer()
    roots, ordered = branches(PLANS)
    per_token, rows, length = 1000, 3, 40
    everything = plan_groups(PLANS, rows, length, per_token, None)
    assert [p.text for p in everything[0]] == [p.text for p in ordered]
    from decoder_eval.generation_engine import group_bytes

    budget = group_bytes(ordered[:3], rows, length, per_token)
    groups = plan_groups(PLANS, rows, length, per_token, budget)
    assert len(groups) > 1 and [p.text for g in groups for p in g] == [p.text for p in ordered]
    assert all(len(g) == 1 or group_bytes(g, rows, length, per_token) <= budget for g in groups)
    whole = BatchGenerator(model, tok, batch_size=3)
    split = BatchGenerator(model, tok, batch_size=3, memory_budget=1)  # every plan alone
    prepared = whole.prepare(_requests())
    assert len(split.units(prepared, PLANS)) == len(prepared.batches) * len(PLANS)
    assert split.run(prepared, PLANS) == whole.run(prepared, PLANS)


def test_a_killed_pass_resumes_at_its_last_finished_unit(tmp_path):
    model, tok = _model("qwen2"), byte_tokenizer()
    engine = BatchGenerator(model, tok, batch_size=2)
    prepared = engine.prepare(_requests())
    want = engine.run(prepared, PLANS)
    progress = GenerationProgress.of(tmp_path, {"task": "t"}, prepared, PLANS)
    calls = []

    class Killed(Exception):
        pass

    class Dies(BatchGenerator):
        def decode(self, *a, **k):
            if len(calls) == 2:
                raise Killed
            calls.append(1)
            return super().decode(*a, **k)

    with pytest.raises(Killed):
        Dies(model, tok, batch_size=2).run(prepared, PLANS, checkpoint=progress)
    again = []

    class Counts(BatchGenerator):
        def decode(self, *a, **k):
            again.append(1)
            return super().decode(*a, **k)

    assert Counts(model, tok, batch_size=2).run(prepared, PLANS, checkpoint=progress) == want
    assert len(again) == len(prepared.batches) - 2  # the two finished units were read back


def test_stock_reference_prompts_equal_ours_once_seeded_like_simple_evaluate(data_dir, tmp_path):
    """The benchmark's stock side calls ``evaluate`` itself; without ``simple_evaluate``'s few-shot
    seeding its GSM8K prompts are other few-shot examples, and other ones again on every later
    plan. Seeded before each ``evaluate`` they are ours, plan after plan."""
    from lm_eval.tasks import TaskManager

    from decoder_eval.evaluate import load_tasks

    ours = load_tasks(["gsm8k"], data_dir)
    names = local_task_yamls(tmp_path / "yamls", data_dir, ["gsm8k"])
    loaded = TaskManager(include_path=str(tmp_path / "yamls"), include_defaults=False).load(list(names.values()))
    (task,) = loaded["tasks"].values()

    def samples():
        task.build_all_requests(limit=None, rank=0, world_size=1)
        return {"gsm8k": [{"doc_id": i.doc_id, "arguments": [i.args]} for i in task.instances]}

    unseeded = [prompt_mismatches(ours, samples()) for _ in range(3)]
    assert any(unseeded)  # what the benchmark compared against before
    for _ in range(3):
        seed_like_simple_evaluate(loaded)
        assert prompt_mismatches(ours, samples()) == []
