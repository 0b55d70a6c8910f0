"""``painters report --wandb`` in offline mode: one report run (figures, tables, findings) beside the
sweeps' runs, W&B's environment honoured, no copies of the sweeps' per-record runs, and a
comparison-report spec whose sections are titled apart and select each table's own runs.

Why check the files W&B writes rather than mocks: offline mode is the default the project
promises (``wandb sync`` later), so the folders themselves are the product.
"""

from __future__ import annotations

import json

import pytest

from test_recipes import LONG, SHORT, put_glue
from test_report_fixtures import write_glue_store

from glue_painters.results import ResultsStore
from painters.cli import main


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("wb") / "results"
    write_glue_store(root, modes=("probe",), seeds=(0,), variants=("skip",), tasks=("rte", "sst2"))
    return root


@pytest.fixture
def offline(monkeypatch):
    for var in ("WANDB_DIR", "WANDB_PROJECT", "WANDB_ENTITY", "WANDB_RUN_GROUP", "WANDB_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")


def _copy(store, tmp_path):
    import shutil

    shutil.copytree(store, tmp_path / "results")
    return tmp_path / "results"


def test_one_report_run_beside_the_sweeps_runs_and_no_copies(store, tmp_path, offline, capsys):
    """The report once wrote results/wandb/wandb/ (sweeps: results/wandb/) and logged one more run
    per plan and seed. Now: one run, in the sweeps' folder, counting the sweeps' runs it shows."""
    results = _copy(store, tmp_path)
    keys = [r["key_hash"] for r in ResultsStore(results).records("glue")]
    for key in keys[:3]:  # three records whose sweep logged its run, named as glue_painters.tracking's are
        (results / "wandb" / f"offline-run-20261207_000000-{key}").mkdir(parents=True)
    assert main(["report", "--results", str(results), "--out", str(tmp_path / "out"), "--similarity", str(tmp_path),
                 "--wandb"]) == 0
    out = capsys.readouterr().out
    runs = [p for p in (results / "wandb").glob("offline-run-*") if list(p.glob("run-*.wandb"))]
    assert len(runs) == 1, runs  # the report run only, in the sweeps' folder
    assert len(list((results / "wandb").glob("offline-run-*"))) == 4 and not (results / "wandb" / "wandb").exists()
    assert f"3 of {len(keys)} records have theirs there" in out and "wandb sync" in out
    tables = list(runs[0].glob("files/media/table/**/*.table.json"))
    assert len(tables) == 2 and any("findings" in str(p) for p in tables)
    group_table = json.loads(next(p for p in tables if "findings" not in str(p)).read_text())
    assert group_table["columns"][:5] == ["variant", "N", "k", "i", "seeds"]
    assert {row[0] for row in group_table["data"]} == {"full", "skip"}
    assert len(list(runs[0].glob("files/media/images/**/*.png"))) == 1


def test_wandb_environment_is_honoured(store, tmp_path, offline, monkeypatch, capsys):
    from painters.report import wandb_report as W

    monkeypatch.setenv("WANDB_PROJECT", "my-project")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wd"))
    monkeypatch.setenv("WANDB_ENTITY", "my-team")
    out = tmp_path / "out"
    assert main(["report", "--results", str(store), "--out", str(out), "--similarity", str(tmp_path), "--wandb"]) == 0
    capsys.readouterr()
    (run,) = (tmp_path / "wd" / "wandb").glob("offline-run-*")
    assert b"my-project" in next(run.glob("run-*.wandb")).read_bytes()
    assert not (store / "wandb").exists()
    spec = W.load_spec(out / W.SPEC_NAME)
    assert spec["project"] == "my-project" and spec["entity"] == "my-team"


def test_comparison_report_sections_are_titled_apart_and_select_their_runs(tmp_path, offline, capsys):
    """Three tables of one model and mode once made three sections titled alike; each is titled
    by what sets it apart and filters the sweeps' runs on those settings."""
    from painters.report import wandb_report as W

    results = tmp_path / "results"
    s = ResultsStore(results)
    for seed in (0, 1):
        for label in ("full", "skip:n=1"):
            put_glue(s, label, seed, SHORT, 50.0 + seed)
            put_glue(s, label, seed, LONG, 55.0 + seed)
            put_glue(s, label, seed, dict(LONG, learning_rate=5e-5), 56.0 + seed)
    out = tmp_path / "out"
    assert main(["report", "--results", str(results), "--out", str(out), "--similarity", str(tmp_path),
                 "--wandb"]) == 0
    text = capsys.readouterr().out
    spec_path = out / W.SPEC_NAME
    assert f"--wandb-publish {spec_path}" in text
    spec = W.load_spec(spec_path)
    titles = [s["title"] for s in spec["sections"]]
    assert len(titles) == len(set(titles)) == 3
    assert "tinybert — GLUE finetune (batch 16, epochs 1, lr 2e-05, max length 64)" in titles
    short = next(s for s in spec["sections"] if "epochs 1" in s["title"])
    assert short["filters"].startswith("Config('track') == 'glue' and Config('model') == 'tinybert' and "
                                       "Config('mode') == 'finetune'")
    assert "Config('hp/epochs') == 1.0" in short["filters"] and "Config('hp/batch_size') == 16" in short["filters"]
    assert "Config('limit_train') == 64" in short["filters"]
    (grid,) = short["grids"]
    assert grid["filters"].endswith("Config('task') == 'rte'")
    assert [p["type"] for p in grid["panels"]] == ["scatter", "parallel", "comparer"]
    assert grid["panels"][0]["y"] == "summary:score"
    report = W.build_report(dict(spec, entity="someone"))
    h2 = [b.text for b in report.blocks if type(b).__name__ == "H2"]
    assert h2 == titles
    grids = [b for b in report.blocks if type(b).__name__ == "PanelGrid"]
    assert len(grids) == 3 and [type(p).__name__ for p in grids[0].panels] == [
        "ScatterPlot", "ParallelCoordinatesPlot", "RunComparer"]
    assert grids[0].runsets[0].groupby == ["variant"]
    assert main(["report", "--wandb-publish", str(spec_path)]) == 2
    assert "W&B is offline" in capsys.readouterr().err


def test_the_old_summary_only_flag_says_what_replaced_it(store, tmp_path, capsys):
    assert main(["report", "--results", str(store), "--out", str(tmp_path / "o"), "--wandb",
                 "--wandb-summary-only"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--wandb now logs only the report run" in err[0]
    assert not (tmp_path / "o").exists()


def test_a_healed_table_gets_no_panels_of_unhealed_runs():
    from types import SimpleNamespace

    from painters.report.wandb_report import _section

    g = SimpleNamespace(track="decoder", model="smollm2", mode=None, tasks=["arc_easy"], primary={"arc_easy": "acc"},
                        recipe={"dtype": "float32", "heal": {"steps": 10}}, title="smollm2 — decoder, float32, LoRA-healed",
                        identity="")
    section = _section(g)
    assert section["grids"] == [] and "no panels" in section["note"]
    assert _section(SimpleNamespace(**dict(vars(g), recipe={"dtype": "float32"})))["grids"]
