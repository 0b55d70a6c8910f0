"""Data that would come from the hub fails at once when the hub cannot be reached: a GLUE task
without its local file, and the decoder track's ``--data-dir hub`` (before: 25-49 s of retries)."""

import socket
import time

import pytest

from decoder_eval import data as D
from glue_eval import tasks as T
from glue_painters.errors import UserError
from glue_painters.models import hub


@pytest.fixture
def no_offline_vars(monkeypatch):
    for var in hub.OFFLINE_VARS:
        monkeypatch.delenv(var, raising=False)
    hub._probe.cache_clear()
    yield monkeypatch
    hub._probe.cache_clear()


@pytest.fixture
def unreachable(no_offline_vars):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    no_offline_vars.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    return port


def test_missing_glue_file_fails_at_once_when_the_hub_is_unreachable(unreachable, tmp_path):
    t0 = time.perf_counter()
    with pytest.raises(UserError, match=rf"GLUE qqp train: file .*qqp/train.jsonl is missing and the hub cannot be "
                                        rf"reached \(no connection to 127.0.0.1:{unreachable}: .*\); put the HF glue rows"):
        T.load_rows("qqp", "train", tmp_path)
    assert time.perf_counter() - t0 < 3


def test_glue_run_naming_a_missing_task_is_quick_without_offline_variables(no_offline_vars, tmp_path, capsys):
    """The issue's command, in this environment (no network here)."""
    from painters.cli import main

    config = tmp_path / "qqp.yaml"
    config.write_text("model: minilm\nvariants: [full]\ntasks: [qqp]\nmodes: [probe]\nseeds: [0]\nlimit: 8\n")
    t0 = time.perf_counter()
    assert main(["glue", "run", str(config), "--data-dir", str(tmp_path), "--results", str(tmp_path / "res"),
                 "--no-wandb", "--no-progress"]) == 2
    assert time.perf_counter() - t0 < 5
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "qqp/train.jsonl is missing" in err[0]
    assert not (tmp_path / "res").exists()


def test_decoder_hub_data_fails_at_once_when_the_hub_is_unreachable(unreachable):
    split = D.Split("arc_easy/test.jsonl", "allenai/ai2_arc", "ARC-Easy", "test")
    t0 = time.perf_counter()
    with pytest.raises(D.DataError, match=r"could not load allenai/ai2_arc/ARC-Easy/test from the hub: it cannot be "
                                          r"reached .*set HF_DATASETS_OFFLINE=1"):
        D.load_split(split, D.HUB)
    assert time.perf_counter() - t0 < 3
