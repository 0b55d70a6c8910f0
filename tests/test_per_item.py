"""Per-document scores in records (``glue_painters.per_item``): compact, in document order, and
equal to what the task's metrics were computed from, on a real tiny decoder sweep and a GLUE probe."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from decoder_eval import sweep as S
from glue_painters.per_item import column, compact, compact_value
from test_decoder_fixtures import byte_tokenizer, data_dir, one_thread, tiny_lm  # noqa: F401


def test_compact_keeps_ints_and_six_significant_digits():
    assert compact_value(1.0) == 1 and isinstance(compact_value(1.0), int) and compact_value(True) == 1
    assert compact_value(-2.718281828) == -2.71828 and compact_value(np.float32(0.1)) == 0.1
    assert compact_value(1.23456789e-9) == 1.23457e-09 and math.isnan(compact_value(float("nan")))
    assert compact([{"acc": 1.0, "ll": -3.14159265}, {"acc": 0.0, "ll": -1.0}]) == {"acc": [1, 0], "ll": [-3.14159, -1]}
    assert compact([]) == {}
    assert column({}, "acc") is None and list(column({"per_item": {"acc": [1, 0]}}, "acc")) == [1.0, 0.0]


def test_decoder_records_carry_per_document_scores(tmp_path, data_dir):
    cfg = S.parse_config({"model": "tiny-llama", "variants": ["full", "skip", "random"], "n": [1],
                          "permutation_seeds": 2, "tasks": ["arc_easy", "lambada_openai", "hellaswag"],
                          "limit": 3, "batch_size": 4})
    out = S.run_sweep(cfg, results_dir=tmp_path, data_dir=data_dir, model=tiny_lm("llama"),
                      tokenizer=byte_tokenizer(), progress=False)
    by_task: dict[str, list[dict]] = {}
    for rec in out.records:
        by_task.setdefault(rec["task"], []).append(rec)
        items = rec["per_item"]
        assert set(items) == set(rec["metrics"]) and all(len(v) == rec["n"] for v in items.values())
        for metric, values in items.items():
            if metric == "perplexity":  # per document: the loglikelihood the aggregate exponentiates
                assert math.exp(-np.mean(values)) == pytest.approx(rec["metrics"][metric], rel=1e-4)  # 6 digits of ~-20
                assert all(isinstance(v, float) and len(f"{abs(v):.15g}".replace(".", "").lstrip("0")) <= 6
                           for v in values)
            else:
                assert all(type(v) is int for v in values)  # 0/1 stored as ints
                assert np.mean(values) == pytest.approx(rec["metrics"][metric])
    # the same documents in the same order for every plan: the full model's scores are its own
    # on a re-read, and the plans' lists line up position by position
    assert {len(r["per_item"]["acc"]) for r in by_task["arc_easy"]} == {2}
    assert {len(r["per_item"]["acc"]) for r in by_task["lambada_openai"]} == {3}
    again = S.run_sweep(cfg, results_dir=tmp_path, data_dir=data_dir, model=tiny_lm("llama"),
                        tokenizer=byte_tokenizer(), progress=False)
    assert again.written == 0
    disk = [json.loads(p.read_text()) for p in sorted((tmp_path / "decoder").glob("*/*.json"))]
    assert all("per_item" in r for r in disk)


# ---- GLUE: each evaluation row's prediction and label -------------------------------------------------
def _recomputed(task, rec):
    from glue_eval.metrics import score_split

    out = {}
    for split, preds in rec["predictions"].items():
        out.update(score_split(task, split, preds, rec["labels"][split]))
    return out


@pytest.mark.parametrize("task", ["rte", "stsb"])
def test_glue_probe_records_carry_row_predictions(task):
    import torch
    from transformers import BertModel

    from glue_eval.hparams import ProbeHParams
    from glue_eval.probe import probe
    from glue_eval.records import make_record
    from glue_eval.runs import RunSpec
    from glue_painters.plans import Plan
    from test_glue_train import tiny_config, toy_dataset
    from tiny import LAYERS

    torch.manual_seed(0)
    body = BertModel(tiny_config()).eval()
    train, ev = toy_dataset(48, seed=1, regression=task == "stsb"), toy_dataset(30, seed=2, regression=task == "stsb")
    plan = Plan.parse(f"0-{LAYERS - 1}")
    out = probe(body, plan, task, train, {"validation": ev}, ProbeHParams(epochs=2, batch_size=16, learning_rate=3e-2),
                seeds=[0, 1], pooling="mean")
    for seed in (0, 1):
        spec = RunSpec.of("tiny", "full", task, "probe", seed)
        rec = json.loads(json.dumps(make_record(spec, plan, "tiny", {"validation": 30}, out[seed], {})))
        assert len(rec["predictions"]["validation"]) == len(rec["labels"]["validation"]) == 30
        assert rec["labels"]["validation"] == [float(x) if task == "stsb" else x for x in ev["labels"]]
        if task == "rte":
            assert all(type(p) is int for p in rec["predictions"]["validation"])
        assert _recomputed(task, rec) == pytest.approx(rec["metrics"], abs=1e-5)


def test_glue_finetune_returns_row_predictions(tmp_path):
    import torch

    from glue_eval.finetune import FinetuneHParams, finetune
    from glue_eval.records import make_record
    from glue_eval.runs import RunSpec
    from glue_painters.variants import build
    from test_glue_train import tiny_classifier, toy_dataset
    from tiny import LAYERS

    torch.set_num_threads(1)
    ds = toy_dataset(32, pad_to=16)
    plan = build("skip", LAYERS, n=1)
    res = finetune(tiny_classifier(), plan, "rte", ds, {"validation": ds},
                   FinetuneHParams(learning_rate=3e-3, batch_size=16, epochs=1, max_length=32), seed=0,
                   output_dir=tmp_path, tokenizer=None, progress=False)
    rec = make_record(RunSpec.of("tiny", "skip:n=1", "rte", "finetune", 0), plan, "tiny", {}, res, {})
    assert rec["labels"]["validation"] == list(ds["labels"])
    assert _recomputed("rte", rec) == pytest.approx(rec["metrics"])


def test_glue_records_without_rows_stay_as_before():
    from glue_eval.records import make_record
    from glue_eval.runs import RunSpec
    from glue_painters.variants import build

    rec = make_record(RunSpec.of("tiny", "full", "rte", "probe", 0), build("full", 4), "tiny", {},
                      {"metrics": {"accuracy": 0.5}, "score": 50.0}, {})
    assert "predictions" not in rec and "labels" not in rec


def test_painters_report_on_a_real_tiny_sweep(tmp_path, data_dir):
    """A tiny model's sweep store, then ``painters report`` on it: the findings have intervals from
    the records' own per-document scores (too few documents to decide anything)."""
    from painters.cli import main
    from painters.report.data import load_groups
    from painters.report.paired import resampled

    cfg = S.parse_config({"model": "tiny-llama", "variants": ["full", "skip", "parallel", "random"], "n": [0, 1, 2],
                          "permutation_seeds": 2, "tasks": ["arc_easy", "hellaswag"], "limit": 2, "batch_size": 4})
    S.run_sweep(cfg, results_dir=tmp_path / "r", data_dir=data_dir, model=tiny_lm("llama"),
                tokenizer=byte_tokenizer(), progress=False)
    assert main(["report", "--results", str(tmp_path / "r"), "--out", str(tmp_path / "o")]) == 0
    (g,) = load_groups(tmp_path / "r")
    res = resampled(g)
    assert set(res.units) <= {"arc_easy", "hellaswag"} and all(n == 2 for n in res.units.values())
    assert (tmp_path / "o" / "report.html").is_file()


def test_lm_eval_pairs_and_strings_are_kept_compactly():
    from glue_painters.per_item import compact

    rows = [{"word_perplexity": (-410.61749267578125, 15), "acc": 1, "pred": "7"},
            {"word_perplexity": (-3.0, 2), "acc": 0, "pred": None}]
    assert compact(rows) == {"word_perplexity": [[-410.617, 15], [-3, 2]], "acc": [1, 0], "pred": ["7", None]}
