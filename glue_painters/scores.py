"""Per-layer scores on a calibration text, and the calibration loss of any plan.

Three ways to say how much a decoder needs each layer, all measured on the same calibration set:

* **Block Influence** (ShortGPT, Men et al. 2024): ``BI_i = 1 - mean cos(x_i, x_{i+1})`` over the
  real tokens, where ``x_i`` is the input of layer ``i`` and ``x_{i+1}`` its output (the residual
  stream, before any final norm). A layer that hardly turns the residual stream scores near 0.
* **Angular distance** n layers apart (Gromov et al. 2024, "The Unreasonable Ineffectiveness of
  the Deeper Layers"): ``d(l, n) = mean arccos(cos(x_l, x_{l+n})) / pi``; the block of ``n``
  layers starting at ``argmin_l d(l, n)`` is the most droppable contiguous block of that size.
  Gromov et al. take the last token of each sequence only; ``angular_tokens="last"`` does that,
  the default ``"all"`` averages over every real token like BI (many more samples from a short
  calibration text).
* **Skip-one loss increase**: calibration LM loss under ``variants.skip_one(T, i)`` minus the
  full model's: the direct measure the other two are proxies for.

Hidden states come from forward hooks on the entries of the rewired layer list (our own modules,
see ``rewire``), never from edits to the model.

``CalibrationLoss`` is the objective the search (``glue_painters.search``) minimises: the mean next-token
negative log-likelihood over the real tokens of the calibration set (perplexity = exp of it).
Its ``many(plans)`` evaluates plans together and computes each shared prefix of layers once:
the plans form a trie over their executed steps; a branch is run as a plan of its own, fed the
hidden state after the prefix as ``inputs_embeds``. Why that is needed here: on a shared 2-core
CPU one 30-layer forward over 1k tokens takes ~30 s, and a greedy step's candidates (the current
plan minus one layer) share on average half their layers. The split is checked once per model
against a plain forward (``split_is_exact``); a model where it differs is run plan by plan.
(The trie and the ``inputs_embeds`` split live in ``prefix_share``, shared with the decoder track's
benchmark scoring and the GLUE probe.)
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from tqdm.auto import tqdm

from .datadir import data_root
from .errors import UserError
from .jsonl import jsonl_records
from .plans import Plan, full_plan
from .prefix_share import PlanTrie, output_logits, run_segment, split_is_exact
from .rewire import num_layers, rewired
from .similarity import BUNDLED_TEXT, _boundary_hooks, read_documents
from .variants import skip_one

# ---- calibration text ----------------------------------------------------------------------------

# benchmark train splits usable as calibration text: folder -> how a record becomes text
_TRAIN_SPLITS = ("arc_easy", "arc_challenge", "gsm8k")


def _data_dir(data_dir=None) -> Path:
    """The benchmark data folder: ``data_dir``, ``$PAINTERS_DATA``, else ``../shared/data``
    next to the checkout (``glue_painters.datadir``, shared by both tracks)."""
    return data_root(data_dir)


def _train_record_text(task: str, rec: dict, where: str) -> str:
    if task == "gsm8k":
        if not isinstance(rec.get("question"), str) or not isinstance(rec.get("answer"), str):
            raise UserError(f"{where}: expected string fields 'question' and 'answer'")
        return f"Question: {rec['question']}\nAnswer: {rec['answer']}"
    q = rec.get("question")
    if isinstance(q, dict):  # original ARC JSONL
        stem, texts, labels = q.get("stem"), [c.get("text") for c in q.get("choices", [])], \
            [c.get("label") for c in q.get("choices", [])]
    else:  # hub layout
        stem, texts, labels = q, rec.get("choices", {}).get("text", []), rec.get("choices", {}).get("label", [])
    if not isinstance(stem, str) or rec.get("answerKey") not in labels:
        raise UserError(f"{where}: expected an ARC record with a question and an answerKey among its labels")
    return f"Question: {stem}\nAnswer: {texts[labels.index(rec['answerKey'])]}"


def calibration_documents(source: str | os.PathLike | None = None, max_docs: int | None = None,
                          data_dir=None) -> tuple[list[str], str]:
    """The calibration texts and a name for where they came from.

    ``source``: None -> WikiText-2 train (``<data>/wikitext2/train.txt``) if present, else the
    bundled WikiText-2 sample (64 paragraphs of the *validation* split; no benchmark here is
    drawn from WikiText). A path -> its paragraphs (``.txt``) or ``text`` fields (``.jsonl``).
    ``TASK:train`` (``arc_easy``, ``arc_challenge``, ``gsm8k``) -> that benchmark's train split
    as "Question: ...\\nAnswer: ..." texts. Only a train split is accepted: calibrating on the
    split the benchmarks evaluate would leak the test set into the search.
    ``wikitext2:SPLIT`` (train, validation, test) -> that raw WikiText-2 file's paragraphs (no
    benchmark here is drawn from WikiText; the verdict's held-out perplexity uses ``:test``, the
    bundled calibration sample comes from ``:validation``).
    """
    if source is None:
        train = _data_dir(data_dir) / "wikitext2" / "train.txt"
        if train.is_file():
            return _wikitext_paragraphs(train, max_docs), f"wikitext2:train ({train})"
        return read_documents(BUNDLED_TEXT, max_docs), "bundled:wikitext2_sample.txt"
    text = str(source)
    if text.startswith("wikitext2:") and not Path(text).exists():
        split = text.split(":", 1)[1]
        path = _data_dir(data_dir) / "wikitext2" / f"{split}.txt"
        if split not in ("train", "validation", "test") or not path.is_file():
            raise UserError(f"text source '{text}': {path} not found (wikitext2:train, :validation or :test under "
                            f"--data-dir or PAINTERS_DATA)")
        return _wikitext_paragraphs(path, max_docs), f"wikitext2:{split}"
    if ":" in text and not Path(text).exists() and text.split(":", 1)[0] in _TRAIN_SPLITS + (
            "lambada_openai", "hellaswag", "winogrande"):
        task, split = text.split(":", 1)
        if split != "train" or task not in _TRAIN_SPLITS:
            raise UserError(
                f"calibration source '{text}': only a benchmark's train split may be used (never the split "
                f"it is evaluated on); available: {', '.join(t + ':train' for t in _TRAIN_SPLITS)}")
        path = _data_dir(data_dir) / task / "train.jsonl"
        if not path.is_file():
            raise UserError(f"calibration source '{text}': {path} not found (set --data-dir or PAINTERS_DATA)")
        docs = []
        for where, rec in jsonl_records(path):
            docs.append(_train_record_text(task, rec, where))
            if max_docs and len(docs) >= max_docs:
                break
        return docs, f"{task}:train"
    return read_documents(text, max_docs), str(text)


def _wikitext_paragraphs(path: Path, max_docs: int | None) -> list[str]:
    """Non-blank, non-heading lines of a raw WikiText file (one paragraph per line)."""
    docs = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()
            if ln.strip() and not ln.strip().startswith("=")]
    return docs[:max_docs] if max_docs else docs


@dataclass
class Calibration:
    """Tokenized calibration batches (right-padded rows with their attention masks)."""

    batches: list[dict]
    n_docs: int
    n_tokens: int  # real tokens
    n_predicted: int  # real tokens that have a real next token (what the loss averages over)
    source: str
    fingerprint: str  # sha256 of the token ids: a changed text, tokenizer or length is a new key

    def describe(self) -> dict:
        return {"source": self.source, "n_docs": self.n_docs, "n_tokens": self.n_tokens,
                "n_predicted": self.n_predicted, "fingerprint": self.fingerprint}


def tokenize_calibration(tokenizer, documents: Sequence[str], max_length: int = 128, batch_size: int = 8,
                         source: str = "") -> Calibration:
    """Tokenize once (truncated to ``max_length``, padded per batch) for every later forward."""
    if not documents:
        raise UserError("the calibration set is empty")
    if max_length < 2:
        raise UserError(f"--max-length must be at least 2 tokens, got {max_length}")
    batches, h, n_tok, n_pred = [], hashlib.sha256(), 0, 0
    for start in range(0, len(documents), batch_size):
        enc = tokenizer(list(documents[start:start + batch_size]), return_tensors="pt", padding=True,
                        truncation=True, max_length=max_length)
        ids, mask = enc["input_ids"], enc["attention_mask"]
        if bool((mask[:, 1:] > mask[:, :-1]).any()):
            raise UserError("calibration rows must be right-padded (set tokenizer.padding_side = 'right')")
        batches.append({"input_ids": ids, "attention_mask": mask})
        for row, m in zip(ids.tolist(), mask.tolist()):
            h.update(json.dumps(row[:sum(m)]).encode())
        n_tok += int(mask.sum())
        n_pred += int((mask[:, 1:] * mask[:, :-1]).sum())
    if n_pred == 0:
        raise UserError("the calibration texts are too short: no token has a next token")
    return Calibration(batches, len(documents), n_tok, n_pred, source, h.hexdigest()[:16])


def load_calibration(tokenizer, source=None, max_docs: int | None = 16, max_length: int = 128,
                     batch_size: int = 8, data_dir=None) -> Calibration:
    docs, name = calibration_documents(source, max_docs, data_dir)
    return tokenize_calibration(tokenizer, docs, max_length, batch_size, name)


# ---- calibration loss ----------------------------------------------------------------------------

def _nll_sum(logits_of, batch: dict, chunk: int = 2) -> float:
    """Summed next-token NLL (float64) over the positions whose next token is real.
    ``logits_of(rows, keep)`` gives the logits of rows ``rows`` (a slice) at the positions
    ``keep`` (a bool mask over those rows' first L-1 positions)."""
    ids, mask = batch["input_ids"], batch["attention_mask"]
    total = 0.0
    for r in range(0, ids.shape[0], chunk):  # a few rows at a time: B x L x vocab is large
        rows = slice(r, r + chunk)
        keep = (mask[rows, 1:] * mask[rows, :-1]).bool()
        if not keep.any():
            continue
        logp = torch.log_softmax(logits_of(rows, keep).float(), dim=-1)
        total += float(-logp.gather(1, ids[rows, 1:][keep][:, None]).sum(dtype=torch.float64))
    return total


def _head(model, final: torch.Tensor):
    """``logits_of`` for final-normed hidden states: only the kept positions reach the head."""
    return lambda rows, keep: output_logits(model, final[rows, :-1][keep])


class CalibrationLoss:
    """``loss(plan)``: mean next-token NLL of ``model`` under ``plan`` on the calibration set.

    ``many(plans)`` evaluates several plans at once, sharing their common prefixes (see the
    module docstring). ``describe()`` names the objective for cache keys: a cached loss is only
    reused for the same model weights and the same calibration tokens.
    """

    def __init__(self, model, calibration: Calibration, model_id: str = "", progress: bool = True,
                 share_prefix: bool = True):
        self.model = model
        self.calibration = calibration
        self.model_id = model_id
        self.progress = progress
        self.num_layers = num_layers(model)
        self.device = next(model.parameters()).device
        self.layer_runs = 0  # layer executions per token actually run (for reporting the saving)
        self.share_prefix = share_prefix and split_is_exact(model, {k: v[:1] for k, v in self._batch(0).items()})[0]

    def describe(self) -> dict:
        return {"objective": "calibration_nll", "model": self.model_id, "layers": self.num_layers,
                "calibration": self.calibration.describe()}

    def _batch(self, i: int) -> dict:
        return {k: v.to(self.device) for k, v in self.calibration.batches[i].items()}

    def __call__(self, plan: Plan | str) -> float:
        return self.many([plan])[0]

    @torch.no_grad()
    def many(self, plans: Sequence[Plan | str]) -> list[float]:
        plans = [Plan.parse(p) if isinstance(p, str) else p for p in plans]
        for p in plans:
            p.validate(self.num_layers)
        unique = list({p.text: p for p in plans}.values())
        sums = {p.text: 0.0 for p in unique}
        bar = tqdm(total=len(self.calibration.batches) * len(unique), desc=f"calibration loss ({len(unique)} plans)",
                   disable=not self.progress, leave=False)
        trie = PlanTrie(unique, share=self.share_prefix)
        try:
            for b in range(len(self.calibration.batches)):
                self._walk(trie, self._batch(b), sums, bar)
        finally:
            bar.close()
        n = self.calibration.n_predicted
        return [sums[p.text] / n for p in plans]

    def _walk(self, trie: PlanTrie, batch: dict, sums: dict, bar) -> None:
        """Add each plan's summed NLL on ``batch`` to ``sums``: shared prefixes once, or (the
        fallback, ``trie.share`` False) every plan from the ids with the model's own logits."""
        self.layer_runs += trie.layer_executions()
        if not trie.share:
            for text, p in trie.plans.items():
                with rewired(self.model, p):
                    logits = self.model(**batch, use_cache=False).logits
                sums[text] += _nll_sum(lambda rows, keep: logits[rows, :-1][keep], batch)
                bar.update(1)
                del logits
            return

        def run_edge(segment, hidden, capture):
            return run_segment(self.model, segment, batch, hidden, capture)

        def on_end(text, final):
            sums[text] += _nll_sum(_head(self.model, final), batch)
            bar.update(1)

        trie.walk(run_edge, on_end)


def perplexity(loss: float) -> float:
    return math.exp(loss) if loss < 700 else float("inf")


# ---- layer scores --------------------------------------------------------------------------------

@dataclass
class LayerScores:
    """The three scores per layer of one model on one calibration set (see the module docstring)."""

    num_layers: int
    block_influence: list[float]  # BI_i, i = 0..T-1
    angular: dict[int, list[float]]  # n -> [d(l, n) for l = 0..T-n]
    best_block: dict[int, tuple[int, float]]  # n -> (first layer of the best block, its distance)
    full_loss: float
    skip_one_loss: list[float]  # loss under skip_one(T, i)
    angular_tokens: str = "all"
    calibration: dict = field(default_factory=dict)

    @property
    def skip_one_increase(self) -> list[float]:
        return [x - self.full_loss for x in self.skip_one_loss]

    def to_json(self, **extra) -> dict:
        return {
            "num_layers": self.num_layers, "calibration": self.calibration, "angular_tokens": self.angular_tokens,
            "full_loss": self.full_loss, "full_perplexity": perplexity(self.full_loss),
            "layers": [{"layer": i, "block_influence": self.block_influence[i],
                        "skip_one_loss": self.skip_one_loss[i], "skip_one_increase": self.skip_one_increase[i]}
                       for i in range(self.num_layers)],
            "angular_distance": {str(n): v for n, v in self.angular.items()},
            "best_block": {str(n): {"start": s, "layers": f"{s}-{s + n - 1}", "distance": d}
                           for n, (s, d) in self.best_block.items()},
            **extra,
        }

    @classmethod
    def from_json(cls, obj: dict) -> "LayerScores":
        layers = obj["layers"]
        return cls(obj["num_layers"], [r["block_influence"] for r in layers],
                   {int(n): v for n, v in obj["angular_distance"].items()},
                   {int(n): (b["start"], b["distance"]) for n, b in obj["best_block"].items()},
                   obj["full_loss"], [r["skip_one_loss"] for r in layers], obj.get("angular_tokens", "all"),
                   obj.get("calibration", {}))


@torch.no_grad()
def boundary_statistics(model, calibration: Calibration, angular_tokens: str = "all",
                        progress: bool = True) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Over the full model's T+1 layer boundaries (0 = embeddings, i+1 = output of layer i, before
    the final norm): the token-mean cosine matrix (K x K) and the token-mean angular distance
    matrix ``arccos(cos)/pi`` (K x K), float64, and the number of tokens averaged. Cosines use
    every real token; the angular matrix uses every real token or, with ``angular_tokens="last"``,
    the last real token of each row (Gromov et al.)."""
    if angular_tokens not in ("all", "last"):
        raise UserError(f"angular_tokens must be 'all' or 'last', got {angular_tokens!r}")
    t = num_layers(model)
    device = next(model.parameters()).device
    cos_sum = ang_sum = None
    n_cos = n_ang = 0
    with rewired(model, full_plan(t)):
        for batch in tqdm(calibration.batches, desc="hidden states", disable=not progress, leave=False):
            batch = {k: v.to(device) for k, v in batch.items()}
            states: list[torch.Tensor] = []
            hooks = _boundary_hooks(model, states)
            try:
                model.base_model(**batch, use_cache=False)
            finally:
                for h in hooks:
                    h.remove()
            valid = batch["attention_mask"].bool()
            h = torch.nn.functional.normalize(torch.stack([s[valid].double() for s in states]), dim=-1)
            cos = torch.einsum("ind,jnd->ijn", h, h).clamp(-1, 1)  # (K, K, tokens)
            if angular_tokens == "last":
                lengths = batch["attention_mask"].sum(1)
                last = torch.cumsum(lengths, 0) - 1  # index of each row's last real token in h[:, n]
                ang = torch.arccos(cos[:, :, last]) / math.pi
                n_ang += len(last)
            else:
                ang = torch.arccos(cos) / math.pi
                n_ang += cos.shape[-1]
            cos_sum = cos.sum(-1) if cos_sum is None else cos_sum + cos.sum(-1)
            ang_sum = ang.sum(-1) if ang_sum is None else ang_sum + ang.sum(-1)
            n_cos += cos.shape[-1]
    return cos_sum / n_cos, ang_sum / n_ang, n_cos


def layer_scores(model, calibration: Calibration, objective: CalibrationLoss | None = None,
                 angular_tokens: str = "all", progress: bool = True) -> LayerScores:
    """BI, angular distances (with the best block per size) and skip-one loss increases."""
    t = num_layers(model)
    cos, ang, _ = boundary_statistics(model, calibration, angular_tokens, progress)
    bi = [float(1.0 - cos[i, i + 1]) for i in range(t)]
    angular, best = {}, {}
    for n in range(1, t):
        row = [float(ang[l, l + n]) for l in range(0, t - n + 1)]
        angular[n] = row
        start = min(range(len(row)), key=lambda l: (row[l], l))
        best[n] = (start, row[start])
    objective = objective or CalibrationLoss(model, calibration, progress=progress)
    losses = objective.many([full_plan(t)] + [skip_one(t, i) for i in range(t)])
    return LayerScores(t, bi, angular, best, losses[0], losses[1:], angular_tokens, calibration.describe())


__all__ = [
    "Calibration", "CalibrationLoss", "LayerScores", "boundary_statistics", "calibration_documents",
    "layer_scores", "load_calibration", "output_logits", "perplexity", "split_is_exact", "tokenize_calibration",
]
