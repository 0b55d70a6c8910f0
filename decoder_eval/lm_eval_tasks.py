"""Any lm-evaluation-harness task in the sweep engine: lm-eval builds the requests and scores the
results, our ``Evaluator`` runs the model for all plans of a sweep.

Why split the work this way: lm-eval already holds hundreds of task definitions (prompts, few-shot
sampling, filters, metrics, aggregation); what it lacks is running many rewired plans at once
(shared layer prefixes, packed rows, scored positions only). So an ``LmEvalTask`` takes a loaded
lm-eval ``Task`` (``lm_eval_loading`` does the loading), turns its ``Instance``s into our requests
(``loglikelihood`` -> ``LoglikelihoodRequest``, ``loglikelihood_rolling`` -> ``RollingRequest``,
``generate_until`` -> ``GenerationRequest``) and, for each plan, hands the responses back the way
``lm_eval.evaluator.evaluate`` does: ``resps`` on each instance (``repeats`` copies), the task's
filter ensembles, ``process_results`` per document and filter, the task's aggregation functions.

Metric names are lm-eval's ``metric,filter`` with the ``none`` filter left out (``acc``,
``exact_match,strict-match``), the names the decoder records always had. Standard errors are
lm-eval's closed forms (``mean_stderr``, ``acc_all_stderr``); metrics lm-eval would bootstrap get
None, as with ``bootstrap_iters=0``.

Chance level (for the normalized score): 1/#choices of each document for a ``multiple_choice``
task, else 0, unless the sweep config's ``chance: {task: value}`` overrides it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from glue_painters.errors import UserError

from .rolling import RollingRequest
from .tasks import GenerationRequest, Item, LoglikelihoodRequest

KINDS = ("loglikelihood", "multiple_choice", "loglikelihood_rolling", "generate_until")
DEFAULT_MAX_GEN_TOKS = 256  # HFLM's default when a task's generation_kwargs name none


@dataclass
class LmEvalDoc:
    """An item's document for an lm-eval task: the doc and its instances (in ``idx`` order)."""

    doc_id: int
    doc: Any
    instances: list = field(repr=False)
    requests: list = field(repr=False)


def metric_name(metric: str, filter_key: str) -> str:
    return metric if filter_key == "none" else f"{metric},{filter_key}"


def to_request(instance):
    """Our request for one lm-eval ``Instance`` (a UserError for what the engine cannot run)."""
    kind, args = instance.request_type, instance.args
    if kind == "loglikelihood":
        return LoglikelihoodRequest(args[0], args[1])
    if kind == "loglikelihood_rolling":
        return RollingRequest(args[0])
    if kind == "generate_until":
        from lm_eval.models.utils import normalize_gen_kwargs

        kw = normalize_gen_kwargs(args[1], DEFAULT_MAX_GEN_TOKS)
        if kw.get("do_sample"):
            raise UserError(f"task '{instance.task_name}' samples (do_sample/temperature > 0); the sweep engine "
                            f"generates greedily only: run it with decoder_eval.lm_eval_interop")
        return GenerationRequest(args[0], tuple(kw["until"]), int(kw["max_gen_toks"]))
    raise UserError(f"task '{instance.task_name}': request type '{kind}' is not supported; "
                    f"supported: {', '.join(KINDS)}")


def _response(request, result):
    """What HFLM would return for ``request``: (ll, greedy), a summed ll, or the text."""
    if isinstance(request, RollingRequest):
        return result[0]
    if isinstance(request, LoglikelihoodRequest):
        return tuple(result)
    return result


