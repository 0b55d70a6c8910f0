"""Self-speculative decoding: the draft is a view of the same weights, greedy output is the full
model's token for token, sampling keeps the full model's distribution. Greedy equality on the tiny
models is checked in float64 (``tiny.EXACT``): in float32 a near-tie of two logits could be decided
by rounding, which the thread count moves."""

import gc
import weakref

import pytest
import torch
from scipy.stats import chi2_contingency

import tiny
from painters.commands.speculative import load_prompts, speculative_run
from glue_painters import variants
from painters.cli import main
from glue_painters.draft import draft_view
from glue_painters.models import ALIASES
from glue_painters.rewire import current_plan
from test_decoder_fixtures import byte_tokenizer, data_dir, tiny_lm  # noqa: F401

T = tiny.LAYERS
DRAFTS = {
    "skip": variants.skip(T, 2),
    "reverse": variants.reverse(T, 1),
    "middle_repeat": variants.middle_repeat(T, 1),
    "parallel": variants.parallel(T, 1),
    "looped_parallel": variants.looped_parallel(T, 1, 3),
}
PROMPTS = ["The cat sat on the", "Question: 2+3=?\nAnswer:", "In 1901 the river"]


def test_the_draft_shares_every_tensor_and_leaves_the_model_alone():
    model = tiny.make("llama", attn=None)
    ids = torch.randint(3, 90, (1, 9))
    with torch.no_grad():
        before = model(input_ids=ids).logits
    draft = draft_view(model, DRAFTS["looped_parallel"])
    full = {id(p) for p in model.parameters()} | {id(b) for b in model.buffers()}
    assert {id(p) for p in draft.parameters()} | {id(b) for b in draft.buffers()} <= full  # no copy
    assert draft.lm_head.weight.data_ptr() == model.lm_head.weight.data_ptr()
    assert current_plan(model) is None and current_plan(draft) == DRAFTS["looped_parallel"]
    assert model.config.num_hidden_layers == T and draft.config is not model.config
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, before)
    gone = weakref.ref(draft)
    del draft
    gc.collect()
    assert gone() is None  # released cleanly: nothing on the full model holds it


@pytest.mark.parametrize("arch", ["llama", "gemma3_text", "qwen2_moe", "gpt2"])
@pytest.mark.parametrize("name", sorted(DRAFTS))
def test_greedy_speculative_output_is_the_full_models(arch, name):
    model, tok = tiny.in_exact(tiny_lm(arch)), byte_tokenizer()
    for adaptive in (False, True) if arch == "llama" else (False,):
        r = speculative_run(model, tok, DRAFTS[name], PROMPTS[:2], max_new_tokens=12, draft_tokens=3, adaptive=adaptive)
        assert r.exact, (arch, name, adaptive)
        assert r.new_tokens == 12 * 2
        assert r.draft_calls > 0 and r.verifications < r.new_tokens + 2
    assert current_plan(model) is None


def test_a_full_draft_is_always_accepted():
    """The identity plan drafts exactly what the model says: every proposal is accepted, and each
    verification yields draft_tokens + 1 tokens (the counts measure what they claim)."""
    model, tok = tiny.in_exact(tiny_lm("llama")), byte_tokenizer()
    r = speculative_run(model, tok, variants.full(T), PROMPTS[:1], max_new_tokens=12, draft_tokens=3)
    assert r.exact and r.acceptance == 1.0 and r.tokens_per_verification == 4.0


def _first_tokens(model, ids, n, draft=None, seed=0):
    torch.manual_seed(seed)
    out = []
    kw = dict(max_new_tokens=1, do_sample=True, top_k=4, temperature=1.0, pad_token_id=0)
    if draft is not None:
        kw["assistant_model"] = draft
    with torch.no_grad():
        for _ in range(n):
            out.append(int(model.generate(ids, **kw)[0, -1]))
    return out


def _counts(samples, support):
    return [samples.count(s) for s in support]


