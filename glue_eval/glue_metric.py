"""GLUE's official metrics as a local ``evaluate`` module (the hub's ``glue`` metric is unreachable
offline). Load it with ``evaluate.load(path_to_this_file, config_name=task)``.

Self-contained on purpose: ``evaluate`` copies this file into its module cache and imports it
there, so it cannot import the rest of the package. The metrics are the ones GLUE reports:

==========  ==========================================================
cola        Matthews correlation
stsb        Pearson and Spearman correlation (regression predictions)
mrpc, qqp   F1 of the positive class (1) and accuracy
mnli        accuracy (one evaluation split at a time: matched or mismatched)
others      accuracy
==========  ==========================================================

Values are fractions in [0, 1] (correlations in [-1, 1]), as scikit-learn and scipy return them.
"""

import datasets
import evaluate
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import f1_score, matthews_corrcoef

_CITATION = """\
@inproceedings{wang2019glue,
  title={{GLUE}: A Multi-Task Benchmark and Analysis Platform for Natural Language Understanding},
  author={Wang, Alex and Singh, Amanpreet and Michael, Julian and Hill, Felix and Levy, Omer and Bowman, Samuel R.},
  booktitle={ICLR}, year={2019}
}
"""

_DESCRIPTION = "Official GLUE metrics per task, computed with scikit-learn and scipy, offline."

_KWARGS_DESCRIPTION = """
Args:
    predictions: predicted label codes (int), or scores for stsb (float).
    references: gold label codes (int), or gold scores for stsb (float).
Returns: a dict; keys by task: cola {matthews_correlation}, stsb {pearson, spearmanr},
    mrpc/qqp {f1, accuracy}, the others {accuracy}.
"""

METRICS = {
    "cola": ("matthews_correlation",),
    "sst2": ("accuracy",),
    "mrpc": ("f1", "accuracy"),
    "qqp": ("f1", "accuracy"),
    "stsb": ("pearson", "spearmanr"),
    "mnli": ("accuracy",),
    "mnli_matched": ("accuracy",),
    "mnli_mismatched": ("accuracy",),
    "qnli": ("accuracy",),
    "rte": ("accuracy",),
    "wnli": ("accuracy",),
}


def _accuracy(preds, labels):
    return float(sum(int(p == r) for p, r in zip(preds, labels)) / len(labels))


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class GlueMetric(evaluate.Metric):
    def _info(self):
        if self.config_name not in METRICS:
            raise KeyError(f"unknown GLUE task '{self.config_name}'; known: {', '.join(METRICS)}")
        kind = "float32" if self.config_name == "stsb" else "int64"
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value(kind), "references": datasets.Value(kind)}),
            format="numpy",
        )

    def _compute(self, predictions, references):
        task = self.config_name
        if len(references) == 0:
            raise ValueError("no predictions to score")
        if task == "cola":
            return {"matthews_correlation": float(matthews_corrcoef(references, predictions))}
        if task == "stsb":
            return {"pearson": float(pearsonr(predictions, references)[0]),
                    "spearmanr": float(spearmanr(predictions, references)[0])}
        if task in ("mrpc", "qqp"):
            return {"f1": float(f1_score(y_true=references, y_pred=predictions)),
                    "accuracy": _accuracy(predictions, references)}
        return {"accuracy": _accuracy(predictions, references)}
