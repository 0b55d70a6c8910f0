"""``painters results export``: every record as one row, both tracks' records in one table."""

import json

import pandas as pd
import pytest

from decoder_eval import sweep as S
from painters.cli import main
from painters.results_export import records_frame
from test_decoder_fixtures import byte_tokenizer, data_dir, one_thread, tiny_lm  # noqa: F401


@pytest.fixture
def store(tmp_path, data_dir):
    cfg = S.parse_config({"model": "tiny", "variants": ["full", "skip", "looped_parallel"], "n": [1],
                          "tasks": ["arc_easy", "lambada_openai"], "limit": 2})
    out = S.run_sweep(cfg, results_dir=tmp_path / "r", data_dir=data_dir, model=tiny_lm("llama"),
                      tokenizer=byte_tokenizer(), progress=False)
    return tmp_path / "r", out


def test_frame_has_one_row_per_record_with_spec_plan_and_metric_columns(store):
    root, out = store
    frame = records_frame(root)
    assert len(frame) == len(out.records) == 6
    assert list(frame.columns[:5]) == ["track", "model", "variant", "spec", "plan"]
    row = frame[(frame.spec == "looped_parallel:n=1,k=3") & (frame.task == "lambada_openai")].iloc[0]
    rec = next(r for r in out.records if r["variant"] == "looped_parallel" and r["task"] == "lambada_openai")
    assert row.plan == rec["plan"]["text"] and row.acc == rec["metrics"]["acc"]
    assert row.perplexity == pytest.approx(rec["metrics"]["perplexity"]) and row.acc_stderr == rec["stderr"]["acc"]
    assert set(frame.spec) == {"full", "skip:n=1", "looped_parallel:n=1,k=3"}


@pytest.mark.parametrize("suffix", ["csv", "jsonl", "parquet"])
def test_cli_export_writes_each_format(store, tmp_path, suffix, capsys):
    root, out = store
    path = tmp_path / f"t.{suffix}"
    assert main(["results", "export", "--results", str(root), "--out", str(path)]) == 0
    frame = {"csv": pd.read_csv, "parquet": pd.read_parquet,
             "jsonl": lambda p: pd.DataFrame([json.loads(x) for x in open(p)])}[suffix](path)
    assert len(frame) == 6 and set(frame.task) == {"arc_easy", "lambada_openai"}
    assert f"wrote 6 records to {path}" in capsys.readouterr().out


@pytest.mark.parametrize("args,needle", [
    (["--out", "{tmp}/t.xlsx"], "the suffix picks the format"),
    (["--out", "{tmp}/t.csv", "--results", "{tmp}/nope"], "results folder {tmp}/nope does not exist"),
    (["--out", "{tmp}"], "is a folder"),
])
def test_cli_export_bad_input_is_one_line(tmp_path, args, needle, capsys):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert main(["results", "export", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle.replace("{tmp}", str(tmp_path)) in err[0]
    assert not list(tmp_path.glob("t.*"))
