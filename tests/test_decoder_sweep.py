"""Sweeps end to end on a tiny model: records, resume after a crash, samples, the CLI's errors and
tables, and the normalized-median rule."""

from __future__ import annotations

import json
import os

import pytest
import torch

from decoder_eval import sweep as S
from decoder_eval.summary import FACTOR, accuracy_stderr, render, summarize
from decoder_eval.tasks import TASKS
from glue_painters import variants
from painters.cli import main
from glue_painters.errors import UserError
from glue_painters.results import ResultsStore
from test_decoder_fixtures import byte_tokenizer, crash_after, data_dir, one_thread, make_data_dir, tiny_lm  # noqa: F401

CONFIG = {"model": "tiny-llama", "variants": ["full", "skip", "random", "looped_parallel"], "n": [0, 2],
          "permutation_seeds": 2, "k": [2], "tasks": ["arc_easy", "winogrande", "gsm8k"], "limit": {"default": 2, "gsm8k": 1},
          "batch_size": 4}


@pytest.fixture
def short_gsm8k(monkeypatch):
    """GSM8K with 4 new tokens instead of 256: the same code path, a fraction of the time."""
    monkeypatch.setattr(TASKS["gsm8k"], "max_gen_toks", 4)


def _records(root):
    return {r["key_hash"]: (r["metrics"], r["plan"]["text"], r["task"]) for r in ResultsStore(root).records("decoder")}


def test_interrupted_sweep_resumes_to_exactly_the_uninterrupted_records(tmp_path, data_dir, short_gsm8k):
    cfg = S.parse_config(CONFIG)
    model, tok = tiny_lm("llama"), byte_tokenizer()
    run = dict(data_dir=data_dir, model=model, tokenizer=tok, progress=False)
    whole = S.run_sweep(cfg, results_dir=tmp_path / "a", **run)
    n_specs = len(whole.specs)
    assert whole.written == n_specs * 3 and whole.skipped == 0

    for stop_after in (4, n_specs + 3, 2 * n_specs + 2):  # in a loglikelihood task, and during generation
        root = tmp_path / f"b{stop_after}"
        with pytest.raises(KeyboardInterrupt):
            S.run_sweep(cfg, results_dir=root, on_record=crash_after(stop_after), **run)
        assert len(_records(root)) == stop_after
        again = S.run_sweep(cfg, results_dir=root, **run)
        assert again.written == n_specs * 3 - stop_after
        assert _records(root) == _records(tmp_path / "a")

    rerun = S.run_sweep(cfg, results_dir=tmp_path / "a", **run)
    assert rerun.written == 0 and rerun.skipped == n_specs * 3
    assert [r["key_hash"] for r in rerun.records] == [r["key_hash"] for r in whole.records]


def test_records_carry_plan_params_versions_and_samples(tmp_path, data_dir, short_gsm8k):
    cfg = S.parse_config(dict(CONFIG, variants=["random"], n=[1], permutation_seeds=[5], tasks=["winogrande", "gsm8k"]))
    out = S.run_sweep(cfg, results_dir=tmp_path, data_dir=data_dir, model=tiny_lm("llama"),
                      tokenizer=byte_tokenizer(), progress=False, log_samples=True)
    rec = next(r for r in out.records if r["variant"] == "random" and r["task"] == "winogrande")
    assert rec["params"] == {"n": 1, "seed": 5} and rec["key"]["seed"] == 5 and rec["healed"] is False
    assert rec["plan"]["text"] == variants.build("random", 8, n=1, seed=5).text and set(rec["metrics"]) == {"acc"}
    assert rec["versions"]["scoring"] == S.SCORING_VERSION and rec["timing"]["plans_in_pass"] == 2
    assert rec["versions"]["threads"] == torch.get_num_threads()
    assert rec["chance"] == 0.5 and rec["n"] == 2 and rec["key"]["subset"]["n"] == 2
    lines = (S.samples_path(ResultsStore(tmp_path), rec["key"])).read_text().splitlines()
    assert [json.loads(line)["index"] for line in lines] == [0, 1]
    gen = json.loads(S.samples_path(ResultsStore(tmp_path), next(
        r for r in out.records if r["task"] == "gsm8k")["key"]).read_text())
    assert "generation" in gen["results"][0] and gen["requests"][0]["until"][0] == "Question:"


