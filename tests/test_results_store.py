"""The results store survives what happens to files outside a sweep's control: a damaged record
(disk full, a copy cut short) and the temporaries of a writer killed by ``kill -9``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from decoder_eval import sweep as S
from glue_painters.results import ResultsStore, record_key
from test_decoder_fixtures import byte_tokenizer, data_dir, one_thread, tiny_lm  # noqa: F401

KEY = {"model": "m", "plan": "0-3", "task": "t"}


def test_a_damaged_record_is_named_skipped_and_replaced(tmp_path, capsys):
    store = ResultsStore(tmp_path)
    good = store.put("decoder", dict(KEY, task="a"), {"metrics": {"acc": 1.0}})
    bad = store.put("decoder", KEY, {"metrics": {"acc": 0.5}})
    bad.write_text(bad.read_text()[:25])  # cut short
    assert store.get("decoder", KEY) is None and not store.has("decoder", KEY)
    assert [r["key_hash"] for r in store.records("decoder")] == [good.stem]
    err = capsys.readouterr().err
    assert err.count(str(bad)) == 1 and "damaged record, not valid JSON" in err and len(err.splitlines()) == 1
    store.put("decoder", KEY, {"metrics": {"acc": 0.5}})
    assert store.get("decoder", KEY)["metrics"] == {"acc": 0.5}


def test_a_record_under_another_key_name_is_not_trusted(tmp_path, capsys):
    store = ResultsStore(tmp_path)
    a = store.put("decoder", KEY, {"metrics": {"acc": 0.5}})
    other = store.path("decoder", record_key(dict(KEY, task="b")))
    other.parent.mkdir(parents=True, exist_ok=True)
    other.write_text(a.read_text())  # a copy under the wrong name would answer the wrong question
    assert store.get("decoder", dict(KEY, task="b")) is None and "key_hash does not match" in capsys.readouterr().err


def test_stale_temporaries_of_dead_writers_are_removed_live_ones_kept(tmp_path):
    store = ResultsStore(tmp_path)
    store.put("decoder", KEY, {"x": 1})
    folder = store.path("decoder", record_key(KEY)).parent
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale = folder / f".abc.json.{dead_pid}.k2j3x.tmp"
    live = folder / f".abd.json.{os.getpid()}.q9w8e.tmp"
    old = folder / f".abe.json.{os.getpid()}.zz11y.tmp"
    for p in (stale, live, old):
        p.write_text("{")
    os.utime(old, (time.time() - 2 * 86400,) * 2)
    assert store.clean_stale() == 2
    assert live.exists() and not stale.exists() and not old.exists()
    assert len(list(store.records("decoder"))) == 1


def test_a_sweep_recomputes_a_damaged_record_and_cleans_leftovers(tmp_path, data_dir):
    cfg = S.parse_config({"model": "tiny", "variants": ["full", "skip"], "n": [1], "tasks": ["arc_easy"],
                          "limit": 2})
    run = dict(data_dir=data_dir, model=tiny_lm("llama"), tokenizer=byte_tokenizer(), progress=False)
    first = S.run_sweep(cfg, results_dir=tmp_path, **run)
    store = ResultsStore(tmp_path)
    victim = store.path("decoder", first.records[1]["key_hash"])
    victim.write_text("")
    leftover = victim.parent / f".{victim.name}.999999999.abcde.tmp"  # no such pid
    leftover.write_text("{")
    again = S.run_sweep(cfg, results_dir=tmp_path, **run)
    assert again.written == 1 and again.skipped == len(first.records) - 1
    assert again.records[1]["metrics"] == first.records[1]["metrics"] and not leftover.exists()


def test_a_pass_killed_between_batches_resumes_there_with_the_same_records(tmp_path, data_dir, monkeypatch):
    """Finished batches of a loglikelihood pass are kept: a kill mid-pass loses at most one batch,
    the resumed pass computes only the rest, and its records equal an uninterrupted run's."""
    from decoder_eval import loglikelihood as L

    words = "the cat sat on the mat and looked at the dog who ran".split()
    docs = [" ".join(words[(i + j) % len(words)] for j in range(45)) for i in range(3)]  # ~200 bytes: a row each
    (data_dir / "lambada_openai/test.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    cfg = S.parse_config({"model": "tiny", "variants": ["full", "skip", "parallel"], "n": [1],
                          "tasks": ["lambada_openai"], "batch_size": 1})  # 3 documents: 3 batches
    model, tok = tiny_lm("llama"), byte_tokenizer()
    run = dict(data_dir=data_dir, model=model, tokenizer=tok, progress=False)
    whole = S.run_sweep(cfg, results_dir=tmp_path / "a", **run)
    assert not list((tmp_path / "a").rglob(".progress/*"))  # removed once the records are written

    calls = []
    real_walk = L.walk

    def walk_then_die(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("killed")
        return real_walk(*args, **kwargs)

    monkeypatch.setattr(L, "walk", walk_then_die)
    with pytest.raises(KeyboardInterrupt):
        S.run_sweep(cfg, results_dir=tmp_path / "b", **run)
    kept = list((tmp_path / "b").rglob(".progress/*/*.json"))
    assert len(kept) == 2 and not list(ResultsStore(tmp_path / "b").records("decoder"))
    calls.clear()
    again = S.run_sweep(cfg, results_dir=tmp_path / "b", **run)
    n_batches = len(kept) + len(calls)
    assert n_batches == 3 and len(calls) == 1  # two finished batches were read, one computed
    assert [r["metrics"] for r in again.records] == [r["metrics"] for r in whole.records]
    assert [r["per_item"] for r in again.records] == [r["per_item"] for r in whole.records]
    assert not list((tmp_path / "b").rglob(".progress/*"))


def test_abandoned_pass_progress_is_removed_after_a_week(tmp_path):
    store = ResultsStore(tmp_path)
    old = tmp_path / "decoder" / ".progress" / "abc"
    new = tmp_path / "decoder" / ".progress" / "def"
    for folder in (old, new):
        folder.mkdir(parents=True)
        (folder / "0.json").write_text("{}")
    stale = time.time() - 8 * 86400
    os.utime(old / "0.json", (stale, stale))
    assert store.clean_stale() == 1 and not old.exists() and new.exists()
