"""``painters report`` end to end on stores written by the tracks' own record writers.

Why designed stores (``test_report_fixtures``): every number the report shows can be predicted, so
the tests check values (the median, the GLUE average without the at-chance task, the seeds'
spread) and verdicts, not only that files appear. One report is built per module and inspected by
several tests, to keep the module well under a minute on a shared two-core machine.
"""

from __future__ import annotations

import base64
import re
import struct

import pytest

from test_report_fixtures import write_decoder_store, write_glue_store, write_similarity

from painters.cli import main
from painters.report import build_report
from painters.report.data import load_groups
from painters.report.verdict import CONTRADICTED, INCONCLUSIVE, NO_DATA, SUPPORTED


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    results, out = root / "results", root / "out"
    write_decoder_store(results)
    write_glue_store(results, modes=("probe",))
    write_similarity(out)
    rc = main(["report", "--results", str(results), "--out", str(out)])
    assert rc == 0
    groups = {g.track: g for g in load_groups(results)}
    return {"results": results, "out": out, "groups": groups,
            "html": (out / "report.html").read_text(encoding="utf-8"),
            "md": (out / "report.md").read_text(encoding="utf-8")}


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_html_is_self_contained_with_every_figure(built):
    html, out = built["html"], built["out"]
    srcs = re.findall(r"<img [^>]*src='([^']+)'", html)
    pngs = sorted((out / "report_figures").glob("*.png"))
    assert len(srcs) == len(pngs) >= 18
    for src in srcs:
        assert src.startswith("data:image/png;base64,")
        w, h = _png_size(base64.b64decode(src.split(",", 1)[1]))
        assert w > 100 and h > 100
    assert not re.search(r"""(src|href)=['"]?(https?:|//)""", html), "the report must load nothing from outside"
    assert "<script" not in html
    # configs and versions that produced the records
    assert '"source": "fixture.yaml"' in html and '"transformers"' in html and '"code"' in html


def test_every_figure_of_the_paper_is_drawn_where_records_exist(built):
    names = {p.stem for p in (built["out"] / "report_figures").glob("*.png")}
    dec = "decoder_tinyllama_float32"
    for stem in ("fig2", "fig10", "fig11") + tuple(f"fig_{v}" for v in
                                                   ("skip", "middle_repeat", "reverse", "random", "parallel",
                                                    "looped_parallel")):
        assert f"{stem}_{dec}" in names
    assert "fig3_tinyllama" in names
    assert "fig10_glue_tinybert_probe" in names and "fig11_glue_tinybert_probe" in names
    # and the ones it cannot draw are named with the reason, in both outputs
    assert "fig2 — tinybert — GLUE probe: no skip_one / switch records" in built["md"]
    assert "no skip_one / switch records" in built["html"]


def test_headline_numbers_reuse_the_tracks_summaries(built):
    from decoder_eval.summary import summarize

    dec, glue = built["groups"]["decoder"], built["groups"]["glue"]
    assert dec.flagged.keys() == {"gsm8k"} and glue.flagged.keys() == {"wnli"}
    # designed: the median over lambada/arc_easy/hellaswag is lambada's, 1 - 0.09 m (m = 1 at N=4)
    assert dec.cell("skip", 4).headline.mean == pytest.approx(0.91)
    assert dec.full().headline.mean == pytest.approx(1.0)
    rows = {(r.variant, r.n, r.k): r for r in summarize(dec.records).rows}
    for c in dec.cells.values():
        if c.i is None and not c.variant.startswith("custom"):
            assert c.headline.mean == pytest.approx(rows[(c.variant, c.n, c.k)].median)
    rnd = dec.cell("random", 1)
    assert rnd.headline.seeds == 3 and rnd.headline.std == pytest.approx(0.01)
    # GLUE: the paper's unnormalized average of the task means (the at-chance WNLI included, seeds
    # 0 and 1 score 50 and 49); the findings' normalized median leaves WNLI out
    assert glue.full().headline.mean == pytest.approx((67 + 91 + 40 + 49.5) / 4)
    assert glue.full().relative.mean == pytest.approx(1.0)
    assert glue.cell("skip", 0).relative.mean == pytest.approx(1 - 0.08 * 5 + 0.0025)
    assert glue.cell("skip", 0).headline.std is not None  # two seeds: a spread


def test_flagged_benchmarks_marked_in_tables_and_plots(built):
    md = built["md"]
    assert "gsm8k ‡" in md and "wnli ‡" in md
    assert "left out of the normalized median (raw score in parentheses)" in md
    assert "wnli: full 49.5 vs chance 50.0, margin -0.5 ≤ 3×SE" in md and "kept in the GLUE average" in md
    # the decoder table shows the flagged task's raw score in parentheses
    full_row = next(line for line in md.splitlines() if line.startswith("| full |") and "(0.010)" in line)
    assert full_row


def test_glue_labels_sharing_a_plan_share_its_record(built):
    glue = built["groups"]["glue"]
    # with 6 layers, N=2 leaves one middle layer: reverse runs the full plan; the sweep stores it once
    rev, full = glue.cell("reverse", 2), glue.full()
    assert rev is not None and rev.per_task["rte"] == full.per_task["rte"]