def test_config_checks():
    cfg = S.parse_config({"model": "m", "n": {"from": 0, "to": 4, "step": 2}, "limit": {"default": 5, "gsm8k": 1}})
    assert cfg.n == [0, 2, 4] and cfg.limit["gsm8k"] == 1 and cfg.limit["arc_easy"] == 5
    assert cfg.variants == S.PAPER_VARIANTS and cfg.seeds == list(range(10)) and cfg.k == [3]
    for bad, msg in [({}, "is empty"), ({"model": "m", "colour": 1}, "unknown key"),
                     ({"model": "m", "tasks": ["nope"]}, "unknown task 'nope'"),
                     ({"model": "m", "variants": ["skp"]}, "unknown variant"),
                     ({"model": "m", "limit": 0}, "positive"), ({"model": "m", "k": [0]}, "at least 1"),
                     ({"model": "m", "primary_metric": {"lambada_openai": "perplexity"}}, "accuracy"),
                     ({"model": "m", "plans": ["0-3,["]}, "bad plan text")]:
        with pytest.raises(UserError, match=msg):
            S.parse_config(bad)


def test_expand_covers_every_valid_n_and_always_has_full():
    cfg = S.parse_config({"model": "m", "variants": ["skip", "looped_parallel"], "k": [1, 3]})
    specs = S.expand(cfg, 8)
    assert specs[0].variant == "full"
    assert sorted({s.param_dict["n"] for s in specs if s.variant == "skip"}) == [0, 1, 2, 3]
    assert len([s for s in specs if s.variant == "looped_parallel"]) == 8
    with pytest.raises(UserError, match="N=4 is out of range"):
        S.expand(S.parse_config({"model": "m", "variants": ["skip"], "n": [4]}), 8)


# ---- the CLI ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-llama")
    tiny_lm("llama").save_pretrained(folder)
    byte_tokenizer().save_pretrained(folder)
    return folder


def _config(tmp_path, **kw):
    path = tmp_path / "sweep.yaml"
    import yaml

    path.write_text(yaml.safe_dump(kw) if kw else "")
    return path


@pytest.mark.parametrize("case", ["unknown task", "missing file", "malformed line", "n out of range", "empty config",
                                  "invalid yaml",
                                  "batch size -1", "batch size 0", "report is a folder", "cuda without cuda",
                                  "results is a file", "results under a file", "results unwritable"])
