"""The findings' pattern rules on hand-made groups: each claim's pattern found both ways, and refused
when the data cannot decide it. These groups hold no records, so no per-document scores: every
verdict of (ii)-(vii) is inconclusive and says why (the verdicts themselves: ``test_report_paired.py``);
claim (i)'s verdicts are decided here, from hand-made per-document similarity sums.

Why hand-made ``Group``s here (the end-to-end path is in ``test_report.py``): a rule's edge (the
3/4 majority, the single-layer middle left out, an at-chance task not judged) is set up exactly in
a few lines, and the module runs in well under a second.
"""

from __future__ import annotations

import numpy as np
import pytest

from glue_painters.errors import UserError
from glue_painters.per_item import NO_SCORES
from painters.report.data import Cell, Group, Stat
from painters.report.findings import (all_findings, best_k_finding, group_findings, looping_finding,
                                           parallel_finding, random_finding, repeat_finding, skip_finding, task_finding)
from painters.report.similarity_claim import Similarity, similarity_finding
from painters.report.verdict import (CONTRADICTED, FAILS, HOLDS, INCONCLUSIVE, NO_DATA, SUPPORTED, Finding,
                                          adjusted_level, decide)
from glue_painters.similarity import middle_groups


def group(values: dict, T: int | None = 10, tasks=("lambada_openai",), flagged=(), per_task=None,
          track="decoder") -> Group:
    """``values``: {(variant, n, k): relative headline}; ``per_task``: {(variant, n, k): {task: value}}."""
    cells = {("full", None, None, None): Cell("full", None, None, None, "full",
                                              headline=Stat(1.0, None, 1), relative=Stat(1.0, None, 1))}
    for (v, n, k), x in values.items():
        c = Cell(v, n, k, None, f"{v}:{n}", headline=Stat(x, None, 1), relative=Stat(x, None, 1))
        for t, y in ((per_task or {}).get((v, n, k)) or {}).items():
            c.per_task[t] = [y]
        cells[(v, n, k, None)] = c
    return Group(track=track, model="m", title="m", slug="m", tasks=list(tasks),
                 flagged={t: "at chance" for t in flagged}, full_score={}, chance={}, primary={}, cells=cells,
                 num_layers=T, headline_name="normalized median", value_name="normalized score")


# ---- (i) -------------------------------------------------------------------------------------------------
def _sim(groups, size=11, mid=range(1, 9)):
    m = [[1.0 if i == j else (0.9 if i in mid and j in mid else 0.3) for j in range(size)] for i in range(size)]
    return Similarity("m", None, m, groups, "0-9", 10)


def _with_documents(sim: Similarity, noise: float, docs: int = 40, seed: int = 0) -> Similarity:
    """Per-document summed matrices (upper triangles, as ``similarity.save`` writes them) whose
    token-weighted mean is exactly the matrix, each document's middle block off by its own noise."""
    m = np.asarray(sim.matrix)
    k = len(m)
    (_, _), (b0, b1), (_, _) = middle_groups(sim.matrix)
    mask = np.zeros((k, k))
    mask[b0:b1 + 1, b0:b1 + 1] = 1 - np.eye(b1 - b0 + 1)
    rng = np.random.default_rng(seed)
    tokens = rng.integers(5, 60, docs)
    e = rng.standard_normal(docs) * noise
    e -= (tokens * e).sum() / tokens.sum()  # token-weighted mean noise exactly zero
    mats = (m[None] + e[:, None, None] * mask[None]) * tokens[:, None, None]
    iu = np.triu_indices(k)
    sim.per_document = {"tokens": tokens.tolist(), "sums": mats[:, iu[0], iu[1]].tolist()}
    return sim


