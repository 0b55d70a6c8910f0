"""Relayering (issue 26, items 1-2): the ``duplicate`` variant's plans by hand, its place in the
sweep grammar (one row per cell of the (i, width) grid), the held-out split chosen before the scan
(disjoint, stable, independent of the plans; its records never pooled with the scan's), a scan with
a held-out re-estimate that resumes after a kill, the dry run's cost of plans deeper than the
full model, and an exported duplication that reloads equal with plain transformers."""

from __future__ import annotations

import json

import pytest
import torch

from decoder_eval import sweep as S
from decoder_eval.holdout import choose, split_task
from decoder_eval.summary import group_records
from glue_painters import holdout as H
from glue_painters.errors import UserError
from glue_painters.plans import Layer, Plan, PlanError
from glue_painters.results import ResultsStore
from glue_painters.rewire import export_plan, rewired
from glue_painters.variants import VariantSpec, block_of, duplicate, resolve
from test_decoder_fixtures import byte_tokenizer, crash_after, make_data_dir, one_thread, tiny_lm, write_jsonl  # noqa: F401

T = 30


def _layers(plan: Plan) -> list[int]:
    return [u.index for u in plan.units()]


# ---- the variant -------------------------------------------------------------------------------
@pytest.mark.parametrize("i,j,times,expected", [
    (10, 14, 2, list(range(14)) + list(range(10, 30))),                         # RYS's example: 10..13 twice
    (10, 14, 3, list(range(14)) + [10, 11, 12, 13] + list(range(10, 30))),     # three times
    (0, 1, 2, [0, 0] + list(range(1, 30))),                                     # the first layer
    (29, 30, 2, list(range(30)) + [29]),                                        # the last layer
    (0, 30, 2, list(range(30)) * 2),                                            # the whole model twice
    (5, 7, 4, list(range(7)) + [5, 6, 5, 6, 5, 6] + list(range(7, 30))),
])
def test_duplicate_plans_by_hand(i, j, times, expected):
    plan = duplicate(T, i, j, times)
    assert _layers(plan) == expected
    assert plan.executions == T + (j - i) * (times - 1) and plan.is_sequential
    spec = VariantSpec.parse(f"duplicate:i={i},j={j}" + (f",times={times}" if times != 2 else ""))
    assert spec.text == f"duplicate:i={i},j={j},times={times}" and spec.plan(T) == plan
    assert VariantSpec.parse(spec.text) == spec and block_of(spec) == (i, j, times) == block_of(spec.text)


def test_duplicate_text_is_the_rys_layer_list():
    assert resolve("duplicate:i=10,j=14", T).text == "0-13,10-29"
    assert resolve("duplicate:i=10,j=14", T) == Plan(tuple(Layer(x) for x in [*range(14), *range(10, 30)]))
    assert block_of(VariantSpec.parse("skip:n=3")) is None and block_of("0-13,10-29") is None
    assert block_of("not a spec") is None


@pytest.mark.parametrize("text,needle", [
    ("duplicate:i=10,j=10", "duplicate i=10,j=10 is out of range .*0 <= i < j <= 30"),
    ("duplicate:i=12,j=10", "duplicate i=12,j=10 is out of range"),
    ("duplicate:i=10,j=31", "duplicate i=10,j=31 is out of range"),
    ("duplicate:i=-1,j=3", "duplicate i=-1,j=3 is out of range"),
    ("duplicate:i=1,j=3,times=1", "needs times >= 2"),
    ("duplicate:i=1", "needs j="),
    ("duplicate:i=1,j=2,n=3", "takes i, j, times, not n"),
])
def test_duplicate_refuses_bad_input_in_one_line(text, needle):
    with pytest.raises(PlanError, match=needle) as err:
        resolve(text, T)
    assert "\n" not in str(err.value)


# ---- the grid ----------------------------------------------------------------------------------
def _cfg(**raw):
    return S.parse_config({"model": "m", "tasks": ["arc_easy"], **raw})


