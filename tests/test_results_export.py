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


def test_every_column_means_one_thing_on_rows_of_both_tracks(store):
    """A decoder record's ``n`` is its document count, a GLUE record's ``n`` the variant's N: the
    export names them apart (``N``, ``eval_items``), and likewise the two seeds, so a group-by
    over the whole table is right. Each fixed column is checked against what it means."""
    from glue_painters.results import ResultsStore
    from painters.results_export import COLUMNS
    from test_report_fixtures import write_glue_store

    root, out = store
    write_glue_store(root, modes=("finetune",), seeds=(3,), variants=("skip", "random"), tasks=("rte",))
    frame = records_frame(root)
    assert list(frame.columns[:len(COLUMNS)]) == list(COLUMNS)
    assert "n" not in frame.columns and "seed" not in frame.columns
    records = {r["key_hash"]: r for t in ("decoder", "glue") for r in ResultsStore(root).records(t)}
    assert {"decoder", "glue"} == set(frame.track)
    for row in frame.to_dict("records"):
        rec = records[row["key_hash"]]
        params = rec.get("params") or {}
        glue = rec["track"] == "glue"
        na = lambda v: v is None or v != v  # noqa: E731 (NaN: pandas' empty cell)
        # the variant's N, k, i: params on both tracks (a GLUE record's top-level n is its N too)
        for col, name in (("N", "n"), ("k", "k"), ("i", "i")):
            assert (na(row[col]) and params.get(name) is None) or row[col] == params[name], (col, rec["track"])
        if glue:
            assert row["N"] == rec["n"] or (na(row["N"]) and rec["n"] is None)
        # documents / evaluation rows scored: a decoder record's n, a GLUE record's non-train sizes
        assert row["eval_items"] == (rec["sizes"]["validation"] if glue else rec["n"])
        assert row["eval_items"] == (277 if glue else 2)
        assert (row["train_rows"] == 100) if glue else na(row["train_rows"])
        # the seeds: training (GLUE only) and permutation (the random variant, both tracks)
        assert (row["train_seed"] == 3) if glue else na(row["train_seed"])
        assert (na(row["permutation_seed"]) and "seed" not in params) or row["permutation_seed"] == params["seed"]
        assert row["mode"] == (rec["mode"] if glue else "eval")
        assert row["model"] == (rec["model_name"] if glue else rec["model"])
        assert row["spec"] == (rec["label"] if glue else row["spec"]) and row["task"] == rec["task"]
    decoder_skip = frame[(frame.track == "decoder") & (frame.variant == "skip")]
    assert set(decoder_skip.N) == {1} and set(decoder_skip.eval_items) == {2}
    glue_skip = frame[(frame.track == "glue") & (frame.variant == "skip")]
    assert set(glue_skip.N) == {0, 1, 2} and set(glue_skip.eval_items) == {277}
    # a group-by on N gives each track's N = 1 rows together, never a document count
    assert set(frame[frame.N == 1].variant) >= {"skip"} and set(frame[frame.N == 1].track) == {"decoder", "glue"}


def test_export_names_the_weights_of_an_alias():
    from painters.results_export import flatten

    row = flatten({"track": "decoder", "model": "smollm2", "variant": "full", "params": {}, "n": 5})
    assert row["model_identity"].startswith("HuggingFaceTB/SmolLM2-135M-Instruct, GGUF Q4_1")
    assert row["N"] is None and row["eval_items"] == 5