def test_similarity_rule():
    """The pattern (the point estimates) and the verdict (the interval over documents) of claim (i)."""
    uniform = [[0, 0], [1, 8], [9, 10]]
    f = decide(similarity_finding(_with_documents(_sim(uniform), noise=0.05)))
    assert (f.status, f.pattern, f.units) == (SUPPORTED, HOLDS, 40)
    assert f.interval.low > 0 and f.interval.estimate == pytest.approx(0.6)
    assert f.numbers["groups"] == [(0, 0), (1, 8), (9, 10)]
    # the same matrix from documents that disagree a lot: the interval straddles zero
    f = decide(similarity_finding(_with_documents(_sim(uniform), noise=8.0)))
    assert (f.status, f.pattern) == (INCONCLUSIVE, HOLDS) and f.docs_needed > 40
    # a uniform run that reaches the last layer (the free grouping calls a short run the middle):
    # the middle of at least half the boundaries is as alike with the last group as inside
    tail = _sim([[0, 0], [1, 2], [3, 10]], mid=range(3, 11))
    f = decide(similarity_finding(_with_documents(tail, noise=0.05)))
    assert f.pattern == FAILS and f.status != SUPPORTED and f.numbers["groups"][1][1] - f.numbers["groups"][1][0] >= 5
    assert "free grouping (Fig. 3): 0–0 | 1–2 | 3–10" in f.evidence
    # a middle less alike inside than with its neighbours: contradicted
    flat = _sim(uniform, mid=range(0))
    flat.matrix = [[1.0 if i == j else (0.2 if 1 <= i <= 8 and 1 <= j <= 8 else 0.6) for j in range(11)] for i in range(11)]
    f = decide(similarity_finding(_with_documents(flat, noise=0.05)))
    assert (f.status, f.pattern) == (CONTRADICTED, FAILS) and f.interval.high < 0
    # a report written before per-document sums were kept: inconclusive, and says how to fix it
    f = decide(similarity_finding(_sim(uniform)))
    assert f.status == INCONCLUSIVE and f.interval is None and "rerun `painters similarity --model m`" in f.evidence
    three = Similarity("m", None, [[1.0, 0.5, 0.5], [0.5, 1.0, 0.5], [0.5, 0.5, 1.0]], [], "0-1", 3)
    assert similarity_finding(three).status == NO_DATA
    assert all_findings([], [])[0].status == NO_DATA


def test_similarity_sums_from_another_run_are_refused():
    sim = _with_documents(_sim([[0, 0], [1, 8], [9, 10]]), noise=0.05)
    sim.per_document["sums"] = (np.asarray(sim.per_document["sums"]) * 0.9).tolist()
    with pytest.raises(UserError, match="do not give back its matrix"):
        similarity_finding(sim)


def test_claim_i_counts_in_the_multiple_comparison_family():
    """Its interval is one more comparison: the Bonferroni level of every claim tightens with it."""
    sims = [_with_documents(_sim([[0, 0], [1, 8], [9, 10]]), noise=0.05)]
    assert adjusted_level(all_findings([], sims)) == pytest.approx(0.95)
    assert adjusted_level(all_findings([], sims + [_with_documents(_sim([[0, 0], [1, 8], [9, 10]]), 0.05, seed=1)])) \
        == pytest.approx(1 - 0.05 / 2)


# ---- (ii) ------------------------------------------------------------------------------------------------
def test_skip_rule():
    # T=10: N=4 removes 1 layer (10%), N=3 removes 3 (30%, beyond the quarter)
    assert skip_finding(group({("skip", 4, None): 0.85, ("skip", 3, None): 0.1})).pattern == HOLDS
    f = skip_finding(group({("skip", 4, None): 0.75}))
    assert f.pattern == FAILS and "0.75" in f.evidence
    assert skip_finding(group({("skip", 3, None): 0.9})).status == NO_DATA  # nothing within a quarter
    assert skip_finding(group({("skip", 4, None): 0.9}, T=None)).status == NO_DATA
    assert skip_finding(group({})).status == NO_DATA