@pytest.mark.parametrize("width,times", [({"from": 1, "to": 6}, 2), ([1, 3, 6], [2, 3]), (4, 2)])
def test_the_scan_has_one_row_per_cell(width, times):
    cfg = _cfg(variants=["duplicate"], width=width, times=times)
    widths = cfg.width
    counts = [times] if isinstance(times, int) else times
    specs = cfg.specs(T)
    assert len(specs) == len(set(specs)) == sum(T - w + 1 for w in widths) * len(counts)
    cells = {block_of(s) for s in specs}
    assert cells == {(i, i + w, t) for w in widths for i in range(T - w + 1) for t in counts}
    rows = S.expand(cfg, T)
    assert rows[0].variant == "full" and len(rows) == len(specs) + 1  # the baseline every cell is compared with


def test_listed_starts_and_other_variants_expand_in_config_order():
    cfg = _cfg(variants=["skip_one", "duplicate"], i=[3, 27], width=[2, 3])
    assert [s.text for s in cfg.specs(T)] == [
        "skip_one:i=3", "skip_one:i=27", "duplicate:i=3,j=5,times=2", "duplicate:i=27,j=29,times=2",
        "duplicate:i=3,j=6,times=2", "duplicate:i=27,j=30,times=2"]
    assert "width" in S.DecoderSweepConfig.keys_help() and "times" in S.DecoderSweepConfig.keys_help()


@pytest.mark.parametrize("raw,needle", [
    ({"variants": ["duplicate"]}, "variant duplicate needs 'width'"),
    ({"variants": ["skip"], "width": 2}, "'width' is the duplicate variant's"),
    ({"variants": ["skip"], "times": 3}, "'times' is the duplicate variant's"),
    ({"variants": ["duplicate"], "width": "all"}, "must name the widths"),
    ({"variants": ["duplicate"], "width": 0}, "at least 1"),
    ({"variants": ["duplicate"], "width": 2, "times": 1}, "'times': every value must be at least 2"),
])
def test_grid_errors_are_one_line(raw, needle):
    with pytest.raises(UserError, match=needle):
        _cfg(**raw)


@pytest.mark.parametrize("raw,needle", [
    ({"width": 2, "i": [29]}, "i=29, width 2 runs past the last layer .*i \\+ width must be <= 30"),
    ({"width": 31}, "width 31 is wider than m"),
])
def test_cells_that_do_not_fit_the_model_are_named(raw, needle):
    with pytest.raises(UserError, match=needle):
        _cfg(variants=["duplicate"], **raw).specs(T)


def test_the_glue_track_reads_the_same_grammar():
    from glue_eval.config import GlueSweepConfig
    from glue_eval.runs import expand

    cfg = GlueSweepConfig.from_mapping({"model": "minilm", "variants": ["duplicate"], "width": [1, 2], "tasks": ["rte"],
                                        "modes": ["probe"], "seeds": [0]})
    runs = expand(cfg, 6)
    dup = [r for r in runs if r.variant == "duplicate"]
    assert len(dup) == 6 + 5 and {r.plan(6).text for r in dup} >= {"0x2,1-5", "0-3,2-5"}
    assert {r.label for r in dup} >= {"duplicate:i=0,j=1,times=2", "duplicate:i=2,j=4,times=2"}


# ---- the held-out split ------------------------------------------------------------------------
@pytest.mark.parametrize("n,fraction,seed", [(10, 0.3, 0), (101, 0.25, 7), (2, 0.5, 3), (1000, 0.1, 0)])
def test_split_never_overlaps_covers_everything_and_is_stable(n, fraction, seed):
    scan, held = H.split_documents(n, fraction, seed)
    assert not set(scan) & set(held) and sorted(scan + held) == list(range(n))
    assert len(held) == round(fraction * n) and scan == sorted(scan) and held == sorted(held)
    assert (scan, held) == H.split_documents(n, fraction, seed)  # a function of (n, fraction, seed) alone
    if n > 10:
        assert held != H.split_documents(n, fraction, seed + 1)[1]  # the seed matters


