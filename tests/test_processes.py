"""Several processes on a CPU machine (issue 24, item 5): a GLUE fine-tune under torchrun or
``accelerate launch --multi_gpu`` is data-parallel (a gloo group, each process its share of the
rows), writes one record and one W&B run, prints once and counts the steps that ran; a launch
that quietly made one process says so. Real processes, tiny models (``test_multiprocess``'s way)."""

from __future__ import annotations

import glob
import json
import sys

import pytest

from glue_painters.processes import Processes, launch_problem, world_size
from test_glue_cli import offline, one_thread, records, tiny_dir, toy_rte  # noqa: F401 - fixtures
from test_multiprocess import ACCELERATE, REPO, TORCHRUN, _launch


def test_a_launch_that_made_one_process_of_several_says_so(monkeypatch):
    for var in ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    acc = [sys.executable, "/x/bin/accelerate", "launch"]
    line = launch_problem(acc + ["--num_processes", "2", "-m", "painters.cli", "glue", "run"])
    assert "started one process" in line and "--multi_gpu" in line and "torchrun --nproc_per_node 2" in line
    assert launch_problem(acc + ["--num_processes=4", "x.py"]).startswith("accelerate launch --num_processes 4")
    for fine in (acc + ["--multi_gpu", "--num_processes", "2", "x.py"], acc + ["--num_processes", "1", "x.py"],
                 ["bash"], acc + ["x.py"]):
        assert launch_problem(fine) is None, fine
    monkeypatch.setenv("WORLD_SIZE", "2")  # the processes are real: nothing to say
    assert world_size() == 2 and launch_problem(acc + ["--num_processes", "2", "x.py"]) is None
    alone = Processes()
    assert alone.is_main_process and alone.num_processes == 1
    with alone.main_process_first():
        alone.wait_for_everyone()


def test_accelerate_launch_without_multi_gpu_warns_in_one_line():
    done = _launch([sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--num_machines", "1",
                    "--mixed_precision", "no", "--dynamo_backend", "no"], ["models"])
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [ln for ln in done.stderr.splitlines() if "started one process" in ln]
    assert len(lines) == 1 and lines[0].startswith("painters models: warning: accelerate launch --num_processes 2")


def _ft(tiny_dir, data, out, *more):
    return ["--model", str(tiny_dir), "--task", "rte", "--data-dir", str(data), "--sample-train", "16", "--epochs", "1",
            "--max-length", "32", "--quiet", "--output-dir", str(out), *more]


def test_gradient_accumulation_averages_as_a_bigger_batch_does(tmp_path, tiny_dir):
    """Two accumulated batches of 8 are one step of 16: the same mean loss (up to dropout, drawn
    per forward pass). Trainer took
    the classifier's mean loss for one normalised by ``num_items_in_batch`` and summed the two
    (``train_loss`` 1.385 beside 0.693), the same mistake that read 1.376 under data parallelism."""
    from painters.commands import finetune as ft

    data = toy_rte(tmp_path / "data")
    assert ft.main(_ft(tiny_dir, data, tmp_path / "big", "--batch-size", "16")) == 0
    assert ft.main(_ft(tiny_dir, data, tmp_path / "acc", "--batch-size", "8", "--gradient_accumulation_steps", "2")) == 0
    big, acc = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("big", "acc"))
    assert big["steps"] == acc["steps"] == 1
    assert acc["train_loss"] == pytest.approx(big["train_loss"], abs=0.01) and acc["train_loss"] < 0.8


@pytest.mark.parametrize("launcher", ["torchrun", "accelerate"])
def test_a_glue_finetune_on_2_cpu_processes_is_data_parallel(tmp_path, tiny_dir, launcher):
    from painters.commands import finetune as ft

    data = toy_rte(tmp_path / "data")
    assert ft.main(_ft(tiny_dir, data, tmp_path / "one", "--batch-size", "4", "--results", str(tmp_path / "r1"))) == 0
    (one,) = [json.loads(p.read_text()) for p in records(tmp_path / "r1")]
    start = (TORCHRUN if launcher == "torchrun" else ACCELERATE) + ["2"]
    argv = _ft(tiny_dir, data, tmp_path / "two", "--batch-size", "4", "--results", str(tmp_path / "r2"), "--wandb")
    done = _run_module(start, argv)
    assert done.returncode == 0, done.stderr[-3000:]
    (two,) = [json.loads(p.read_text()) for p in records(tmp_path / "r2")]  # one record
    assert one["steps"] == 4 and two["steps"] == 2, "each step takes a batch on each process: half the steps"
    assert two["processes"] == 2 and two["key"]["hparams"]["processes"] == 2 and "processes" not in one["key"]["hparams"]
    assert two["train_loss"] == pytest.approx(one["train_loss"], abs=0.05), "the mean loss, not summed over processes"
    assert done.stdout.count('"metrics"') == 1, "the main process alone prints"
    assert "parallel_mode != ParallelMode.DISTRIBUTED" not in done.stderr
    assert len(glob.glob(f"{tmp_path / 'r2'}/wandb/offline-run-*")) == 1, "one W&B run"


def _run_module(launcher, argv):
    import os
    import subprocess

    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", HF_DATASETS_OFFLINE="1",
               WANDB_MODE="offline", WANDB_SILENT="true",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([*launcher, "-m", "painters.commands.finetune", *argv], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=300)
