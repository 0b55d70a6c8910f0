"""The five benchmarks as lm-evaluation-harness 0.4 defines them: requests, per-item scores, chance.

Each task mirrors its lm-eval YAML (``lm_eval/tasks/<task>/``), named in its docstring, so that
our numbers are lm-eval's numbers: the same prompt strings, the same context/continuation split
(the continuation starts with lm-eval's ``target_delimiter`` " "), the same metrics. What the
engine does with the requests (tokenization, batching, prefix reuse) lives in ``loglikelihood.py``
and ``generation.py``; a task only says *what* to score.

A task reads either record shape: our offline JSON Lines files (``shared/data``) and the hub
datasets lm-eval loads; ``prepare`` turns both into one internal document and rejects a malformed
record with its file and item number.

With lm-eval installed, sweeps and ``evaluate.load_tasks`` let lm-eval build these six from its
own YAMLs over the same files (``lm_eval_loading``); what stays in use from here then is the thin
local-data mapping: the file layout (``split``), the record checks (``prepare``) with their
one-line errors, the record key (``TaskData.subset``) and the primary metric. Without lm-eval these
classes run the six themselves; tests hold both paths to stock lm-eval document by document.

Known difference (documented in shared/data/README.md): the offline HellaSwag copy holds only the
joined, pre-cleaned ``ctx``, whose ``ctx_b`` part is not capitalized as lm-eval does with the
original ``ctx_a``/``ctx_b``; scores can differ slightly from lm-eval on the hub data.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

from glue_painters.errors import UserError

from . import metrics as M
from .data import DataError, Docs, Split, load_split


@dataclass(frozen=True)
class LoglikelihoodRequest:
    """Score ``log P(continuation | context)`` and whether greedy decoding would produce it."""

    context: str
    continuation: str


@dataclass(frozen=True)
class GenerationRequest:
    """Greedy generation from ``context`` until any of ``until`` (or ``max_gen_toks`` tokens)."""

    context: str
    until: tuple[str, ...]
    max_gen_toks: int = 256


@dataclass
class Item:
    """One document with the requests it needs; ``index`` is its position in the split."""

    index: int
    doc: dict
    requests: list


@dataclass
class TaskData:
    """A task's documents turned into items, once per sweep, with where they came from."""

    task: "Task"
    items: list[Item]
    docs: Docs
    fewshot: Docs | None = None

    @property
    def subset(self) -> dict:
        """What selects these items, for results keys (a changed file or limit is a new key)."""
        out = {"split": self.docs.source, "data": self.docs.fingerprint, "n": len(self.items),
               "limit": len(self.items) if len(self.items) < self.docs.total else None}
        if self.fewshot is not None:
            out.update(fewshot=self.fewshot.source, fewshot_data=self.fewshot.fingerprint,
                       num_fewshot=self.task.num_fewshot, fewshot_seed=self.task.fewshot_seed)
        if self.task.kind == "generate_until":
            out["max_gen_toks"] = getattr(self.task, "max_gen_toks", 256)
        return out


def _need(raw: dict, fields: Sequence[str], where: str) -> None:
    missing = [f for f in fields if f not in raw]
    if missing:
        raise DataError(f"{where}: missing field(s) {', '.join(repr(m) for m in missing)}")