# ---- (iii) -----------------------------------------------------------------------------------------------
def test_middle_repeat_rule():
    base = {("skip", n, None): 0.5 for n in range(5)} | {("reverse", n, None): 0.6 for n in range(5)}
    lowest = base | {("middle_repeat", n, None): 0.2 for n in range(5)}
    # N=4 has a one-layer middle: ignored even where middle_repeat is not lowest there
    lowest[("middle_repeat", 4, None)] = 0.99
    f = repeat_finding(group(lowest))
    assert f.pattern == HOLDS and f.numbers["n"] == [0, 1, 2, 3]
    # the effect: the smallest over the other variants of their mean margin over middle_repeat
    assert f.point == pytest.approx(0.3) and f.numbers["mean_margin"] == pytest.approx({"skip": 0.3, "reverse": 0.4})
    # lowest at only 2 of 4 N, but far lowest at those: the mean margin over skip, +0.125, is the claim's
    half = dict(lowest) | {("middle_repeat", 0, None): 0.55, ("middle_repeat", 1, None): 0.55}
    f = repeat_finding(group(half))
    assert f.pattern == HOLDS and f.point == pytest.approx(0.125) and "lowest at 2/4 N" in f.evidence
    # as far above skip at two N as below it at the others: a mean margin of 0 does not reach δ
    even = dict(lowest) | {("middle_repeat", n, None): 0.5 + (0.05 if n < 2 else -0.05) for n in range(4)}
    assert repeat_finding(group(even)).pattern == FAILS
    assert repeat_finding(group(base)).status == NO_DATA
    only_one_other = {("skip", n, None): 0.5 for n in range(4)} | {("middle_repeat", n, None): 0.1 for n in range(4)}
    assert repeat_finding(group(only_one_other)).status == NO_DATA


# ---- (iv), (v), (vi-a) ---------------------------------------------------------------------------------------
def test_random_rule_is_the_smaller_mean_margin_against_delta():
    """The pattern is the claim's effect, min(mean(random − reverse), mean(random − skip)) over N,
    reaching δ (0.05); wins at each N are evidence only."""
    vals = {("reverse", n, None): 0.4 for n in range(4)} | {("skip", n, None): 0.3 for n in range(4)}
    three = vals | {("random", n, None): 0.5 for n in range(4)} | {("random", 3, None): 0.35}
    f = random_finding(group(three))
    assert f.pattern == HOLDS and len(f.numbers["wins"]) == 3 and f.point == pytest.approx(0.0625)
    two = three | {("random", 2, None): 0.35}  # vs reverse: +0.1, +0.1, −0.05, −0.05: mean 0.025 < δ
    f = random_finding(group(two))
    assert f.pattern == FAILS and f.point == pytest.approx(0.025)
    no_reverse = {k: v for k, v in three.items() if k[0] != "reverse"}
    assert random_finding(group(no_reverse)).status == NO_DATA


def test_parallel_and_looping_rules():
    vals = {("skip", n, None): 0.3 for n in range(4)} | {("parallel", n, None): 0.5 for n in range(4)}
    assert parallel_finding(group(vals)).pattern == HOLDS
    assert parallel_finding(group(vals | {("skip", n, None): 0.6 for n in range(4)})).pattern == FAILS
    assert looping_finding(group(vals)).status == NO_DATA  # no k > 1
    looped = vals | {("looped_parallel", n, 3): 0.45 for n in range(4)}
    f = looping_finding(group(looped))
    assert f.pattern == FAILS and f.numbers["mean_margin"]["parallel"] == pytest.approx(-0.05)
    looped |= {("looped_parallel", n, 3): 0.55 for n in range(4)}
    assert looping_finding(group(looped)).pattern == HOLDS


# ---- (vi-b) ----------------------------------------------------------------------------------------------
def test_best_k_rule():
    T = 10  # N=0..3 -> 9, 7, 5, 3 layers in parallel

    def grid(best_by_n):
        vals = {}
        for n, best in best_by_n.items():
            for k in (1, 2, 3):
                key = ("parallel", n, None) if k == 1 else ("looped_parallel", n, k)
                vals[key] = 0.9 if k == best else 0.5
        return vals

    grows = best_k_finding(group(grid({0: 3, 1: 3, 2: 2, 3: 1}), T=T))
    assert grows.pattern == HOLDS and grows.numbers["rho"] > 0.9
    shrinks = best_k_finding(group(grid({0: 1, 1: 2, 2: 3, 3: 3}), T=T))
    assert shrinks.pattern == FAILS and shrinks.numbers["rho"] < 0
    same = best_k_finding(group(grid({0: 3, 1: 3, 2: 3, 3: 3}), T=T))
    assert same.pattern == FAILS and "same k" in same.evidence
    assert best_k_finding(group(grid({0: 3, 1: 2}), T=T)).status == NO_DATA
    # parallel alone (no looped rows): too few rows, and no false "records miss benchmarks"
    only = best_k_finding(group({("parallel", 1, None): 0.8}, T=T))
    assert only.status == NO_DATA and only.evidence.startswith("0 grid row(s)") and "miss" not in only.evidence
    assert "cannot decide" not in only.evidence  # 10 layers: 4 rows (9, 7, 5, 3 in parallel)
    # 6 layers (MiniLM): 5 and 3 layers in parallel are the only rows, fewer than the rule needs
    assert "a 6-layer model has only 2 (this model cannot decide it)" in best_k_finding(group({}, T=6)).evidence


