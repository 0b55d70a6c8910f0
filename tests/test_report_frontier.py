"""The accuracy-vs-latency plot: decoder records (designed store) joined with a latency JSON shaped
like benchmarks/latency.py's, one point per plan, the Pareto-optimal plans known in advance."""

from __future__ import annotations

import json

import pytest

from test_report_fixtures import DEC_T, write_decoder_store

from glue_painters import variants
from painters.cli import main
from painters.report.data import load_groups
from painters.report.frontier import Point, frontier, load_latencies, mark_pareto, pairs

# plan -> [(parallel mode, decode ms/token)]: skip fastest, parallel fastest batched, looped slower than
# full (and worse than full: dominated)
TIMES = {
    variants.full(DEC_T).text: [("loop", 10.0)],
    variants.skip(DEC_T, 2).text: [("loop", 5.0)],
    variants.parallel(DEC_T, 2).text: [("loop", 9.0), ("batched", 7.0)],
    variants.looped_parallel(DEC_T, 2, 3).text: [("loop", 12.0), ("batched", 11.0)],
}


def write_latency(folder, model="tinyllama", device_tag="cpu"):
    rows = [{"spec": plan, "plan": plan, "parallel": mode, "prefill": [],
             "decode": [{"batch": 1, "context": 128, "steps": 4, "ms_per_token": ms}, {"batch": 8, "context": 128,
                                                                                       "steps": 4, "ms_per_token": 99.0}]}
            for plan, modes in TIMES.items() for mode, ms in modes]
    path = folder / f"latency_{model}_{device_tag}.json"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"model": model, "device": "cpu", "device_tag": device_tag, "device_name": "x86",
                                "dtype": "float32", "rows": rows}))
    return path


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("frontier")
    write_decoder_store(root / "results", tasks=("lambada_openai", "arc_easy"))
    return root


def test_points_use_the_fastest_mode_and_mark_the_pareto_set(store, tmp_path):
    (g,) = load_groups(store / "results", "decoder")
    (lat,) = load_latencies(None, [write_latency(tmp_path)])
    f = frontier(g, lat)
    by_label = {p.label: p for p in f.points}
    # n=4 leaves a one-layer middle: reverse, random, parallel and middle_repeat of it run the full
    # plan, so they share the full model's point
    assert set(by_label) == {"full (+4 same plan)", "skip:n=2", "parallel:n=2", "looped_parallel:n=2,k=3"}
    by_label["full"] = by_label.pop("full (+4 same plan)")
    assert by_label["full"].plans == [variants.full(DEC_T).text] and by_label["full"].ms == 10.0
    assert by_label["parallel:n=2"].ms == 7.0 and by_label["parallel:n=2"].parallel == "batched"
    assert by_label["full"].score == pytest.approx(1.0)
    for label, p in by_label.items():  # y is the group's own normalized median
        cell = next(c for c in g.cells.values() if c.label == label)
        assert p.score == cell.headline.mean
    assert by_label["skip:n=2"].score < by_label["parallel:n=2"].score < by_label["full"].score
    assert [p.label for p in f.pareto] == ["skip:n=2", "parallel:n=2", "full (+4 same plan)"]
    assert not by_label["looped_parallel:n=2,k=3"].pareto


def test_pareto_rule():
    pts = [Point("a", [], 1.0, 0.5, "loop"), Point("b", [], 2.0, 0.5, "loop"), Point("c", [], 2.0, 0.9, "loop"),
           Point("d", [], 3.0, 0.9, "loop")]
    mark_pareto(pts)
    assert [p.label for p in pts if p.pareto] == ["a", "c"]


def test_report_draws_the_frontier_from_the_output_folder(store, tmp_path):
    out = tmp_path / "out"
    write_latency(out)
    assert main(["report", "--results", str(store / "results"), "--out", str(out), "--track", "decoder"]) == 0
    pngs = list((out / "report_figures").glob("frontier_*.png"))
    assert len(pngs) == 1 and pngs[0].read_bytes()[:4] == b"\x89PNG"
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Accuracy vs. latency" in html and "Pareto-optimal: skip:n=2 (5.00 ms" in html
    assert "frontier_" in (out / "report.md").read_text(encoding="utf-8")


def test_explicit_file_of_another_model_joins_every_group_and_missing_is_listed(store, tmp_path):
    (g,) = load_groups(store / "results", "decoder")
    other = write_latency(tmp_path, model="smollm2-135m")
    assert [(a.model, b.model) for a, b in pairs([g], load_latencies(None, [other]))] == [("tinyllama", "smollm2-135m")]
    assert pairs([g], load_latencies(tmp_path)) == []  # found in a folder, another model's file is not joined
    out = tmp_path / "empty"
    assert main(["report", "--results", str(store / "results"), "--out", str(out), "--track", "decoder"]) == 0
    assert "no latency_tinyllama_*.json" in (out / "report.md").read_text(encoding="utf-8")
    out2 = tmp_path / "explicit"
    assert main(["report", "--results", str(store / "results"), "--out", str(out2), "--track", "decoder",
                 "--latency", str(other)]) == 0
    assert list((out2 / "report_figures").glob("frontier_*smollm2-135m_cpu.png"))