def test_glue_stores_of_old_format_read_as_the_per_label_ones(tmp_path):
    """Before records were per label, a GLUE store had one record per plan (under its first label);
    the report rebuilds the other labels, so both stores give the same tables."""
    write_glue_store(tmp_path / "new", modes=("probe",))
    write_glue_store(tmp_path / "old", modes=("probe",), legacy=True)
    new, old = (load_groups(tmp_path / name, track="glue") for name in ("new", "old"))
    assert len(list((tmp_path / "old").rglob("*.json"))) < len(list((tmp_path / "new").rglob("*.json")))
    assert len(new) == len(old) == 1 and new[0].cells.keys() == old[0].cells.keys()
    def values(cell):  # per task, over seeds (the store's file order decides the seeds' order)
        return {t: sorted(v) for t, v in cell.per_task.items()}, {t: sorted(v) for t, v in cell.raw.items()}

    for key, cell in new[0].cells.items():
        assert values(cell) == values(old[0].cells[key]), key
        assert cell.headline.mean == pytest.approx(old[0].cells[key].headline.mean), key


def test_findings_on_the_designed_stores(built):
    md = built["md"]
    rows = {}
    for line in md.splitlines():
        m = re.match(r"\| \((\S+)\) .*? \| (.*?) \| \*\*(.*?)\*\* \|", line)
        if m:
            rows[(m.group(1), m.group(2))] = m.group(3)
    dec, glue = "tinyllama — decoder, float32", "tinybert — GLUE probe"
    assert rows[("i", "tinyllama")] == SUPPORTED
    for claim in ("ii", "iii", "iv", "v", "vi-a", "vii"):
        assert rows[(claim, dec)] == SUPPORTED, claim
    # the best k differs by 0.01 between neighbouring k by design: 200 documents do not decide it
    assert rows[("vi-b", dec)] == INCONCLUSIVE
    # with what deciding it would cost at the store's measured rate (the fixture's passes: 2 s each)
    assert re.search(r"\| \(vi-b\) .*? \| tinyllama — decoder, float32 \| .*? \| [\d,]+ \(~[\d.,]+ CPU-h more\) \|", md)
    # the GLUE store is built against the paper: its intervals say so
    assert rows[("iii", glue)] == CONTRADICTED and rows[("v", glue)] == CONTRADICTED
    assert rows[("vi-b", glue)] == NO_DATA  # only k=3 and parallel on two usable rows
    # claim (i) has its interval over the similarity text's documents, and is one of the family
    assert re.search(r"\| \(i\) .*? \| tinyllama \| \*\*supported\*\* \| \+0\.60 \[\+0\.5\d, \+0\.6\d\] \| "
                     r"±0\.05 \(cosine\) \| 12 \|", md)
    assert "Bonferroni-adjusted over the 13 claims" in md
    assert "not judged: gsm8k: full 0.010 vs chance 0.000" in md


def test_filters_and_stale_figures(built, tmp_path):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(built["out"], out)  # a report of both tracks, then regenerated for one
    assert any("decoder" in p.name for p in (out / "report_figures").glob("*.png"))
    again = build_report(built["results"], out, track="glue", models=["tinybert"], tasks=["rte", "sst2"])
    assert [g.title for g in again.groups] == ["tinybert — GLUE probe"]
    assert again.groups[0].tasks == ["sst2", "rte"]
    left = {p.stem for p in (out / "report_figures").glob("*.png")}
    assert left == {f.name for f in again.figures} and not any("decoder" in n for n in left)


