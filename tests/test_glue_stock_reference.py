"""Our GLUE fine-tune against the stock-Trainer reference (``benchmarks/glue_stock_trainer.py``,
which uses no glue_painters code): same recipe, same seed, the full model -> the same predictions.

Why: the full-model row of every GLUE table goes through our plan machinery, data preparation,
metric module and record store; the reference goes through none of them. On a tiny random BERT
the two must agree exactly (same head initialisation, same data order, same updates), so any
difference our code adds shows up here, long before it hides in a ±1.5-point real-weights check.
"""

import importlib.util
import json
from pathlib import Path

import pytest

from painters.commands import finetune as ft

from test_glue_cli import offline, one_thread, tiny_dir, toy_rte  # noqa: F401 - fixtures

ROOT = Path(__file__).resolve().parents[1]


def _stock():
    spec = importlib.util.spec_from_file_location("glue_stock_trainer", ROOT / "benchmarks" / "glue_stock_trainer.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


SETTINGS = ["--epochs", "2", "--batch-size", "4", "--max-length", "32", "--learning-rate", "5e-4"]


def test_the_full_model_fine_tune_equals_a_stock_trainer_run(tmp_path, tiny_dir):
    data = toy_rte(tmp_path / "data", n_train=24, n_eval=12)
    stock_json = tmp_path / "stock.json"
    assert _stock().main(["--tasks", "rte", "--model", str(tiny_dir), "--data-dir", str(data), "--out",
                          str(stock_json), *SETTINGS]) == 0
    stock = json.loads(stock_json.read_text())["runs"]["rte:seed=0"]
    out, results = tmp_path / "ours", tmp_path / "results"
    assert ft.main(["--model", str(tiny_dir), "--task", "rte", "--output-dir", str(out), "--data-dir", str(data),
                    "--no-wandb", "--seed", "0", "--results", str(results), *SETTINGS]) == 0
    ours = json.loads((out / "metrics.json").read_text())
    assert stock["steps"] == 12 and stock["eval_rows"] == 12
    assert ours["train_loss"] == pytest.approx(stock["train_loss"], rel=1e-5)
    assert ours["metrics"]["accuracy"] == pytest.approx(stock["metrics"]["accuracy"], abs=1e-9)
    assert ours["predictions"]["validation"] == stock["predictions"]
    # the comparison report: the record of ours found by recipe and seed, a zero difference, within
    report = tmp_path / "cmp.md"
    assert _stock().main(["--out", str(stock_json), "--compare", str(results), "--report", str(report)]) == 0
    row = next(line for line in report.read_text().splitlines() if line.startswith("| rte | accuracy"))
    assert "+0.00 [+0.00, +0.00] | yes" in row
    assert "Every metric is within ±1.5 points" in report.read_text()
    # a reference kept without predictions (older runs of the script): the difference, no interval
    bare = json.loads(stock_json.read_text())
    del bare["runs"]["rte:seed=0"]["predictions"]
    (tmp_path / "bare.json").write_text(json.dumps(bare))
    assert _stock().main(["--out", str(tmp_path / "bare.json"), "--compare", str(results), "--report", str(report)]) == 0
    assert "+0.00 (no interval: the reference kept no predictions) | yes" in report.read_text()
    # another recipe's record is not ours to compare: no row, and the check fails
    other = json.loads(stock_json.read_text())
    other["recipe"]["learning_rate"] = 1e-3
    stock_json.write_text(json.dumps(other))
    assert _stock().main(["--out", str(stock_json), "--compare", str(results), "--report", str(report)]) == 1
    assert "no record of ours" in report.read_text()


def test_the_reference_resumes_by_task_and_refuses_bad_input(tmp_path, tiny_dir, capsys):
    stock = _stock()
    data = toy_rte(tmp_path / "data", n_train=8, n_eval=4)
    out = tmp_path / "stock.json"
    argv = ["--tasks", "rte", "--model", str(tiny_dir), "--data-dir", str(data), "--out", str(out), *SETTINGS]
    assert stock.main(argv) == 0
    first = out.read_text()
    assert stock.main(argv) == 0 and out.read_text() == first  # the finished task is not run again
    capsys.readouterr()
    assert stock.main(["--tasks", "nope", "--out", str(tmp_path / "x.json")]) == 2
    assert stock.main(["--tasks", "cola", "--data-dir", str(data), "--out", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "unknown task(s) nope" in err[0] and "no cola/train.jsonl" in err[1]
    assert not (tmp_path / "x.json").exists()