def test_split_is_pinned():
    """The split must not change between releases (a store's held-out records would silently
    become scan documents): SHA-256 of "seed:position", not a library's RNG."""
    assert H.split_documents(10, 0.3, 0) == ([0, 1, 2, 3, 5, 6, 8], [4, 7, 9])
    assert H.split_documents(20, 0.25, 1)[1] == [4, 7, 8, 11, 17]


@pytest.mark.parametrize("n,fraction,needle", [(3, 0.1, "no document held out"), (2, 0.9, "no document to scan"),
                                                (10, 1.0, "between 0 and 1"), (10, 0, "between 0 and 1")])
def test_split_refuses_an_empty_part(n, fraction, needle):
    with pytest.raises(UserError, match=needle):
        H.split_documents(n, fraction, 0)


@pytest.mark.parametrize("value,needle", [(1.5, "between 0 and 1"), ({"fraction": 0.3, "seed": -1}, "non-negative"),
                                          ({"share": 0.3}, "a fraction or"), (True, "between 0 and 1")])
def test_holdout_key_errors_are_one_line(value, needle):
    with pytest.raises(UserError, match=needle):
        _cfg(holdout=value)
    assert _cfg(holdout=0.25).holdout == {"fraction": 0.25, "seed": 0}
    assert _cfg(holdout={"fraction": 0.3, "seed": 4}).holdout == {"fraction": 0.3, "seed": 4}


def test_pick_rule():
    diffs = {"a": {"p": 0.10, "q": 0.05, "r": 0.10}, "b": {"p": -0.2, "q": 0.02, "r": -0.2}}
    choice = H.pick(diffs, {"a": 0.5, "b": 0.1}, cost={"p": 32, "q": 31, "r": 31})
    assert choice.per_task == {"a": "r", "b": "q"}  # a tie goes to the cheaper plan
    assert choice.overall == "q"  # (0.05/0.5 + 0.02/0.1)/2 = 0.15 beats (0.1/0.5 - 0.2/0.1)/2
    assert choice.overall_scores["q"] == pytest.approx(0.15) and choice.plans_for("a") == ["r", "q"]
    raw = H.pick(diffs, {"a": None, "b": None})
    assert raw.overall == "q" and "raw differences" in raw.rule
    one = H.pick(diffs, {"a": 0.5, "b": None})
    assert one.overall in ("p", "r") and "left out (no scale): b" in one.rule


# ---- the scan with a held-out re-estimate, end to end on a tiny model ----------------------------
SCAN = {"model": "tiny-llama", "variants": ["full", "duplicate"], "width": [1, 2], "tasks": ["arc_easy", "hellaswag"],
        "holdout": {"fraction": 0.25, "seed": 3}, "batch_size": 4}


def _more_docs(root):
    """A data folder with 12 ARC-Easy and 10 HellaSwag documents (the fixtures' few are too few to split)."""
    make_data_dir(root)
    write_jsonl(root / "arc_easy/test.jsonl", [
        {"id": f"q{d}", "question": {"stem": f"What is {d} plus one?", "choices": [
            {"text": str(d + 1), "label": "A"}, {"text": str(d + 2), "label": "B"}, {"text": "many", "label": "C"}]},
         "answerKey": "AB"[d % 2]} for d in range(12)])
    write_jsonl(root / "hellaswag/validation_preprocessed.jsonl", [
        {"val_row": d, "activity_label": "Counting", "ctx": f"She counts to {d}. then she", "label": d % 4,
         "endings": ["stops.", f"says {d + 1}.", "sings.", "[title] sleeps."], "query": f"Counting: She counts to {d}."}
        for d in range(10)])
    return root