@pytest.mark.parametrize("argv, needle", [
    (["--results", "{tmp}/nope"], "does not exist"),
    (["--results", "{results}", "--model", "no-such-model", "--similarity", "{tmp}"], "nothing to report"),
    (["--results", "{results}", "--similarity", "{tmp}/bad"], "not valid JSON"),
    (["--results", "{results}", "--tasks", "rte,nosuchtask"], "unknown task(s) nosuchtask"),
    (["--results", "{results}", "--similarity", "{tmp}/mismatched"], "'per_document' does not fit its matrix"),
    (["--results", "{results}", "--similarity", "{tmp}/other_run"], "do not give back its matrix"),
])
def test_user_errors_are_one_line_exit_2(built, tmp_path, capsys, argv, needle):
    import json

    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "similarity_x.json").write_text("{broken")
    for name, edit in (("mismatched", lambda d: d["per_document"]["sums"][0].pop()),
                       ("other_run", lambda d: d["per_document"].update(tokens=[20] * len(d["per_document"]["tokens"])))):
        path = write_similarity(tmp_path / name)
        data = json.loads(path.read_text())
        edit(data)
        path.write_text(json.dumps(data))
    argv = [a.format(tmp=tmp_path, results=built["results"]) for a in argv]
    rc = main(["report", "--out", str(tmp_path / "o"), *argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and needle in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o" / "report.html").exists()


def test_layer_count_without_a_full_record():
    from painters.report.data import layer_count

    # skip runs 2N+1 layers and tells nothing about T; reverse runs every layer once
    assert layer_count([{"variant": "skip", "executions": 21}]) is None
    assert layer_count([{"variant": "skip", "executions": 21}, {"variant": "reverse", "executions": 30}]) == 30


def test_a_malformed_similarity_matrix_is_not_drawn():
    from painters.report.similarity_claim import Similarity
    from painters.report.figures import NotDrawn, draw_similarity

    with pytest.raises(NotDrawn, match="not square"):
        draw_similarity(Similarity("m", "similarity_m.json", [[1.0, 0.5], [0.5]], [], "0-1", 3))


def test_glue_skip_one_plans_make_fig2(tmp_path):
    """The GLUE sweep runs Fig. 2's plans as custom specs (``plans: [skip_one:i=0, ...]``)."""
    from painters.report.figures import draw_per_layer

    write_glue_store(tmp_path, modes=("probe",), seeds=(0,), variants=(), tasks=("rte", "sst2"),
                     plans=[f"skip_one:i={i}" for i in range(6)] + ["0-2,4-5"])
    (g,) = load_groups(tmp_path)
    cells = sorted((c for c in g.cells.values() if c.variant == "skip_one"), key=lambda c: c.i)
    assert [c.i for c in cells] == list(range(6))
    assert cells[0].headline.mean < cells[3].headline.mean  # designed: dropping layer 0 hurts most
    # "0-2,4-5" is skip_one:i=3's plan: computed once, each label has its own record (and row)
    custom = g.cell("custom:0-2,4,5")  # the plan text
    assert custom is not None and custom.per_task == g.cell("skip_one", i=3).per_task
    assert draw_per_layer(g).png[:4] == b"\x89PNG"


def test_glue_rows_with_extra_seeds_on_some_tasks(tmp_path):
    """A sweep that added seeds on some tasks only (minilm_cpu_seeds.yaml): each cell averages
    what it has, the seeds column says "1–2", and the GLUE average claims no spread it lacks."""
    from painters.report.html import group_table

    write_glue_store(tmp_path, modes=("finetune",), seeds=(0,), variants=("skip",), tasks=("rte", "sst2"))
    write_glue_store(tmp_path, modes=("finetune",), seeds=(1,), variants=("skip",), tasks=("sst2",))
    (g,) = load_groups(tmp_path)
    full = g.full()
    assert [len(full.raw[t]) for t in ("rte", "sst2")] == [1, 2]
    assert full.headline.seeds == 1 and full.headline.std is None
    table = group_table(g)
    row = next(r for r in table.rows if r[0] == "full")
    assert row[4] == "1–2"
    assert "±" in row[table.header.index("sst2")] and "±" not in row[table.header.index("rte")]


def test_glue_chance_is_the_majority_label_when_the_rows_are_here(tmp_path, monkeypatch):
    """A fine-tune that learned nothing answers one class; on an unbalanced split that beats
    uniform guessing, so the report's chance is the majority label's score on the very rows the
    records were scored on (found by the data file's hash in the record key), else guessing."""
    import json

    from glue_eval.data import _file_sha
    from painters.report.data import glue_majority

    data = tmp_path / "data" / "rte"
    data.mkdir(parents=True)
    rows = [{"sentence1": f"p{i}", "sentence2": f"h{i}", "label": 0 if i < 8 else 1, "idx": i} for i in range(10)]
    (data / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setenv("PAINTERS_DATA", str(tmp_path / "data"))
    glue_majority.cache_clear()
    sha = {"rte": {"train": "sha", "validation": _file_sha(str(data / "validation.jsonl"))}}
    write_glue_store(tmp_path / "res", modes=("probe",), seeds=(0,), variants=("skip",), tasks=("rte", "sst2"), data=sha)
    (g,) = load_groups(tmp_path / "res")
    assert g.chance["rte"] == pytest.approx(80.0)  # 8 of 10 rows are label 0: a constant 0 scores 80
    assert "rte" in g.flagged and "chance 80.0" in g.flagged["rte"]  # the fixture's full model: 67
    assert g.chance["sst2"] == pytest.approx(50.0) and "sst2" not in g.flagged  # no file here: guessing
    (data / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:9]))  # other rows now
    glue_majority.cache_clear()
    (g,) = load_groups(tmp_path / "res")
    assert g.chance["rte"] == pytest.approx(50.0) and "rte" not in g.flagged
    glue_majority.cache_clear()


def test_the_figure_note_says_why_a_benchmark_is_left_out():
    """A perplexity task has no chance level; saying it is "at chance" would misinform."""
    from types import SimpleNamespace

    from painters.report.figures import _flag_note

    g = SimpleNamespace(track="decoder", flagged={"wikitext2_lines": "word_perplexity: lower is better, no chance level",
                                                  "winogrande": "full 0.52 vs chance 0.50, margin 0.02 ≤ 3×SE (0.04)"},
                        records=[{"task": "wikitext2_lines", "higher_is_better": False}, {"task": "winogrande"}])
    note = _flag_note(g)
    assert "wikitext2_lines (no chance level)" in note and "winogrande (full model at chance)" in note
