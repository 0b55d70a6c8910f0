"""``painters report --wandb`` in offline mode: the run folders are written and hold the tables,
the figures, and per-plan runs whose config uses the sweep's field names.

Why check the files W&B writes rather than mocks: offline mode is the default the project
promises (``wandb sync`` later), so the folders themselves are the product. A tiny store (one GLUE
mode, one seed, two variants) keeps it to a handful of runs.
"""

from __future__ import annotations

import json

import pytest

from test_report_fixtures import write_glue_store

from painters.cli import main
from painters.report.data import load_groups
from painters.report.wandb_log import plan_runs

FIELDS = {"variant", "N", "k", "seed", "task", "mode", "plan", "model"}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("wb") / "results"
    write_glue_store(root, modes=("probe",), seeds=(0,), variants=("skip",), tasks=("rte", "sst2"))
    return root


def test_plan_runs_carry_the_sweep_config_fields(store):
    (g,) = load_groups(store)
    runs = plan_runs(g)
    assert len(runs) == 4  # full + skip at N = 0, 1, 2
    for r in runs:
        assert FIELDS <= set(r["config"])
        assert r["config"]["mode"] == "probe" and r["config"]["model"] == "tinybert"
    skip0 = next(r for r in runs if r["config"]["variant"] == "skip" and r["config"]["N"] == 0)
    assert skip0["config"]["plan"] == "0"  # N=0 keeps layer 0 only (variants.py convention)
    assert skip0["config"]["N"] == 0 and skip0["config"]["seed"] == 0
    assert skip0["summary"]["score/rte"] < next(r for r in runs if r["config"]["variant"] == "full")["summary"]["score/rte"]
    assert {"headline", "relative"} <= set(skip0["summary"])


def test_offline_runs_hold_figures_and_tables(store, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    wdir = tmp_path / "wandb"
    rc = main(["report", "--results", str(store), "--out", str(tmp_path / "out"), "--similarity", str(tmp_path),
               "--wandb", "--wandb-dir", str(wdir)])
    assert rc == 0
    assert "wandb sync" in capsys.readouterr().out
    runs = sorted((wdir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 + 4  # the report run and one per plan
    for r in runs:
        assert list(r.glob("run-*.wandb")), r
    tables = [p for r in runs for p in r.glob("files/media/table/**/*.table.json")]
    assert len(tables) == 2 and any("findings" in str(p) for p in tables)
    assert any("glue_tinybert_probe" in str(p) for p in tables)
    group_table = json.loads(next(p for p in tables if "findings" not in str(p)).read_text())
    assert group_table["columns"][:5] == ["variant", "N", "k", "i", "seeds"]
    assert {row[0] for row in group_table["data"]} == {"full", "skip"}
    images = [p for r in runs for p in r.glob("files/media/images/**/*.png")]
    assert len(images) == 1  # skip over N; Figs. 10, 11 need more variants, Fig. 3 a similarity report


def test_comparison_report_spec_offline_and_its_panels(store, tmp_path, monkeypatch, capsys):
    """Offline, the report's spec is written (W&B's reports API needs the server); the spec builds
    the wandb-workspaces report with one section per table and a panel per figure and task."""
    from painters.report import wandb_report as W

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "out"
    assert main(["report", "--results", str(store), "--out", str(out), "--similarity", str(tmp_path),
                 "--wandb", "--wandb-dir", str(tmp_path / "wandb"), "--wandb-summary-only"]) == 0
    text = capsys.readouterr().out
    spec_path = out / W.SPEC_NAME
    assert f"--wandb-publish {spec_path}" in text
    spec = W.load_spec(spec_path)
    (section,) = spec["sections"]
    assert section["filters"] == "Config('track') == 'glue' and Config('model') == 'tinybert' and Config('mode') == 'probe'"
    assert [p["title"] for p in section["panels"]][:3] == [
        "normalized median vs N, by variant (Figs. 4-9, 11)", "sst2 vs N", "rte vs N"]
    report = W.build_report(dict(spec, entity="someone"))
    grid = [b for b in report.blocks if type(b).__name__ == "PanelGrid"][0]
    kinds = [type(p).__name__ for p in grid.panels]
    assert kinds == ["ScatterPlot", "ScatterPlot", "ScatterPlot", "ParallelCoordinatesPlot", "RunComparer"]
    assert grid.runsets[0].groupby == ["variant"]
    assert main(["report", "--wandb-publish", str(spec_path)]) == 2
    assert "W&B is offline" in capsys.readouterr().err