@dataclass
class Task:
    """What every benchmark provides; subclasses fill in ``prepare``/``requests``/``score``."""

    name: str
    split: Split
    kind: str  # "loglikelihood" | "multiple_choice" | "generate_until"
    metrics: tuple[str, ...]
    primary: str  # the metric the normalized score and summary use (configurable per sweep)
    fewshot_split: Split | None = None
    num_fewshot: int = 0
    fewshot_seed: int = 1234  # lm-eval's default ``fewshot_random_seed``
    aggregation: dict = field(default_factory=dict)  # metric -> "mean" (default) | "perplexity"

    def prepare(self, raw: dict, where: str) -> dict:
        raise NotImplementedError

    def requests(self, doc: dict, shots: list[dict] | None = None) -> list:
        raise NotImplementedError

    def score(self, doc: dict, results: list) -> dict[str, float]:
        raise NotImplementedError

    def chance(self, doc: dict) -> float:
        """Expected primary score of random guessing on this item (1/#choices, or 0)."""
        return 0.0

    # ---- shared ----------------------------------------------------------------------------
    def load(self, data_dir, limit: int | None = None) -> TaskData:
        """Read, check and turn the documents into items (with few-shot contexts, if any)."""
        docs = load_split(self.split, data_dir, limit)
        prepared = [self.prepare(raw, f"{docs.source} item {i}") for i, raw in enumerate(docs.docs)]
        fewshot, pool = None, None
        if self.num_fewshot:
            fewshot = load_split(self.fewshot_split, data_dir, None)
            pool = [self.prepare(raw, f"{fewshot.source} item {i}") for i, raw in enumerate(fewshot.docs)]
            if len(pool) < self.num_fewshot:
                raise DataError(f"{fewshot.source}: {len(pool)} few-shot documents, need {self.num_fewshot}")
        # lm-eval draws each document's shots from one Random(seed) in document order, so the
        # first N documents get the same shots whatever the limit.
        rnd = random.Random(self.fewshot_seed)
        items = []
        for i, doc in enumerate(prepared):
            shots = rnd.sample(pool, self.num_fewshot) if self.num_fewshot else None
            items.append(Item(i, doc, self.requests(doc, shots)))
        return TaskData(self, items, docs, fewshot)

    def aggregate(self, per_item: list[dict[str, float]]) -> tuple[dict[str, float], dict[str, float | None]]:
        """Task-level metrics and their standard errors (None where lm-eval has no closed form)."""
        values, errors = {}, {}
        for metric in self.metrics:
            column = [row[metric] for row in per_item]
            if self.aggregation.get(metric) == "perplexity":
                values[metric], errors[metric] = M.perplexity(column), None
            else:
                values[metric], errors[metric] = M.mean(column), M.mean_stderr(column)
        return values, errors


# ---- LAMBADA (OpenAI) ----------------------------------------------------------------------------
class LambadaOpenAI(Task):
    """lm-eval ``lambada_openai``: context = text without its last space-separated word; target =
    " " + that word. acc: every target token is the greedy choice; perplexity: exp(-mean ll)."""

    def __init__(self):
        super().__init__(
            "lambada_openai", Split("lambada_openai/test.jsonl", "EleutherAI/lambada_openai", "default", "test"),
            "loglikelihood", ("acc", "perplexity"), "acc", aggregation={"perplexity": "perplexity"})

    def prepare(self, raw, where):
        _need(raw, ["text"], where)
        if not isinstance(raw["text"], str) or " " not in raw["text"].strip():
            raise DataError(f"{where}: 'text' must be a string of at least two words")
        return {"text": raw["text"]}

    def requests(self, doc, shots=None):
        words = doc["text"].split(" ")
        return [LoglikelihoodRequest(" ".join(words[:-1]), " " + words[-1])]

    def score(self, doc, results):
        (ll, greedy), = results
        return {"acc": float(greedy), "perplexity": float(ll)}


