"""The relayering heatmap's numbers (painters/report/relayer.py): the family the correction is over,
which cells it decides, and the held-out re-estimate.

Stores are written by the decoder track's own record writer (``decoder_eval.sweep.save_result``),
with 0/1 per-document scores designed by hand: the full model right on a fixed set of documents,
each null cell the full model with as many documents flipped right→wrong as wrong→right (a true
difference of exactly zero, document by document noise), and one cell with a real gain.
"""

from __future__ import annotations

import numpy as np
import pytest

from glue_painters import stats
from glue_painters.holdout import selection
from glue_painters.results import ResultsStore
from glue_painters.variants import VariantSpec
from painters.cli import main
from painters.report.relayer import load_scans
from test_relayering import scan_env  # noqa: F401 - the decoder sweep's tiny scan, a fixture

T = 8
WIDTHS = (1, 2, 3)


def cells(widths=WIDTHS, times=(2,)):
    return [(i, i + w, k) for k in times for w in widths for i in range(0, T - w + 1)]


def outcomes(n: int, seed: int, gain: int = 0, flips: int = 0, base=None) -> list[int]:
    """0/1 per document: ``base`` (or a fixed 60% right) with ``flips`` documents each way swapped
    and then ``gain`` wrong documents made right."""
    rng = np.random.default_rng(seed)
    x = np.array(base if base is not None else (np.random.default_rng(12345).random(n) < 0.6), dtype=int)
    right, wrong = rng.permutation(np.flatnonzero(x == 1)), rng.permutation(np.flatnonzero(x == 0))
    x[right[:flips]] = 0
    x[wrong[:flips + gain]] = 1
    return [int(v) for v in x]


def write(root, rows, task="arc_easy", n=300, part=None, of=None, per_item=True):
    """``rows``: [(VariantSpec, per-document 0/1 list)] into a decoder store, as the sweep writes them
    (``part``: scan / holdout, with the key's selection and the record's split)."""
    import decoder_eval.sweep as sweep
    from decoder_eval.evaluate import TaskResult
    from decoder_eval.sweep import PlanSpec, key_fields, save_result

    original, fixed = sweep.versions, sweep.versions()
    sweep.versions = lambda: fixed
    try:
        store = ResultsStore(root)
        subset = {"split": "test", "data": "x", "n": of or n, "limit": None}
        if part:
            subset["selection"] = selection(part, 0.3, 0, of)
        for spec, docs in rows:
            ps = PlanSpec.of(spec, T)
            score = float(np.mean(docs))
            res = TaskResult(task=task, metrics={"acc": score}, stderr={"acc": 0.02}, chance=0.25, primary="acc",
                             n=len(docs), per_item=[{"acc": d} for d in docs] if per_item else [], seconds=1.0)
            key = key_fields("weights:fixture", ps, task, subset, "float32")
            save_result(store, key, ps, res, model_name="tiny", config={"model": "tiny"},
                        extra={"split": part} if part else None)
    finally:
        sweep.versions = original


def dup(i, j, times=2):
    return VariantSpec.of("duplicate", i=i, j=j, times=times)


def scan_store(root, n=300, winner=(2, 4, 2), gain=45, part=None, of=None, tasks=("arc_easy",)):
    full = outcomes(n, 0)
    for task in tasks:
        rows = [(VariantSpec.of("full"), full)]
        for k, (i, j, times) in enumerate(cells()):
            g = gain if (i, j, times) == winner else 0
            rows.append((dup(i, j, times), outcomes(n, 100 + k, gain=g, flips=15, base=full)))
        write(root, rows, task=task, n=n, part=part, of=of)
    return full


def test_the_family_is_every_cell_scanned_for_the_task(tmp_path):
    scan_store(tmp_path)
    # one more cell on another task and one without per-document scores: each task's own family
    write(tmp_path, [(VariantSpec.of("full"), outcomes(300, 0)), (dup(0, 1), outcomes(300, 7, flips=10))],
          task="hellaswag")
    write(tmp_path, [(dup(0, 5), outcomes(300, 8))], per_item=False)
    (s,) = load_scans(tmp_path)
    by = {t.task: t for t in s.tasks}
    assert by["arc_easy"].family == len(cells()) + 1 == len(by["arc_easy"].cells) == 22
    assert by["arc_easy"].level == pytest.approx(stats.bonferroni(0.95, 22))
    assert by["hellaswag"].family == 1 and by["hellaswag"].level == pytest.approx(0.95)
    lacking = [c for c in by["arc_easy"].cells if c.interval is None]
    assert [c.label for c in lacking] == ["duplicate:i=0,j=5,times=2"] and lacking[0].status == stats.INCONCLUSIVE
    scored = [c for c in by["arc_easy"].cells if c.interval is not None]
    assert {c.interval.level for c in scored} == {by["arc_easy"].level}
    assert min(c.interval.draws for c in scored) >= stats.resamples_for(by["arc_easy"].level)


def test_the_one_true_cell_is_decided_and_the_null_cells_are_not(tmp_path):
    scan_store(tmp_path, winner=(2, 4, 2), gain=45)
    (s,) = load_scans(tmp_path)
    (t,) = s.tasks
    by = {(c.i, c.j, c.times): c for c in t.cells}
    true = by.pop((2, 4, 2))
    assert true.interval.estimate == pytest.approx(45 / 300) and true.status == stats.SUPPORTED
    assert t.best is true
    # every null cell is exactly 0 on average; at the corrected level none is called a gain or a loss
    assert all(c.interval.estimate == 0 for c in by.values())
    assert not [c.label for c in by.values() if c.status in (stats.SUPPORTED, stats.CONTRADICTED)]
    # the correction is what widens them: the same cells' unadjusted intervals are narrower
    from glue_painters.relayer_stats import family_differences

    full = np.array(outcomes(300, 0), dtype=float)
    null = np.stack([np.array(outcomes(300, 100 + k, flips=15, base=outcomes(300, 0)), dtype=float)
                     for k, c in enumerate(cells()) if c != (2, 4, 2)])
    narrow = [family_differences(row[None], full, name="x", family=1, resamples=2000)[0] for row in null]
    wide = family_differences(null, full, name="x", family=len(cells()), resamples=2000)
    assert all(w.high - w.low > n.high - n.low for w, n in zip(wide, narrow))