def test_speculative_sampling_keeps_the_full_models_distribution():
    model = tiny.make("llama", attn=None)
    ids = torch.tensor([[5, 17, 33, 8]])
    draft = draft_view(model, "0,7")
    draft.generation_config.num_assistant_tokens = 2
    draft.generation_config.assistant_confidence_threshold = 0.0
    plain = _first_tokens(model, ids, 400, seed=1)
    spec = _first_tokens(model, ids, 400, draft=draft, seed=2)
    alone = _first_tokens(draft, ids, 400, seed=3)  # the draft's own distribution
    def p_value(a, b):
        support = sorted(set(a) | set(b))
        return chi2_contingency([_counts(a, support), _counts(b, support)])[1]

    p_same, p_draft = p_value(plain, spec), p_value(plain, alone)
    assert p_same > 1e-3, p_same
    assert p_draft < 1e-6, p_draft  # the test can tell distributions apart


def test_prompt_sets_and_bad_input(data_dir, capsys):  # noqa: F811
    prompts = load_prompts("gsm8k:2,wikitext:1")  # the shared benchmark folder
    assert len(prompts) == 3 and prompts[0].startswith("Question: ") and prompts[0].endswith("\nAnswer:")
    for argv in (["--plans", "skip:n=8", "--prompts", "books:3"], ["--plans", "skip:n=8", "--draft-tokens", "0"],
                 ["--plans", "skip:n=8", "--max-new-tokens", "0"]):
        assert main(["speculative", *argv, "--data-dir", str(data_dir)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("painters speculative: error:"), err


@pytest.mark.real
@pytest.mark.skipif(not ALIASES["smollm2"].installed(), reason=ALIASES["smollm2"].pip_command)
def test_smollm2_speculative_greedy_is_exact(tmp_path):
    out = tmp_path / "spec"
    code = main(["speculative", "--plans", "skip:n=12", "looped_parallel:n=12,k=3", "--prompts", "gsm8k:1,wikitext:1",
                 "--max-new-tokens", "12", "--out", str(out)])
    assert code == 0  # exit 1 would mean an output differed from plain greedy
    text = out.with_suffix(".md").read_text()
    assert text.count("| ✓ |") == 2 and "0-12,18-29" in text
    assert "Command: `painters speculative --model smollm2 --plans skip:n=12 looped_parallel:n=12,k=3 --prompts" in text


def test_the_search_finds_drafts_by_estimated_speedup():
    """The speculative objective: the identity draft is accepted always but costs a full forward
    per proposal, so its estimated speed-up is exactly 1; the greedy search returns a draft within
    each budget whose estimate it reports, from exact (greedy-equal) runs only."""
    from glue_painters import search
    from glue_painters.speculative import SpeculativeObjective

    model, tok = tiny.in_exact(tiny_lm("llama")), byte_tokenizer()
    objective = SpeculativeObjective(model, tok, PROMPTS[:1], max_new_tokens=12, draft_tokens=3)
    assert objective(variants.full(T)) == pytest.approx(-1.0)
    memo = search.Memo(objective)
    found = search.greedy(memo, T, [6], progress=False)
    for budget, f in found.items():
        assert f.executions <= budget
        assert f.value == pytest.approx(objective(f.plan))
    assert objective.describe()["objective"] == "speculative_speedup"


def test_the_benchmark_takes_the_drafts_of_finished_searches(tmp_path):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("bench_spec", Path(__file__).parents[1] / "benchmarks" / "speculative.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    folder = tmp_path / "smollm2" / "abc" / "speculative-x-k2-n8"
    folder.mkdir(parents=True)
    (folder / "run-greedy-1.json").write_text('{"done": true, "found": {"27": {"plan": "0-14,16-28"}}}')
    (folder / "run-greedy-2.json").write_text('{"done": false, "found": {"26": {"plan": "0-13,16-28"}}}')
    assert bench.searched_drafts(tmp_path) == ["0-14,16-28"]