def test_cli_bad_input_is_one_line_exit_2_and_no_records(case, tmp_path, tiny_folder, capsys):
    data = make_data_dir(tmp_path / "data")
    cfg = {"model": str(tiny_folder), "variants": ["skip"], "n": [1], "tasks": ["arc_easy", "lambada_openai"],
           "limit": 1}
    expect = {"unknown task": "unknown task 'lamda'", "missing file": "not found",
              "malformed line": "test.jsonl:2: not valid JSON", "n out of range": "N=7 is out of range",
              "empty config": "is empty", "invalid yaml": "sweep.yaml:3:1: not valid YAML: could not find expected ':'",
              "batch size -1": "--batch-size must be >= 1, got -1",
              "batch size 0": "--batch-size must be >= 1, got 0", "report is a folder": "is a folder",
              "cuda without cuda": "CUDA is not available", "results is a file": "results is a file, not a folder",
              "results under a file": "results: " + str(tmp_path / "afile") + " is a file",
              "results unwritable": "is not writable"}[case]
    extra = {"batch size -1": ["--batch-size", "-1"], "batch size 0": ["--batch-size", "0"],
             "report is a folder": ["--report", str(tmp_path)], "cuda without cuda": ["--device", "cuda"]}.get(case, [])
    if case == "cuda without cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    if case == "unknown task":
        cfg["tasks"] = ["lamda"]
    elif case == "missing file":
        (data / "lambada_openai/test.jsonl").unlink()
    elif case == "malformed line":
        (data / "lambada_openai/test.jsonl").write_text('{"text": "a b"}\n{"text": \n')
    elif case == "n out of range":
        cfg["n"] = [1, 7]
    path = _config(tmp_path) if case == "empty config" else _config(tmp_path, **cfg)
    if case == "invalid yaml":
        path.write_text("model: m\nvariants skip\nn: [1]\n")
    results = tmp_path / "results"
    if case == "results is a file":
        results.write_text("")
    elif case == "results under a file":
        (tmp_path / "afile").write_text("")
        results = tmp_path / "afile" / "results"
    elif case == "results unwritable":
        if os.geteuid() == 0:
            pytest.skip("root writes anywhere")
        (tmp_path / "ro").mkdir(mode=0o555)
        results = tmp_path / "ro" / "results"
    rc = main(["decoder", "run", str(path), "--data-dir", str(data), "--results", str(results), "--quiet", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert [line for line in err if line.startswith("painters decoder: error:")] == [err[-1]]
    assert expect in err[-1]
    assert not list(results.rglob("*.json")) if results.is_dir() else True


def test_cli_run_then_summary(tmp_path, tiny_folder, capsys):
    data = make_data_dir(tmp_path / "data")
    path = _config(tmp_path, model=str(tiny_folder), variants=["full", "skip"], n=[0, 3], tasks=["hellaswag"])
    results, report = tmp_path / "results", tmp_path / "report.md"
    assert main(["decoder", "run", str(path), "--data-dir", str(data), "--results", str(results), "--limit", "2",
                 "--tasks", "hellaswag,arc_easy", "--batch-size", "2", "--quiet", "--report", str(report)]) == 0
    out = capsys.readouterr().out
    assert "3 plans x 2 tasks: 6 records written" in out and "| skip | 3 |" in out
    assert "Command:" in report.read_text() and "## Raw scores" in report.read_text()
    assert main(["decoder", "summary", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert "| full |" in out and "items per task:" in out and "hellaswag 2" in out and "arc_easy 2" in out
    assert main(["decoder", "summary", "--results", str(tmp_path / "empty")]) == 2


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["decoder", "run", "--help"])
    text = capsys.readouterr().out
    for option in ("--limit", "--tasks", "--data-dir", "--results", "--device", "--dtype", "--batch-size",
                   "--log-samples", "--report"):
        assert option in text
    assert "first N documents" in text and "seeds" in text


# ---- normalization --------------------------------------------------------------------------------
def _rec(variant, task, score, chance=0.25, n_items=100, **params):
    return {"variant": variant, "params": params, "task": task, "metrics": {"acc": score}, "stderr": {"acc": 0.0},
            "chance": chance, "primary_metric": "acc", "n": n_items, "key": {"subset": {"n": n_items}}}


def test_normalized_median_leaves_out_tasks_at_chance():
    records = [_rec("full", "a", 0.65), _rec("full", "b", 0.27), _rec("full", "c", 0.85, chance=0.5),
               _rec("skip", "a", 0.45, n=3), _rec("skip", "b", 0.30, n=3), _rec("skip", "c", 0.60, chance=0.5, n=3)]
    for seed, (a, b, c) in enumerate([(0.35, 0.2, 0.5), (0.55, 0.3, 0.7)]):
        records += [_rec("random", "a", a, n=3, seed=seed), _rec("random", "b", b, n=3, seed=seed),
                    _rec("random", "c", c, chance=0.5, n=3, seed=seed)]
    s = summarize(records, ["a", "b", "c"])
    assert s.flagged == ["b"]  # 0.27 vs chance 0.25 on 100 items: within 3 SE
    assert 0.02 < FACTOR * accuracy_stderr(0.27, 100)
    skip = next(r for r in s.rows if r.variant == "skip")
    assert skip.scores["a"] == pytest.approx(0.5) and skip.scores["c"] == pytest.approx(0.1 / 0.35)
    assert skip.scores["b"] is None and skip.median == pytest.approx((0.5 + 0.1 / 0.35) / 2)
    rand = next(r for r in s.rows if r.variant == "random")
    per_seed = [(0.25 + 0.0) / 2, (0.75 + 0.2 / 0.35) / 2]  # medians over a and c only
    assert rand.seeds == 2 and rand.scores["a"] == pytest.approx(0.5)
    assert rand.median == pytest.approx(sum(per_seed) / 2)
    assert rand.median_std == pytest.approx(abs(per_seed[1] - per_seed[0]) / 2 ** 0.5)
    assert rand.raw["b"] == pytest.approx(0.25)
    table = render(s)
    assert "b ‡" in table and "(0.30)" in table and "left out of the median" in table
    # every item right on 2 items is not "clearly above chance"
    assert not summarize([_rec("full", "a", 1.0, n_items=2)], ["a"]).reliability["a"].ok


def test_dry_run_lists_rows_writes_nothing_and_estimates_from_the_store(tmp_path, tiny_folder, capsys):
    data = make_data_dir(tmp_path / "data")
    results = tmp_path / "results"
    flags = ["--model", str(tiny_folder), "--variants", "skip,looped_parallel", "--n", "0:2:2", "--k", "2",
             "--tasks", "arc_easy", "--limit", "2", "--data-dir", str(data), "--results", str(results), "--quiet"]
    assert main(["decoder", "run", *flags, "--dry-run"]) == 0
    out = capsys.readouterr().out
    for row in ("full ", "skip:n=0", "skip:n=2", "looped_parallel:n=0,k=2", "looped_parallel:n=2,k=2"):
        assert row in out
    assert "5 of 5 records to compute; no time estimate" in out and not results.exists()
    assert main(["decoder", "run", *flags, "--variants", "skip", "--n", "2"]) == 0  # full and skip:n=2 done
    capsys.readouterr()
    assert main(["decoder", "run", *flags, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "3 of 5 records to compute; about" in out and "min for arc_easy" in out
    assert len(list(results.rglob("*.json"))) == 2


def test_grid_flags_replace_config_keys_and_are_checked_like_yaml(tmp_path, tiny_folder, capsys):
    path = _config(tmp_path, model=str(tiny_folder), variants=["skip"], n=[1], tasks=["arc_easy"])
    data = make_data_dir(tmp_path / "data")
    assert main(["decoder", "run", str(path), "--n", "all", "--variants", "reverse", "--data-dir", str(data),
                 "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "reverse:n=0" in out and "reverse:n=3" in out and "skip:" not in out
    assert main(["decoder", "run", str(path), "--permutation-seeds", "-1", "--variants", "random", "--dry-run"]) == 2
    assert "'permutation_seeds' as a count must be at least 1" in capsys.readouterr().err
    assert main(["decoder", "run", "--variants", "skip", "--dry-run"]) == 2
    assert "give a sweep config file or --model" in capsys.readouterr().err


def test_summary_table_has_a_plan_column_and_standard_errors():
    def rec(variant, score, se, plan, **params):
        r = _rec(variant, "a", score, **params)
        return dict(r, stderr={"acc": se}, plan={"text": plan})

    records = [rec("full", 0.65, 0.04, "0-7"), rec("skip", 0.45, 0.05, "0-1,6-7", n=1),
               rec("random", 0.4, 0.03, "0-1,4,2,5,3,6-7", n=1, seed=0),
               rec("random", 0.5, 0.04, "0-1,3,5,2,4,6-7", n=1, seed=1)]
    s = summarize(records, ["a"])
    skip, rand = (next(r for r in s.rows if r.variant == v) for v in ("skip", "random"))
    assert skip.plan == "0-1,6-7" and rand.plan == "2 plans" and rand.stderr["a"] == pytest.approx(0.025)
    raw = render(s, raw=True)
    assert "| `0-1,6-7` |" in raw and "0.45±0.05" in raw and "0.45±0.03" in raw  # random: mean 0.45, SE 0.025
    assert "± its standard error" in render(s)
    assert f"{0.5:.2f}±{0.05 / 0.4:.2f}" in render(s)  # skip normalized: (0.45-0.25)/(0.65-0.25), SE/0.4
