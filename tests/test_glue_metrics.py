"""GLUE metrics (local evaluate module) against scikit-learn/scipy; the task table against HF glue."""

import math

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from glue_painters.errors import UserError
from glue_eval import tasks as T
from glue_eval.metrics import glue_average, load_metric, score_split, task_score

RNG = np.random.default_rng(1234)
Y2 = RNG.integers(0, 2, 200)
P2 = np.where(RNG.random(200) < 0.7, Y2, 1 - Y2)
Y3 = RNG.integers(0, 3, 150)
P3 = np.where(RNG.random(150) < 0.6, Y3, RNG.integers(0, 3, 150))
YS = np.round(RNG.uniform(0, 5, 120), 1).astype(np.float32)
PS = (YS + RNG.normal(0, 1.2, 120)).astype(np.float32)


def test_cola_is_matthews():
    assert score_split("cola", "validation", P2, Y2) == pytest.approx(
        {"matthews_correlation": matthews_corrcoef(Y2, P2)}, abs=1e-12)
    # a hand-checked value: one false positive in four, MCC = 1/sqrt(3)
    assert score_split("cola", "validation", [1, 0, 1, 1], [1, 0, 0, 1])["matthews_correlation"] == pytest.approx(
        1 / math.sqrt(3))


@pytest.mark.parametrize("task", ["mrpc", "qqp"])
def test_f1_tasks_report_positive_class_f1_and_accuracy(task):
    got = score_split(task, "validation", P2, Y2)
    assert got == pytest.approx({"f1": f1_score(Y2, P2), "accuracy": accuracy_score(Y2, P2)}, abs=1e-12)
    # F1 of class 1, not macro: differs from the macro average on these inputs
    assert got["f1"] != pytest.approx(f1_score(Y2, P2, average="macro"), abs=1e-6)


def test_stsb_is_pearson_and_spearman():
    got = score_split("stsb", "validation", PS, YS)
    assert got["pearson"] == pytest.approx(pearsonr(PS, YS)[0], abs=1e-6)
    assert got["spearmanr"] == pytest.approx(spearmanr(PS, YS)[0], abs=1e-6)
    assert set(got) == {"pearson", "spearmanr"}


@pytest.mark.parametrize("task", ["sst2", "qnli", "rte", "wnli"])
def test_accuracy_tasks(task):
    assert score_split(task, "validation", P2, Y2) == pytest.approx({"accuracy": accuracy_score(Y2, P2)})


def test_mnli_names_matched_and_mismatched():
    m = score_split("mnli", "validation_matched", P3, Y3)
    mm = score_split("mnli", "validation_mismatched", P3[:100], Y3[:100])
    assert m == pytest.approx({"accuracy_matched": accuracy_score(Y3, P3)})
    assert mm == pytest.approx({"accuracy_mismatched": accuracy_score(Y3[:100], P3[:100])})
    assert task_score("mnli", {**m, **mm}) == pytest.approx(50 * (m["accuracy_matched"] + mm["accuracy_mismatched"]))


def test_metric_is_an_evaluate_module_that_loads_offline():
    import evaluate
    metric = load_metric("mrpc")
    assert isinstance(metric, evaluate.Metric)
    with pytest.raises(UserError, match="unknown GLUE task"):
        load_metric("mnli-m")


def test_task_score_and_average():
    assert task_score("mrpc", {"f1": 0.8, "accuracy": 0.7}) == pytest.approx(75.0)
    assert task_score("cola", {"matthews_correlation": 0.5}) == pytest.approx(50.0)
    with pytest.raises(KeyError):
        task_score("stsb", {"pearson": 0.5})
    assert glue_average({"cola": 50.0, "mrpc": 75.0, "stsb": 80.0}) == pytest.approx(205 / 3)
    assert math.isnan(glue_average({"cola": 50.0, "stsb": float("nan")}))


# the HF glue dataset's label names (ClassLabel order) and text fields, task by task
HF_GLUE = {
    "cola": (("sentence",), ["unacceptable", "acceptable"]),
    "sst2": (("sentence",), ["negative", "positive"]),
    "mrpc": (("sentence1", "sentence2"), ["not_equivalent", "equivalent"]),
    "qqp": (("question1", "question2"), ["not_duplicate", "duplicate"]),
    "stsb": (("sentence1", "sentence2"), None),
    "mnli": (("premise", "hypothesis"), ["entailment", "neutral", "contradiction"]),
    "qnli": (("question", "sentence"), ["entailment", "not_entailment"]),
    "rte": (("sentence1", "sentence2"), ["entailment", "not_entailment"]),
    "wnli": (("sentence1", "sentence2"), ["not_entailment", "entailment"]),
}


def test_label_maps_and_fields_match_hf_glue():
    assert set(T.TASKS) == set(HF_GLUE)
    for name, (fields, labels) in HF_GLUE.items():
        task = T.get_task(name)
        assert task.fields == fields
        assert (list(task.labels) if task.labels else None) == labels
        assert task.num_labels == (1 if labels is None else len(labels))
    assert T.get_task("mnli").eval_splits == ("validation_matched", "validation_mismatched")
    assert T.get_task("stsb").is_regression


def test_shipped_glue_files_load_with_their_label_sets():
    root = T.default_data_dir()
    if not root.is_dir():
        pytest.skip(f"no GLUE data at {root}")
    for name in ("cola", "mrpc", "stsb", "rte", "wnli", "qnli"):
        task = T.get_task(name)
        for split in ("train",) + task.eval_splits:
            if not (root / name / f"{split}.jsonl").exists():
                assert (name, split) == ("qnli", "train")  # documented: QNLI has validation only here
                continue
            rows, _ = T.load_rows(task, split)
            labels = {r["label"] for r in rows}
            if task.is_regression:
                assert min(labels) >= 0 and max(labels) <= 5
            else:
                assert labels == set(range(task.num_labels))