def test_the_held_out_estimate_uses_only_held_out_records(tmp_path):
    # the scan part: 210 documents where cell (2, 4) gains 45; the held-out part: 90 documents
    # where it gains nothing (the winner's curse made visible)
    full_scan = scan_store(tmp_path, n=210, part="scan", of=300)
    held_full = outcomes(90, 50)
    held_cell = outcomes(90, 51, flips=9, base=held_full)
    write(tmp_path, [(VariantSpec.of("full"), held_full), (dup(2, 4), held_cell)], n=90, part="holdout", of=300)
    (s,) = load_scans(tmp_path)
    (t,) = s.tasks
    assert t.split == "scan" and t.docs == 210 == len(full_scan) and t.family == len(cells())
    (h,) = t.held
    assert h.best and h.label == "duplicate:i=2,j=4,times=2"
    assert h.held.n == 90 and h.held.estimate == pytest.approx(np.mean(held_cell) - np.mean(held_full))
    assert h.held.level == pytest.approx(0.95)  # unadjusted: one comparison, chosen beforehand
    assert h.scan.estimate == pytest.approx(45 / 210) and h.scan.n == 210
    # a scan record changed under the held-out one moves nothing held out
    write(tmp_path, [(dup(2, 4), outcomes(210, 9, gain=100, base=full_scan))], n=210, part="scan", of=300)
    (s2,) = load_scans(tmp_path)
    assert s2.tasks[0].held[0].held == h.held


def test_without_held_out_records_the_report_says_how_to_make_them(tmp_path, capsys):
    scan_store(tmp_path, tasks=("arc_easy", "hellaswag"))
    (s,) = load_scans(tmp_path)
    assert all(not t.held and "holdout: {fraction" in t.held_note for t in s.tasks)
    out = tmp_path / "out"
    assert main(["report", "relayer", "--results", str(tmp_path), "--out", str(out)]) == 0
    md = (out / "relayer.md").read_text()
    assert "No held-out records" in md and "Bonferroni" in md and "Holm" in md
    assert "duplicate:i=2,j=4,times=2" in md
    png = out / "relayer_tiny.png"
    first = png.read_bytes()
    assert main(["report", "relayer", "--results", str(tmp_path), "--out", str(out)]) == 0
    assert png.read_bytes() == first  # byte for byte
    assert b"Software" not in first


def test_a_store_without_a_duplicate_record_is_one_clear_line(tmp_path, capsys):
    write(tmp_path, [(VariantSpec.of("full"), outcomes(50, 0))], n=50)
    assert main(["report", "relayer", "--results", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "no duplicate" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_the_main_report_carries_the_relayering_section(tmp_path):
    scan_store(tmp_path)
    assert main(["report", "--results", str(tmp_path), "--out", str(tmp_path / "r")]) == 0
    html = (tmp_path / "r" / "report.html").read_text()
    assert "id='relayering'" in html and "Bonferroni" in html
    assert (tmp_path / "r" / "report_figures" / "relayer_tiny.png").is_file()


def test_a_real_scan_with_a_held_out_round_reads_back(scan_env):
    """End to end on the decoder sweep's own records (a tiny llama, tests/test_relayering.py's scan):
    every cell of the scan in its task's family, the winners' held-out rows from held-out records of
    the held-out size only, and their estimate the mean paired difference of those records."""
    from test_relayering import SCAN, _run

    out = _run(scan_env, SCAN, scan_env["root"] / "report")
    (s,) = load_scans(scan_env["root"] / "report")
    held_n = {"arc_easy": 3, "hellaswag": 2}
    for t in s.tasks:
        assert t.split == "scan" and t.family == len(out.specs) - 1 == len(t.cells)
        assert len(t.held) == len(out.choice.plans_for(t.task)) >= 1
        # the scan's best cell is the sweep's winner on that task (its rule, ties included)
        assert t.best.plan_text == out.choice.per_task[t.task] and any(h.best for h in t.held)
        full = next(r for r in out.holdout if r["task"] == t.task and r["variant"] == "full")
        for h in t.held:
            rec = next(r for r in out.holdout if r["task"] == t.task and r["variant"] == "duplicate"
                       and VariantSpec.of("duplicate", **r["params"]).text == h.label)
            primary = full["primary_metric"]
            assert h.held.n == held_n[t.task] == len(rec["per_item"][primary])
            assert h.held.estimate == pytest.approx(np.mean(rec["per_item"][primary]) - np.mean(full["per_item"][primary]))


def test_the_main_reports_cells_keep_every_duplicate_block_apart(tmp_path):
    """Blocks with one start and different ends (or run counts) are different plans: one cell each
    in the report's groups, with the summary's headline of that block, never pooled like seeds."""
    from painters.report.data import decoder_groups

    scan_store(tmp_path)
    (group,) = decoder_groups(ResultsStore(tmp_path).records())
    dups = [c for c in group.cells.values() if c.variant.startswith("duplicate:")]
    assert len(dups) == len(cells())
    assert all(len(c.plans) == 1 and len(c.raw["arc_easy"]) == 1 for c in dups)
    assert {c.variant for c in dups} == {dup(i, j, k).text for i, j, k in cells()}