# ---- (vii) ----------------------------------------------------------------------------------------------
def test_task_rule():
    tasks = ("lambada_openai", "hellaswag", "arc_easy", "gsm8k")
    cells = {("skip", n, None): 0.5 for n in range(3)}
    per = {("skip", n, None): {"lambada_openai": 0.6, "hellaswag": 0.7, "arc_easy": 0.3} for n in range(3)}
    f = task_finding(group(cells, tasks=tasks, flagged=("gsm8k",), per_task=per))
    assert f.pattern == HOLDS and "not judged: gsm8k: at chance" in f.evidence
    per_bad = {k: v | {"arc_easy": 0.65} for k, v in per.items()}
    assert task_finding(group(cells, tasks=tasks, flagged=("gsm8k",), per_task=per_bad)).pattern == FAILS
    # ARC and GSM8K both at chance: the claim cannot be judged
    assert task_finding(group(cells, tasks=tasks, flagged=("gsm8k", "arc_easy"), per_task=per)).status == NO_DATA
    # a GLUE group is not asked the decoder-only question
    assert "vii" not in {f.claim for f in group_findings(group(cells, track="glue"))}


def test_not_enough_data_says_why():
    assert skip_finding(group({})).evidence == "no skip records"
    g = group({("skip", 4, None): None}, flagged=("lambada_openai",))
    assert "every benchmark is at chance" in skip_finding(g).evidence
    del g.cells[("full", None, None, None)]
    assert parallel_finding(g).evidence == "no parallel records"
    assert "no full-model record" in skip_finding(g).evidence


def test_without_per_document_scores_no_verdict_rests_on_the_pattern():
    vals = {("skip", n, None): 0.3 for n in range(4)} | {("parallel", n, None): 0.5 for n in range(4)}
    f = parallel_finding(group(vals))
    assert f.pattern == HOLDS and f.status == INCONCLUSIVE and f.interval is None
    assert f.evidence.startswith(NO_SCORES)
    assert {f.status for f in group_findings(group(vals))} <= {INCONCLUSIVE, NO_DATA}


def test_cost_to_decide_comes_from_the_records_timing():
    """CPU-seconds per record = its share of its pass x its threads, over the claim's cells and the
    full model on the judged tasks; more documents cost in proportion."""
    from painters.report.findings import _cpu_seconds

    g = group({("skip", 4, None): 0.5}, tasks=("lambada_openai", "arc_easy"))
    skip, full = ("skip", 4, None, None), ("full", None, None, None)
    g.cells[skip].records = [
        {"task": "lambada_openai", "timing": {"seconds_per_plan": 30.0}, "versions": {"threads": 2}},
        {"task": "arc_easy", "timing": {"seconds_per_plan": 10.0}, "versions": {"threads": 1}},
        {"task": "wikitext2_lines", "timing": {"seconds_per_plan": 99.0}}]  # not judged: not counted
    g.cells[full].records = [{"task": "lambada_openai", "timing": {"seconds_per_plan": 20.0}}]
    assert _cpu_seconds(g, [skip, full, full], ["lambada_openai", "arc_easy"]) == 60 + 10 + 20
    g.cells[full].records.append({"task": "arc_easy"})  # a record without timing: no estimate
    assert _cpu_seconds(g, [skip, full], ["lambada_openai", "arc_easy"]) is None
    f = Finding("iii", "m", INCONCLUSIVE, "", units=500, docs_needed=859, cpu_seconds=3600.0)
    assert f.cpu_hours_to_decide == pytest.approx(359 / 500)
    assert Finding("iii", "m", INCONCLUSIVE, "", units=500, docs_needed=859).cpu_hours_to_decide is None
