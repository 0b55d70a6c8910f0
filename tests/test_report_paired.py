"""Verdicts from paired intervals on designed stores whose true effect is known: a clear effect is
supported, no effect is inconclusive with the documents that would decide it, a reversed effect is
contradicted, and a store written before records kept per-document scores is inconclusive and
says to re-run. Claim (v), parallel beats skip, is the example; the rule is the same for all."""

from __future__ import annotations

import pytest

from test_report_fixtures import DOCS, decoder_quality, write_decoder_store, write_glue_store

from glue_painters import stats
from painters.cli import main
from glue_painters.per_item import NO_SCORES
from painters.report.data import load_groups
from painters.report.findings import all_findings, group_findings, parallel_finding
from painters.report.verdict import (CONTRADICTED, INCONCLUSIVE, NEGLIGIBLE, SUPPORTED, adjusted_level, columns,
                                    decide)
from painters.report.paired import resampled

TASKS = ("lambada_openai", "arc_easy", "hellaswag")


def _parallel_minus_skip(delta):
    """The designed store with parallel = skip + ``delta`` (normalized) at every N."""
    def quality(variant, n, T=10, k=None, seed=None, i=None):
        if variant == "parallel":
            return decoder_quality("skip", n, T, k, seed, i) + delta
        return decoder_quality(variant, n, T, k, seed, i)
    return quality


def _finding(root, **kw):
    write_decoder_store(root, tasks=TASKS, **kw)
    (g,) = load_groups(root)
    return g, parallel_finding(g)


@pytest.mark.parametrize("delta, want", [(0.08, SUPPORTED), (-0.08, CONTRADICTED)])
def test_a_clear_effect_is_decided_in_its_direction(tmp_path, delta, want):
    g, f = _finding(tmp_path, quality=_parallel_minus_skip(delta))
    assert f.status == want and f.interval.level == 0.95
    assert f.interval.estimate == pytest.approx(delta, abs=1e-4)  # the documents' means are the design
    assert f.interval.low < f.interval.estimate < f.interval.high
    assert f.units == DOCS * len(TASKS) and f.docs_needed is None and f.seeds == "1"


def test_a_tiny_effect_measured_precisely_is_negligible_not_supported(tmp_path):
    """+0.01 on documents that agree closely: the interval excludes zero (the old rule called it
    supported) but lies inside ±δ, so it is negligible; with a δ of 0.005 it would be supported."""
    g, f = _finding(tmp_path, quality=_parallel_minus_skip(0.01), noise=0.005)
    assert f.interval.low > 0 and f.interval.high < f.sesoi == 0.05
    assert f.status == NEGLIGIBLE and f.pattern == "does not hold" and f.docs_needed is None
    assert "±0.05 (normalized)" in columns(f)
    assert decide(f, sesoi={"normalized": 0.005}).status == SUPPORTED
    assert decide(f, sesoi={"v": 0.005}).status == SUPPORTED and f.sesoi == 0.005  # a claim's own δ


def test_above_zero_but_short_of_delta_is_inconclusive(tmp_path):
    """An interval above zero whose estimate does not reach δ and that is not inside ±δ: whether
    the effect matters is open."""
    g, f = _finding(tmp_path, quality=_parallel_minus_skip(0.04), noise=0.12)
    assert 0 < f.interval.low and f.interval.estimate < f.sesoi < f.interval.high, f.interval
    assert f.status == INCONCLUSIVE and f.docs_needed is not None


def test_no_effect_is_inconclusive_with_the_documents_needed(tmp_path):
    g, f = _finding(tmp_path, quality=_parallel_minus_skip(0.004), noise=0.5)
    assert f.status == INCONCLUSIVE and f.interval.low < 0 < f.interval.high
    assert f.docs_needed > 3 * f.units
    # the rule: with the observed effect (below δ) and spread, that many documents give an interval
    # inside ±δ (negligible)
    assert abs(f.interval.estimate) < f.sesoi and f.docs_needed == stats.docs_needed(f.interval, sesoi=f.sesoi)
    # and whether the whole benchmarks could: the designed store's records say no limit cut them
    assert f.available == f.units and f.outlook.status == stats.UNDECIDABLE
    assert "the full set" in " ".join(columns(f))


def test_the_full_set_size_comes_from_the_local_split_a_limit_cut(tmp_path, monkeypatch):
    import json
    from painters.report.paired import _decoder_available
    (tmp_path / "arc_easy").mkdir()
    (tmp_path / "arc_easy" / "test.jsonl").write_text("".join(json.dumps({"i": i}) + "\n" for i in range(37)) + "\n")
    monkeypatch.setenv("PAINTERS_DATA", str(tmp_path))
    rec = lambda sub: [{"task": "arc_easy", "key": {"subset": sub}}]  # noqa: E731
    assert _decoder_available(rec({"limit": 10, "n": 10, "split": "local:arc_easy/test.jsonl"}), "arc_easy", 10) == 37
    assert _decoder_available(rec({"limit": None, "n": 12, "split": "local:arc_easy/test.jsonl"}), "arc_easy", 12) == 12
    assert _decoder_available(rec({"limit": 10, "n": 10, "split": "hub:allenai/ai2_arc/test"}), "arc_easy", 10) is None