class LmEvalTask:
    """The ``Task`` shape ``Evaluator.run`` expects, over one loaded lm-eval task."""

    def __init__(self, name: str, task, primary: str | None = None, chance: float | None = None):
        self.name = name
        self.lm_task = task
        self.kind = task.OUTPUT_TYPE
        if self.kind not in KINDS:
            raise UserError(f"task '{name}': output type '{self.kind}' is not supported; supported: {', '.join(KINDS)}")
        self.filters = [f.name for f in getattr(task, "_filters", [])] or ["none"]
        self.agg = dict(task.aggregation())
        better = task.higher_is_better() or {}
        self.metrics = tuple(metric_name(m, f) for f in self.filters for m in self.agg)
        self.lower_is_better = {metric_name(m, f) for f in self.filters for m in self.agg if better.get(m) is False}
        self.primary = primary or next((m for m in self.metrics if m not in self.lower_is_better), self.metrics[0])
        self.chance_override = chance

    # ---- the Task protocol -----------------------------------------------------------------------
    def items(self, instances) -> list[Item]:
        """Group a task's instances by document, each document's in ``idx`` order."""
        by_doc: dict[int, list] = {}
        for inst in instances:
            by_doc.setdefault(inst.doc_id, []).append(inst)
        items = []
        for doc_id in sorted(by_doc):
            insts = sorted(by_doc[doc_id], key=lambda x: x.idx)
            requests = [to_request(i) for i in insts]
            items.append(Item(doc_id, LmEvalDoc(doc_id, insts[0].doc, insts, requests), requests))
        kinds = {type(r) for it in items for r in it.requests}
        if len(kinds) > 1:
            raise UserError(f"task '{self.name}' mixes request types ({', '.join(sorted(k.__name__ for k in kinds))}); "
                            f"run it with decoder_eval.lm_eval_interop")
        return items

    def chance(self, doc: LmEvalDoc) -> float:
        if self.chance_override is not None:
            return float(self.chance_override)
        if self.kind == "multiple_choice":
            return 1.0 / len(self.lm_task.doc_to_choice(doc.doc))
        return 0.0

    def score(self, doc: LmEvalDoc, results: list) -> dict[str, Any]:
        """lm-eval's per-document metrics from our results: resps, filters, process_results."""
        for inst, request, result in zip(doc.instances, doc.requests, results, strict=True):
            inst.resps = [_response(request, result)] * (inst.repeats or 1)
            inst.filtered_resps = {}
        for ensemble in getattr(self.lm_task, "_filters", []):
            ensemble.apply(doc.instances)
        out = {}
        for key in self.filters:
            resps = [inst.filtered_resps[key] if key in inst.filtered_resps else inst.resps[0] for inst in doc.instances]
            for metric, value in self.lm_task.process_results(doc.doc, resps).items():
                out[metric_name(metric, key)] = value
        return out

    def aggregate(self, per_item: list[dict]) -> tuple[dict[str, float], dict[str, float | None]]:
        """The task's aggregation per metric; closed-form standard errors where lm-eval has them."""
        from lm_eval.api.metrics import acc_all, acc_all_stderr, mean, mean_stderr

        closed = {mean: mean_stderr, acc_all: acc_all_stderr}
        values, errors = {}, {}
        for f in self.filters:
            for m, fn in self.agg.items():
                name = metric_name(m, f)
                column = [row[name] for row in per_item if name in row]
                values[name] = float(fn(column))
                se = closed.get(fn)
                errors[name] = float(se(column)) if se is not None and len(column) > 1 else None
        return values, errors

    def sample_record(self, item: Item, results: list, scores: dict) -> dict:
        """One ``--log-samples`` line: the document, the requests, our raw and filtered responses."""
        reqs, outs = [], []
        for r, res in zip(item.requests, results):
            if isinstance(r, LoglikelihoodRequest):
                reqs.append({"context": r.context, "continuation": r.continuation})
                outs.append({"loglikelihood": res[0], "greedy": res[1]})
            elif isinstance(r, RollingRequest):
                reqs.append({"text": r.text})
                outs.append({"loglikelihood": res[0]})
            else:
                reqs.append({"context": r.context, "until": list(r.until)})
                outs.append({"generation": res})
        filtered = {key: [i.filtered_resps.get(key) for i in item.doc.instances] for key in self.filters}
        return {"index": item.index, "doc": item.doc.doc, "target": self.lm_task.doc_to_target(item.doc.doc),
                "requests": reqs, "results": outs, "filtered": filtered, "scores": scores}


@dataclass
class LmEvalTaskData:
    """A loaded lm-eval task's items for one sweep, with what selects them (the record key's subset)."""

    task: LmEvalTask
    items: list[Item]
    subset: dict