@pytest.fixture(scope="module")
def scan_env(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("relayer")
    return {"data_dir": _more_docs(root / "data"), "model": tiny_lm("llama"), "tokenizer": byte_tokenizer(),
            "progress": False, "root": root}


def _run(env, cfg, results, **kw):
    return S.run_sweep(S.parse_config(cfg), results_dir=results, data_dir=env["data_dir"], model=env["model"],
                       tokenizer=env["tokenizer"], progress=False, **kw)


def _store(root) -> dict[str, tuple]:
    return {r["key_hash"]: (r["split"], r["plan"]["text"], r["task"], r["per_item"])
            for r in ResultsStore(root).records("decoder")}


def test_scan_scores_every_row_on_the_scan_part_and_the_winners_on_the_held_out_part(scan_env):
    env, root = scan_env, scan_env["root"]
    out = _run(env, SCAN, root / "split")
    rows = len(out.specs)
    assert rows == 1 + 8 + 7 and len(out.records) == 2 * rows
    sizes = {"arc_easy": (9, 3), "hellaswag": (8, 2)}  # round(0.25 * 12) = 3, round(0.25 * 10) = 2 held out
    for r in out.records:
        assert r["split"] == "scan" and r["n"] == sizes[r["task"]][0]
        assert r["key"]["subset"]["selection"] == {"part": "scan", "fraction": 0.25, "seed": 3, "of": sum(sizes[r["task"]])}
    choice = out.choice
    assert choice == choose(out.records) and set(choice.per_task) == {"arc_easy", "hellaswag"}
    full = out.specs[0].plan.text
    for task in sizes:
        held = {r["plan"]["text"] for r in out.holdout if r["task"] == task}
        assert held == {full, *choice.plans_for(task)}
    assert all(r["split"] == "holdout" and r["n"] == sizes[r["task"]][1] for r in out.holdout)
    assert out.written == len(out.records) + len(out.holdout)

    # the same plans on every document, no split: each part's per-document scores are those of its
    # documents, so the parts are exactly the split's positions and a pair stays a pair
    whole = _run(env, {k: v for k, v in SCAN.items() if k != "holdout"}, root / "all")
    assert all(r["split"] == "all" and "selection" not in r["key"]["subset"] for r in whole.records)
    every = {(r["task"], r["plan"]["text"]): r["per_item"] for r in whole.records}
    for r in out.records + out.holdout:
        scan_ids, held_ids = H.split_documents(sum(sizes[r["task"]]), 0.25, 3)
        ids = scan_ids if r["split"] == "scan" else held_ids
        for metric, values in r["per_item"].items():
            assert values == [every[(r["task"], r["plan"]["text"])][metric][d] for d in ids]

    # a held-out record never pools with a scan record: other keys, other summary tables
    recs = list(ResultsStore(root / "split").records("decoder"))
    assert len({r["key_hash"] for r in recs}) == len(recs) == len(out.records) + len(out.holdout)
    for table in group_records(recs).values():
        assert {r["split"] for r in table} == {"scan"}

    # and in an export: the split and the block as columns
    from painters.results_export import records_frame

    frame = records_frame(root / "split")
    assert sorted(frame.split.unique()) == ["holdout", "scan"]
    dup = frame[frame.variant == "duplicate"]
    assert set(dup.j - dup.i) == {1, 2} and set(dup.times) == {2}
    assert set(records_frame(root / "all").split) == {"all"}

    # the split does not depend on the plan list: a sweep of other rows finds full's records
    other = _run(env, {**SCAN, "width": [1], "i": [0, 5]}, root / "split")
    assert other.skipped >= 2 * 3 and {r["key_hash"] for r in other.records} <= set(_store(root / "split"))


def test_a_killed_scan_resumes_to_the_uninterrupted_records(scan_env):
    env, root = scan_env, scan_env["root"]
    cfg = {**SCAN, "width": [2], "tasks": ["arc_easy"]}
    whole = _run(env, cfg, root / "whole")
    total = len(whole.records) + len(whole.holdout)
    for stop_after in (3, len(whole.records) + 1):  # during the scan, during the held-out round
        where = root / f"killed{stop_after}"
        with pytest.raises(KeyboardInterrupt):
            _run(env, cfg, where, on_record=crash_after(stop_after))
        assert len(_store(where)) == stop_after
        again = _run(env, cfg, where)
        assert again.written == total - stop_after and again.choice == whole.choice
        assert _store(where) == _store(root / "whole")


def test_a_split_too_small_for_a_task_stops_before_any_record(scan_env, tmp_path):
    with pytest.raises(UserError, match="winogrande: a held-out fraction of 0.1 of 2 documents leaves no document held out"):
        _run(scan_env, {**SCAN, "tasks": ["winogrande"], "holdout": 0.1}, tmp_path / "r")
    assert not list(ResultsStore(tmp_path / "r").records("decoder"))


# ---- the dry run -------------------------------------------------------------------------------
def test_dry_run_counts_the_scan_and_costs_duplications_above_the_full_model(scan_env, tmp_path):
    from decoder_eval.dry_run import dry_run, render

    folder = tmp_path / "tiny-llama"
    scan_env["model"].save_pretrained(folder)
    scan_env["tokenizer"].save_pretrained(folder)
    cfg = S.parse_config({**SCAN, "model": str(folder), "tasks": ["arc_easy"]})
    results = tmp_path / "results"
    d = dry_run(cfg, results_dir=results, data_dir=scan_env["data_dir"])
    text = render(d)
    assert len(d.rows) == 16 and d.pending_count == 16 and d.scan_docs == {"arc_easy": 9} and d.held_docs == {"arc_easy": 3}
    assert "16 plans x 1 tasks (arc_easy 9 scan + 3 held-out docs)" in text
    assert "16 of 16 records to compute; no time estimate" in text and "at most 3 records" in text
    executions = sum(r.plan.executions for r in d.rows)
    assert executions == 8 + 8 * 9 + 7 * 10 and f"{executions} layer executions per token" in text  # full, width 1, 2
    assert d.held_bound == {"arc_easy": 8 + 2 * 10} and d.work() == {"arc_easy": 9 * executions + 3 * 28}
    assert "duplicate:i=0,j=2,times=2" in text and " 10  arc_easy" in text
    assert not results.exists()

    def run(**raw):  # loaded from the folder, as the dry run names the model: the same fingerprint
        S.run_sweep(S.parse_config({**SCAN, "model": str(folder), "tasks": ["arc_easy"], **raw}), results_dir=results,
                    data_dir=scan_env["data_dir"], progress=False)

    run(width=[1])  # the full model and width 1 are done
    d = dry_run(cfg, results_dir=results, data_dir=scan_env["data_dir"])
    assert d.pending_count == 7 and d.seconds_per_doc["arc_easy"] > 0
    seconds, unknown = d.estimate_seconds()
    assert not unknown and seconds == pytest.approx(d.seconds_per_doc["arc_easy"] * (9 * 7 * 10 + 3 * 28) / 8)
    assert "7 of 16 records to compute; about" in render(d)

    run()  # the whole scan and its held-out round
    d = dry_run(cfg, results_dir=results, data_dir=scan_env["data_dir"])
    assert d.pending_count == 0 and d.held_pending == {"arc_easy": []} and not d.held_bound
    assert "held-out round: 0 records to compute (arc_easy: done)" in render(d) and "nothing to do" in render(d)


def test_duplicated_blocks_generate_as_each_plan_alone(scan_env, monkeypatch):
    """generate_until through the all-plans engine (a duplicated block shares its first j layers
    with the full model) gives each plan's own greedy output."""
    from decoder_eval.evaluate import evaluate_plans
    from decoder_eval.tasks import TASKS

    monkeypatch.setattr(TASKS["gsm8k"], "max_gen_toks", 6)
    plans = ["full", "duplicate:i=3,j=5", "duplicate:i=0,j=8", "duplicate:i=6,j=7,times=3"]
    kw = dict(limit=2, data_dir=scan_env["data_dir"], batch_size=4, log_samples=True)
    shared = evaluate_plans(scan_env["model"], scan_env["tokenizer"], plans, ["gsm8k"], **kw)
    alone = evaluate_plans(scan_env["model"], scan_env["tokenizer"], plans, ["gsm8k"], share_prefix=False, **kw)
    for text in shared:
        assert json.dumps(shared[text]["gsm8k"].samples, default=str) == json.dumps(alone[text]["gsm8k"].samples, default=str)


# ---- export ------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["llama", "gemma3_text"])  # gemma3: per-layer layer_types (sliding/full) follow the plan
def test_an_exported_duplication_reloads_with_plain_transformers_and_equal_logits(arch, tmp_path):
    from transformers import AutoModelForCausalLM

    from tiny import EXACT, assert_same_computation, make

    model = make(arch, dtype=EXACT)
    ids = torch.randint(3, 90, (2, 9), generator=torch.Generator().manual_seed(1))
    plan = resolve("duplicate:i=2,j=5,times=3", 8)
    with rewired(model, plan), torch.no_grad():
        expected = model(input_ids=ids, use_cache=False).logits
    export_plan(model, plan, tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=EXACT,
                                                    attn_implementation=model.config._attn_implementation).eval()
    assert reloaded.config.num_hidden_layers == plan.executions == 8 + 3 * 2
    if hasattr(model.config, "layer_types"):
        assert reloaded.config.layer_types == [model.config.layer_types[x] for x in _layers(plan)]
    with torch.no_grad():
        assert_same_computation(reloaded(input_ids=ids, use_cache=False).logits, expected)


@pytest.mark.real
def test_painters_export_of_a_smollm2_duplication_reloads_equal(tmp_path, capsys):
    """The real model through the command line: 30 layers + 4 duplicated = 34 in a plain folder."""
    from transformers import AutoModelForCausalLM

    from glue_painters.models import load_model
    from painters.cli import main

    out = tmp_path / "smollm2-dup"
    assert main(["export", "--model", "smollm2", "--plan", "duplicate:i=10,j=14", "--out", str(out)]) == 0
    assert "34 layers running plan 0-13,10-29" in capsys.readouterr().out
    model, tok = load_model("smollm2")
    ids = tok(["The capital of France is", "Two plus two equals"], return_tensors="pt", padding=True)
    with rewired(model, resolve("duplicate:i=10,j=14", 30)), torch.no_grad():
        expected = model(**ids).logits
    reloaded = AutoModelForCausalLM.from_pretrained(out, attn_implementation=model.config._attn_implementation).eval()
    assert reloaded.config.num_hidden_layers == 34
    with torch.no_grad():
        got = reloaded(**ids).logits
    assert torch.equal(got, expected), (got - expected).abs().max()


# ---- the command line, one process and two -------------------------------------------------------
def test_the_scan_from_the_command_line_on_one_and_two_processes(scan_env, tmp_path, capsys):
    """``painters decoder run`` prints the scan's table and the held-out re-estimate; torchrun with
    2 processes writes exactly the records one process writes (both rounds dealt out, every
    process picking the same winners)."""
    import yaml

    from painters.cli import main
    from test_multiprocess import TORCHRUN, _launch, _records

    folder = tmp_path / "tiny-llama"
    scan_env["model"].save_pretrained(folder)
    scan_env["tokenizer"].save_pretrained(folder)
    config = tmp_path / "scan.yaml"
    config.write_text(yaml.safe_dump({**SCAN, "model": str(folder), "width": [2]}))

    def args(results):
        return ["decoder", "run", str(config), "--data-dir", str(scan_env["data_dir"]), "--results", str(results), "--quiet"]

    assert main(args(tmp_path / "one")) == 0
    out = capsys.readouterr().out
    assert "8 plans x 2 tasks" in out and "Held-out re-estimate (winner across tasks: " in out
    assert out.count("held-out ") >= 2 and "(n=3)" in out and "(n=2)" in out
    one = _records(tmp_path / "one")
    assert {r["split"] for r in one.values()} == {"scan", "holdout"}

    done = _launch(TORCHRUN + ["2"], args(tmp_path / "two"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("Held-out re-estimate") == 1, "the main process alone prints"
    two = _records(tmp_path / "two")
    assert two == one
    assert {r["process"] for r in ResultsStore(tmp_path / "two").records("decoder")} == {0, 1}, "both took a share"