def test_an_old_store_is_inconclusive_and_says_to_rerun(tmp_path, capsys):
    g, f = _finding(tmp_path / "results", per_item=False)
    assert f.pattern == "holds" and f.status == INCONCLUSIVE and f.interval is None
    assert f.evidence.startswith(NO_SCORES)
    rc = main(["report", "--results", str(tmp_path / "results"), "--out", str(tmp_path / "out")])
    assert rc == 0
    md = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert NO_SCORES in md and "No 95% bands" in (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("  (") and not x.startswith("  (i)")]
    assert lines and all(" inconclusive " in x or " not enough data " in x for x in lines)


def test_random_averages_its_seeds_document_by_document(tmp_path):
    g, _ = _finding(tmp_path)
    res = resampled(g)
    key = ("random", 1, None, None)
    assert res.seeds[key] == 3
    # observed normalized median = the mean of the seeds' designed qualities (1 - 0.05 m + 0.01 (seed - 1))
    assert res.rel(key)[0] == pytest.approx(1 - 0.05 * 7, abs=1e-4)


def test_bonferroni_over_the_claims_of_the_report(tmp_path):
    write_decoder_store(tmp_path, tasks=TASKS)
    write_glue_store(tmp_path, modes=("probe",), tasks=("rte", "sst2"))
    findings = all_findings(load_groups(tmp_path), [])
    judged = [f for f in findings if f.interval is not None]
    assert len(judged) >= 10
    assert adjusted_level(findings) == pytest.approx(1 - 0.05 / len(judged))
    assert all(f.interval.level == adjusted_level(findings) for f in judged)
    for f in judged:  # the rule, on the interval and the estimate against δ
        iv, d = f.interval, f.sesoi
        want = (NEGLIGIBLE if -d < iv.low and iv.high < d else SUPPORTED if iv.low > 0 and iv.estimate >= d - 1e-6
                else CONTRADICTED if iv.high < 0 and iv.estimate <= -d + 1e-6 else INCONCLUSIVE)
        assert f.status == want, f


def test_glue_effects_are_recomputed_from_row_predictions(tmp_path):
    write_glue_store(tmp_path, modes=("probe",), tasks=("rte", "sst2", "cola"))
    (g,) = load_groups(tmp_path)
    f = parallel_finding(g)
    # the fixture's predictions reach the designed scores to a row, so the paired estimate is the
    # records' own margin to within a row's worth
    assert f.interval.estimate == pytest.approx(f.numbers["mean_margin"]["skip"], abs=0.02)
    assert f.unit_name == "evaluation rows" and f.units == 3 * 277 and f.seeds == "2"
    assert f.status == CONTRADICTED


def test_claims_are_judged_on_the_benchmarks_every_variant_ran(tmp_path):
    """The full model fine-tuned on three benchmarks, the variants on one: the claims are judged on
    that one (pattern and interval alike) and say which were left out, instead of having no data."""
    write_glue_store(tmp_path, modes=("finetune",), variants=(), tasks=("rte", "sst2", "cola"))
    write_glue_store(tmp_path, modes=("finetune",), tasks=("sst2",))
    (g,) = load_groups(tmp_path)
    assert sorted(g.reliable) == ["cola", "rte", "sst2"]
    left = ", ".join(t for t in g.reliable if t != "sst2")
    findings = group_findings(g)
    assert {f.claim for f in findings} == {"ii", "iii", "iv", "v", "vi-a", "vi-b"}
    for f in findings:
        assert f.evidence.startswith(f"judged on sst2 only ({left}: not run for the variants)"), f.evidence
        assert f.subject == g.title
    f = next(f for f in findings if f.claim == "v")
    assert f.units == 277 and f.status == CONTRADICTED  # the fixture has parallel below skip
    # the same comparison made on a store where the variants ran only sst2 from the start
    alone = tmp_path.parent / "alone"
    write_glue_store(alone, modes=("finetune",), tasks=("sst2",))
    (h,) = load_groups(alone)
    # (the same estimate; the interval to within the resampling's Monte Carlo noise: the cells are
    # drawn in another order)
    other = parallel_finding(h).interval
    assert other.estimate == f.interval.estimate
    assert (other.low, other.high) == pytest.approx((f.interval.low, f.interval.high), abs=0.05)
