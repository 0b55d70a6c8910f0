"""Head-only probing: the rewired body frozen, a linear head trained on its pooled output.

Pooling: see ``modeling.choose_pooling`` (default ``auto``: the pooling the checkpoint was trained
with, else its pretrained pooler, else the mean over real tokens).

Cached features. The body is frozen, so its output for an example does not change between epochs
or seeds: ``extract_features`` runs it once per (plan, task, split) - in length-sorted batches, so
batches carry little padding - and heads for every seed train on the cached (n, hidden) tensor.
The naive way (``features_of=body_features(...)``) re-runs the body on every training batch; both
go through the same ``train_head`` loop with the same batches, so they train the same head (up
to float rounding from different padding) - the tests and ``benchmarks/glue_probe.py`` check it.

Why a small torch loop and not ``Trainer`` for the head: a step is one (32 x hidden) matmul, so
Trainer's per-step machinery (accelerate wrapping, callbacks, dataloader workers, logging) would
cost orders of magnitude more than the step itself; a probe needs none of what Trainer brings
(distribution, mixed precision, resumable checkpoints - a head trains in well under a second).
The costly part, the body's forward, is batched inference. The loop is the same recipe Trainer
would run: AdamW, linear decay to 0 without warmup, shuffled batches, cross-entropy (MSE for STS-B).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from ..plans import Plan
from ..rewire import rewired
from .finetune import _hparams_from_dict
from .metrics import predictions_from_logits, score_split, task_score
from .modeling import pool
from .tasks import Task, get_task


@dataclass(frozen=True)
class ProbeHParams:
    """Paper settings for the probe (max length 128, batch 32, 3 epochs, lr 3e-2)."""

    learning_rate: float = 3e-2
    batch_size: int = 32
    epochs: int = 3
    max_length: int = 128
    weight_decay: float = 0.0
    extract_batch_size: int = 128
    pooling: str = "auto"

    @classmethod
    def from_dict(cls, d: dict | None, where: str = "probe") -> "ProbeHParams":
        return _hparams_from_dict(cls, d, where)


# ---- the body's features ------------------------------------------------------------------------
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def pad_batch(rows: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad token lists to the longest row (the same padding DataCollatorWithPadding makes)."""
    width = max(len(r["input_ids"]) for r in rows)
    out = {}
    for name in _INPUTS:
        if name not in rows[0]:
            continue
        fill = pad_id if name == "input_ids" else 0
        out[name] = torch.tensor([list(r[name]) + [fill] * (width - len(r[name])) for r in rows], dtype=torch.long)
    if "attention_mask" not in out:
        out["attention_mask"] = torch.tensor([[1] * len(r["input_ids"]) + [0] * (width - len(r["input_ids"]))
                                              for r in rows], dtype=torch.long)
    return out


def _rows(ds) -> list[dict]:
    cols = [c for c in _INPUTS if c in ds.column_names]
    data = ds.select_columns(cols).to_dict()
    return [dict(zip(cols, vals)) for vals in zip(*(data[c] for c in cols))]


def _pad_id(model) -> int:
    pad = getattr(model.config, "pad_token_id", None)
    return 0 if pad is None else int(pad)


@torch.no_grad()  # not inference_mode: the naive path trains a head on these tensors
def _body(model, rows: list[dict], pooling: str) -> torch.Tensor:
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in pad_batch(rows, _pad_id(model)).items()}
    out = model(**batch)
    return pool(out, batch["attention_mask"], pooling).float()


def extract_features(model, ds, plan: Plan | str, pooling: str, batch_size: int = 128,
                     progress: bool = False, desc: str = "features") -> torch.Tensor:
    """The frozen rewired body's pooled output for every row of ``ds``, in ``ds`` order (float32, CPU)."""
    from tqdm.auto import tqdm
    rows = _rows(ds)
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]["input_ids"]))
    out = None
    was_training = model.training
    model.eval()
    try:
        with rewired(model, plan):
            for start in tqdm(range(0, len(order), batch_size), desc=desc, leave=False, disable=not progress):
                idx = order[start:start + batch_size]
                feats = _body(model, [rows[i] for i in idx], pooling).cpu()
                if out is None:
                    out = torch.empty(len(rows), feats.shape[-1])
                out[torch.tensor(idx)] = feats
    finally:
        model.train(was_training)
    return out