# ---- ARC -----------------------------------------------------------------------------------------
class ARC(Task):
    """lm-eval ``arc_easy`` / ``arc_challenge``: ``Question: {q}\\nAnswer:`` + `` {choice}``;
    acc and acc_norm (loglikelihood / choice length in characters)."""

    def __init__(self, name: str, folder: str, hub_name: str):
        super().__init__(name, Split(f"{folder}/test.jsonl", "allenai/ai2_arc", hub_name, "test"),
                         "multiple_choice", ("acc", "acc_norm"), "acc")

    def prepare(self, raw, where):
        _need(raw, ["question", "answerKey"], where)
        q = raw["question"]
        if isinstance(q, dict):  # original ARC JSONL: {"stem", "choices": [{"text", "label"}]}
            _need(q, ["stem", "choices"], where + " question")
            question = q["stem"]
            texts = [c.get("text") for c in q["choices"]]
            labels = [c.get("label") for c in q["choices"]]
        else:  # hub allenai/ai2_arc: question str, choices {"text": [...], "label": [...]}
            _need(raw, ["choices"], where)
            question, texts, labels = q, list(raw["choices"]["text"]), list(raw["choices"]["label"])
        if not texts or any(not isinstance(t, str) for t in texts):
            raise DataError(f"{where}: choices must be a non-empty list of strings")
        if raw["answerKey"] not in labels:
            raise DataError(f"{where}: answerKey {raw['answerKey']!r} is not one of the labels {labels}")
        return {"id": raw.get("id"), "question": question, "choices": texts,
                "gold": labels.index(raw["answerKey"])}

    def requests(self, doc, shots=None):
        ctx = f"Question: {doc['question']}\nAnswer:"
        return [LoglikelihoodRequest(ctx, " " + c) for c in doc["choices"]]

    def score(self, doc, results):
        return M.multiple_choice([ll for ll, _ in results], doc["choices"], doc["gold"])

    def chance(self, doc):
        return 1.0 / len(doc["choices"])


# ---- HellaSwag -----------------------------------------------------------------------------------
def hellaswag_preprocess(text: str) -> str:
    """lm-eval ``tasks/hellaswag/utils.py: preprocess``."""
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    text = text.replace("  ", " ")
    return text


class HellaSwag(Task):
    """lm-eval ``hellaswag`` (validation): context = preprocess(activity_label + ": " + ctx),
    continuations = " " + preprocess(ending); acc and acc_norm."""

    def __init__(self):
        super().__init__("hellaswag",
                         Split("hellaswag/validation_preprocessed.jsonl", "Rowan/hellaswag", None, "validation"),
                         "multiple_choice", ("acc", "acc_norm"), "acc_norm")

    def prepare(self, raw, where):
        _need(raw, ["endings", "label"], where)
        if "query" in raw:  # offline copy: already joined (and cleaned at the source)
            query = raw["query"]
        else:  # hub Rowan/hellaswag: lm-eval's process_docs
            _need(raw, ["activity_label", "ctx_a", "ctx_b"], where)
            query = raw["activity_label"] + ": " + raw["ctx_a"] + " " + raw["ctx_b"].capitalize()
        endings = raw["endings"]
        if not isinstance(endings, list) or not endings or any(not isinstance(e, str) for e in endings):
            raise DataError(f"{where}: 'endings' must be a non-empty list of strings")
        try:
            gold = int(raw["label"])
        except (TypeError, ValueError):
            raise DataError(f"{where}: 'label' must be an integer, got {raw['label']!r}") from None
        if not 0 <= gold < len(endings):
            raise DataError(f"{where}: label {gold} out of range for {len(endings)} endings")
        return {"query": hellaswag_preprocess(query), "choices": [hellaswag_preprocess(e) for e in endings],
                "gold": gold}

    def requests(self, doc, shots=None):
        return [LoglikelihoodRequest(doc["query"], " " + c) for c in doc["choices"]]

    def score(self, doc, results):
        return M.multiple_choice([ll for ll, _ in results], doc["choices"], doc["gold"])

    def chance(self, doc):
        return 1.0 / len(doc["choices"])


