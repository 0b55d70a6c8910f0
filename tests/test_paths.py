"""Per-document paths (painters/report/paths.py, glue_painters/relayer_stats.py): the oracle count by
hand, its chance baseline where plans are exchangeable, and the command.

Stores are written by the decoder track's record writer, 0/1 per-document scores set by hand.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from glue_painters.relayer_stats import chance_fixes, oracle_fixes
from glue_painters.results import ResultsStore
from glue_painters.variants import VariantSpec
from painters.cli import main
from painters.report.paths import load_paths

T = 4


def write(root, rows, task="arc_easy", primary="acc"):
    """``rows``: [(spec text, per-document scores)] as the sweep writes them, for a 4-layer model."""
    import decoder_eval.sweep as sweep
    from decoder_eval.evaluate import TaskResult
    from decoder_eval.sweep import PlanSpec, key_fields, save_result

    original, fixed = sweep.versions, sweep.versions()
    sweep.versions = lambda: fixed
    try:
        store = ResultsStore(root)
        for text, docs in rows:
            ps = PlanSpec.of(VariantSpec.parse(text), T)
            res = TaskResult(task=task, metrics={primary: float(np.mean(docs))}, stderr={primary: 0.1}, chance=0.25,
                             primary=primary, n=len(docs), per_item=[{primary: d} for d in docs], seconds=1.0)
            key = key_fields("weights:fixture", ps, task, {"split": "test", "data": "x", "n": len(docs), "limit": None},
                             "float32")
            save_result(store, key, ps, res, model_name="tiny", config={"model": "tiny"})
    finally:
        sweep.versions = original


HAND = [("full", [1, 1, 0, 0, 0, 1]),
        ("skip_one:i=1", [1, 0, 1, 0, 0, 1]),  # cost 3/4: fixes document 2
        ("skip_one:i=2", [0, 1, 0, 0, 0, 0]),  # fixes nothing
        ("duplicate:i=1,j=3,times=2", [1, 1, 0, 1, 0, 1])]  # cost 6/4: fixes document 3


@pytest.mark.parametrize("cost, fixed", [(1.0, [2]), (1.5, [2, 3]), (0.5, [])])
def test_the_oracle_counts_what_a_hand_count_gives(tmp_path, cost, fixed):
    write(tmp_path, HAND)
    (p,), skipped = load_paths(tmp_path, cost=cost)
    assert not skipped
    assert p.labels[0] == "full" and p.errors == 3
    assert np.flatnonzero(p.fixed).tolist() == fixed
    assert dict(zip(p.labels, p.costs)) == {"full": 1.0, "skip_one:i=1": 0.75, "skip_one:i=2": 0.75,
                                            "duplicate:i=1,j=3,times=2": 1.5}
    assert p.cheapest_fix(2) == (p.labels.index("skip_one:i=1") if cost >= 0.75 else None)
    assert p.cheapest_fix(4) is None
    right_by = [{p.labels[k] for k in np.flatnonzero(p.right[:, d])} for d in range(6)]
    assert right_by[0] == {"full", "skip_one:i=1", "duplicate:i=1,j=3,times=2"} and right_by[4] == set()


def test_a_task_not_scored_right_or_wrong_is_skipped_with_the_reason(tmp_path):
    write(tmp_path, HAND)
    write(tmp_path, [("full", [0.3, 0.7]), ("skip_one:i=1", [0.2, 0.9])], task="lambada_openai")
    paths, skipped = load_paths(tmp_path)
    assert [p.unit.task for p in paths] == ["arc_easy"]
    (who, why), = skipped
    assert "lambada_openai" in who and "not right/wrong" in why


def _exchangeable(rng, plans=12, docs=120):
    """Every plan right on a document with that document's own chance: plans exchangeable."""
    p = rng.beta(0.8, 0.8, docs)
    return rng.random((plans, docs)) < p


def test_where_plans_are_exchangeable_chance_matches_the_oracle_on_average():
    rng = np.random.default_rng(7)
    eligible = np.ones(12, dtype=bool)
    eligible[8:] = False  # four plans over budget: they take part in the permutation, never fix
    oracle, chance = [], []
    for _ in range(300):
        right = _exchangeable(rng)
        oracle.append(oracle_fixes(right, 0, eligible).sum())
        chance.append(chance_fixes(right, 0, eligible, 200, rng=rng)[0].mean())
    diff = np.array(oracle) - np.array(chance)
    assert abs(diff.mean()) < 3 * diff.std(ddof=1) / np.sqrt(diff.size)
    assert np.mean(oracle) > 10  # many "fixes", and every one of them luck


def test_errors_the_other_plans_get_right_are_above_the_chance_range():
    """The baseline keeps each document's outcomes and makes the full model one plan among the others,
    so the oracle leaves its range when the full model is wrong, more often than a plan drawn at
    random would be, on documents some plan gets right: here a full model that errs at random on
    documents the others answer by difficulty."""
    rng = np.random.default_rng(3)
    right = _exchangeable(rng)
    right[0] = rng.random(right.shape[1]) < 0.3
    eligible = np.ones(right.shape[0], dtype=bool)
    count = oracle_fixes(right, 0, eligible).sum()
    permuted, _ = chance_fixes(right, 0, eligible, 2000, rng=rng)
    assert count > np.quantile(permuted, 0.975)
    # and the other way: a full model right wherever any plan is (an oracle of nothing) is below it
    right[0] = right.any(axis=0)
    assert oracle_fixes(right, 0, eligible).sum() == 0 < np.quantile(chance_fixes(right, 0, eligible, 2000, rng=rng)[0], 0.025)


def test_the_command_writes_the_table_and_refuses_a_bad_cost(tmp_path, capsys):
    write(tmp_path / "s", HAND)
    out = tmp_path / "o"
    assert main(["report", "paths", "--results", str(tmp_path / "s"), "--out", str(out), "--cost", "1.5"]) == 0
    data = json.loads((out / "paths.json").read_text())
    (u,) = data["units"]
    assert u["full_errors"] == 3 and u["oracle_fixes"] == 2 and data["cost"] == 1.5
    assert {u["plans"][k]["label"] for k in u["right_by"][0]} == {"full", "skip_one:i=1", "duplicate:i=1,j=3,times=2"}
    assert [q["eligible"] for q in u["plans"]] == [q["label"] != "full" for q in u["plans"]]
    md = (out / "paths.md").read_text()
    assert "2 (67%)" in md and "skip_one:i=1 (cost 0.75)" in md
    first = (out / "paths.json").read_text()
    assert main(["report", "paths", "--results", str(tmp_path / "s"), "--out", str(out), "--cost", "1.5"]) == 0
    assert (out / "paths.json").read_text() == first  # the same store, the same permutations
    capsys.readouterr()
    assert main(["report", "paths", "--results", str(tmp_path / "s"), "--out", str(tmp_path / "x"), "--cost", "0"]) == 2
    assert "--cost" in capsys.readouterr().err and not (tmp_path / "x").exists()