def body_features(model, ds, plan: Plan | str, pooling: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The naive feature source: re-runs the rewired body on each batch it is asked for."""
    rows = _rows(ds)

    def features_of(idx: torch.Tensor) -> torch.Tensor:
        model.eval()
        with rewired(model, plan):
            return _body(model, [rows[i] for i in idx.tolist()], pooling).cpu()
    return features_of


# ---- the head -----------------------------------------------------------------------------------
def train_head(features_of: Callable[[torch.Tensor], torch.Tensor], labels: torch.Tensor, dim: int,
               task: Task, hp: ProbeHParams, seed: int) -> nn.Linear:
    """Train a linear head; ``features_of(indices)`` gives the features of those training rows."""
    g = torch.Generator().manual_seed(int(seed))
    head = nn.Linear(dim, task.num_labels)
    with torch.no_grad():
        head.weight.normal_(0.0, 0.02, generator=g)
        head.bias.zero_()
    n = len(labels)
    steps = math.ceil(n / hp.batch_size) * hp.epochs
    opt = torch.optim.AdamW(head.parameters(), lr=hp.learning_rate, weight_decay=hp.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1.0 - s / steps))
    loss_fn = nn.MSELoss() if task.is_regression else nn.CrossEntropyLoss()
    for _ in range(hp.epochs):
        perm = torch.randperm(n, generator=g)
        for start in range(0, n, hp.batch_size):
            idx = perm[start:start + hp.batch_size]
            logits = head(features_of(idx))
            y = labels[idx]
            loss = loss_fn(logits.squeeze(-1), y.float()) if task.is_regression else loss_fn(logits, y.long())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return head


def score_head(head: nn.Linear, task: Task, eval_features: dict[str, torch.Tensor],
               eval_labels: dict[str, torch.Tensor]) -> dict[str, float]:
    metrics = {}
    with torch.no_grad():
        for split, feats in eval_features.items():
            preds = predictions_from_logits(task, head(feats).numpy())
            metrics.update(score_split(task, split, preds, eval_labels[split].numpy()))
    return metrics


def labels_of(ds) -> torch.Tensor:
    return torch.tensor(ds["labels"])


def probe(model, plan: Plan | str, task: Task | str, train_ds, eval_sets: dict, hp: ProbeHParams,
          seeds, pooling: str, cache: dict | None = None, cache_key=None, naive: bool = False,
          progress: bool = False) -> dict[int, dict]:
    """Probe ``plan`` on one task for each seed; returns ``{seed: {metrics, score, time_s}}``.

    ``model`` is the bare encoder (``kind="encoder"``), frozen here. With ``naive=False`` the
    features are computed once (and kept in ``cache[cache_key + (split,)]`` when a cache is given,
    so later calls for the same plan reuse them); with ``naive=True`` the body runs on every batch
    of every epoch of every seed, and on the evaluation sets once per seed.
    """
    task = get_task(task) if isinstance(task, str) else task
    for p in model.parameters():
        p.requires_grad_(False)
    y_train = labels_of(train_ds)
    y_eval = {s: labels_of(d) for s, d in eval_sets.items()}
    results = {}

    def cached(split, ds):
        key = None if cache is None or cache_key is None else tuple(cache_key) + (split,)
        if key is not None and key in cache:
            return cache[key], 0.0
        t = time.perf_counter()
        feats = extract_features(model, ds, plan, pooling, hp.extract_batch_size, progress,
                                 desc=f"features {task.name}/{split}")
        if key is not None:
            cache[key] = feats
        return feats, time.perf_counter() - t

    if not naive:
        x_train, t_train = cached("train", train_ds)
        x_eval, t_eval = {}, 0.0
        for s, d in eval_sets.items():
            x_eval[s], dt = cached(s, d)
            t_eval += dt
        share = (t_train + t_eval) / max(1, len(list(seeds)))
    for seed in seeds:
        t = time.perf_counter()
        if naive:
            src = body_features(model, train_ds, plan, pooling)
            head = train_head(src, y_train, _dim(model), task, hp, seed)
            x_eval = {s: body_features(model, d, plan, pooling)(torch.arange(len(d))) for s, d in eval_sets.items()}
        else:
            head = train_head(lambda idx: x_train[idx], y_train, x_train.shape[1], task, hp, seed)
        metrics = score_head(head, task, x_eval, y_eval)
        elapsed = time.perf_counter() - t + (0.0 if naive else share)
        results[seed] = {"metrics": metrics, "score": task_score(task, metrics), "time_s": round(elapsed, 4),
                         "head": head}
    return results


def _dim(model) -> int:
    return int(model.config.hidden_size)