# ---- WinoGrande ----------------------------------------------------------------------------------
class WinoGrande(Task):
    """lm-eval ``winogrande`` (partial scoring): each option is substituted for ``_`` in the
    prefix (two contexts); the shared continuation is " " + the rest of the sentence after the
    blank, stripped. acc: the option whose context makes the continuation likelier is gold."""

    def __init__(self):
        super().__init__("winogrande",
                         Split("winogrande/dev.jsonl", "allenai/winogrande", "winogrande_xl", "validation"),
                         "multiple_choice", ("acc",), "acc")

    def prepare(self, raw, where):
        _need(raw, ["sentence", "option1", "option2", "answer"], where)
        if "_" not in raw["sentence"]:
            raise DataError(f"{where}: sentence has no blank '_'")
        if str(raw["answer"]) not in ("1", "2"):
            raise DataError(f"{where}: answer must be '1' or '2', got {raw['answer']!r}")
        idx = raw["sentence"].index("_")
        return {"contexts": [raw["sentence"][:idx] + raw["option1"], raw["sentence"][:idx] + raw["option2"]],
                "continuation": raw["sentence"][idx + 1:].strip(), "gold": int(raw["answer"]) - 1}

    def requests(self, doc, shots=None):
        return [LoglikelihoodRequest(ctx, " " + doc["continuation"]) for ctx in doc["contexts"]]

    def score(self, doc, results):
        return {"acc": float(M.argmax_first([ll for ll, _ in results]) == doc["gold"])}

    def chance(self, doc):
        return 0.5


# ---- GSM8K ---------------------------------------------------------------------------------------
GSM8K_STRICT = "exact_match,strict-match"
GSM8K_FLEXIBLE = "exact_match,flexible-extract"


class GSM8K(Task):
    """lm-eval ``gsm8k`` (v3): 5 shots from train (``Question: {q}\\nAnswer: {answer}`` joined by a
    blank line, drawn by ``Random(1234)`` per document in order), then ``Question: {q}\\nAnswer:``;
    greedy generation until ``Question:``, ``</s>``, ``<|im_end|>`` (and the tokenizer's EOS),
    at most 256 tokens. exact_match against the reference after the strict (``#### n``) and
    flexible (last number) filters."""

    UNTIL = ("Question:", "</s>", "<|im_end|>")

    def __init__(self, max_gen_toks: int = 256):
        super().__init__("gsm8k", Split("gsm8k/test.jsonl", "openai/gsm8k", "main", "test"),
                         "generate_until", (GSM8K_STRICT, GSM8K_FLEXIBLE), GSM8K_STRICT,
                         fewshot_split=Split("gsm8k/train.jsonl", "openai/gsm8k", "main", "train"),
                         num_fewshot=5)
        self.max_gen_toks = max_gen_toks  # lm-eval's default; lower only to test quickly

    def prepare(self, raw, where):
        _need(raw, ["question", "answer"], where)
        if not isinstance(raw["question"], str) or not isinstance(raw["answer"], str):
            raise DataError(f"{where}: 'question' and 'answer' must be strings")
        return {"question": raw["question"], "answer": raw["answer"]}

    def requests(self, doc, shots=None):
        prefix = "".join(f"Question: {s['question']}\nAnswer: {s['answer']}\n\n" for s in shots or [])
        return [GenerationRequest(prefix + f"Question: {doc['question']}\nAnswer:", self.UNTIL, self.max_gen_toks)]

    def score(self, doc, results):
        (text,) = results
        return {GSM8K_STRICT: M.exact_match(M.strict_match(text), doc["answer"]),
                GSM8K_FLEXIBLE: M.exact_match(M.flexible_extract(text), doc["answer"])}


TASKS: dict[str, Task] = {
    t.name: t
    for t in (LambadaOpenAI(), ARC("arc_easy", "arc_easy", "ARC-Easy"),
              ARC("arc_challenge", "arc_challenge", "ARC-Challenge"), HellaSwag(), WinoGrande(), GSM8K())
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise UserError(f"unknown task '{name}'; known: {', '.join(TASKS)}")
    return TASKS[name]


def sample_record(item: Item, results: list, scores: dict[str, Any]) -> dict:
    """One line of ``--log-samples`` output: the document, what was asked, what came back."""
    reqs = [{"context": r.context, "continuation": r.continuation} if isinstance(r, LoglikelihoodRequest)
            else {"context": r.context, "until": list(r.until)} for r in item.requests]
    outs = [{"loglikelihood": ll, "greedy": g} for ll, g in results] if reqs and "continuation" in reqs[0] \
        else [{"generation": t} for t in results]
    return {"index": item.index, "doc": item.doc, "requests": reqs, "results": outs, "scores": scores}
