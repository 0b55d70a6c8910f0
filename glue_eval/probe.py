"""Head-only probing: the rewired body frozen, a linear head trained on its pooled output.

Pooling: see ``modeling.choose_pooling`` (default ``auto``: the pooling the checkpoint was trained
with, else its pretrained pooler, else the mean over real tokens).

Cached features. The body is frozen, so its output for an example does not change between epochs
or seeds: the body runs once per (plan, task) over the rows of all splits together - in
length-sorted batches, so batches carry little padding - and heads for every seed train on the
cached (n, hidden) tensors. Across a sweep, ``fill_feature_cache`` computes the features of all the
plans of a task in one pass, walking the plans as a trie (``glue_painters.prefix_share``, shared
with the decoder track): the hidden state after the first layers that plans have in common is
computed once per batch and handed to each branch. All seeds' heads train at once
(``train_heads``: one batched matmul over stacked heads, each seed with its own init, batches and
gradient). The naive way (``naive=True``: ``body_features`` re-runs the body on every training
batch, one seed after the other, ``train_head``) trains the same heads on the same batches (up to
float rounding from different padding) - the tests and ``benchmarks/glue_probe.py`` check it.

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
from typing import Callable

import torch
from torch import nn

from glue_painters.plans import Plan
from glue_painters.rewire import rewired
from .hparams import ProbeHParams
from .metrics import predictions_from_logits, score_split, task_score
from .modeling import pool
from .tasks import Task, get_task


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


def _length_batches(lengths: list[int], max_rows: int, pad_budget: int = 8) -> list[list[int]]:
    """Row indices in length order, cut into batches of at most ``max_rows`` with little padding:
    a new batch starts when taking the next (longer) row would add more than ``pad_budget`` pad
    tokens to the rows already in the batch, so rows of one length share a batch and a jump in
    length starts a new one. The body is compute-bound (a profile of a MiniLM probe sweep on CPU:
    85% of the time in the layers' matmuls, per-call overhead negligible), so padding is what
    costs: on 160 SST-2 rows, budget 8 pads 4% (17 batches), 32 pads 20% (6 batches) and takes
    ~12% more CPU time, a fixed 128 rows per batch pads ~90%."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches, cur = [], []
    for i in order:
        if cur and (len(cur) >= max_rows or (lengths[i] - lengths[cur[-1]]) * len(cur) > pad_budget):
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    return batches


def extract_plan_features(model, datasets: dict, plans, pooling: str, batch_size: int = 128,
                          share: bool = True, progress: bool = False,
                          desc: str = "features") -> dict[str, dict[str, torch.Tensor]]:
    """The frozen rewired body's pooled output under each of ``plans`` for every row of every
    dataset in ``datasets`` (``{split: ds}``): ``{plan.text: {split: (len(ds), hidden) float32 CPU}}``,
    rows in dataset order.

    The rows of all splits go through the body together, in length-sorted batches (little
    padding). With ``share`` the plans are walked as a trie (``glue_painters.prefix_share``): on
    each batch the hidden state after a prefix of layers that several plans share is computed
    once and handed to each branch. A batch's rows and padding are the same for every plan, so a
    plan's features are bit for bit what it gives run alone on that batch (tested)."""
    from tqdm.auto import tqdm
    from glue_painters.prefix_share import PlanTrie, run_from
    plans = [Plan.parse(p) if isinstance(p, str) else p for p in plans]
    splits = list(datasets)
    rows, where = [], []
    for split in splits:
        for j, r in enumerate(_rows(datasets[split])):
            rows.append(r)
            where.append((split, j))
    out = {p.text: {s: None for s in splits} for p in plans}
    trie = PlanTrie(plans, share=share)
    device = next(model.parameters()).device
    pad_id = _pad_id(model)
    was_training = model.training
    model.eval()
    try:
        for idx in tqdm(_length_batches([len(r["input_ids"]) for r in rows], batch_size), desc=desc,
                        leave=False, disable=not progress):
            batch = {k: v.to(device) for k, v in pad_batch([rows[i] for i in idx], pad_id).items()}
            by_split: dict[str, tuple[list[int], list[int]]] = {}
            for pos, i in enumerate(idx):  # batch position -> (split, row in that split)
                split, j = where[i]
                by_split.setdefault(split, ([], []))[0].append(pos)
                by_split[split][1].append(j)

            def store(text, feats):
                feats = feats.cpu()
                for split, (pos, js) in by_split.items():
                    dest = out[text][split]
                    if dest is None:
                        dest = out[text][split] = torch.empty(len(datasets[split]), feats.shape[-1])
                    dest[torch.tensor(js)] = feats[torch.tensor(pos)]

            with torch.no_grad():  # not inference_mode: the naive path trains a head on these tensors
                if not share:
                    for plan in plans:
                        with rewired(model, plan):
                            store(plan.text, pool(model(**batch), batch["attention_mask"], pooling).float())
                    continue

                def run_edge(segment, hidden, capture):
                    res, state = run_from(model, segment, hidden, capture, lambda: model(**batch))
                    return pool(res, batch["attention_mask"], pooling).float(), state

                trie.walk(run_edge, store)
    finally:
        model.train(was_training)
    for per_split in out.values():  # an empty split
        for split, x in per_split.items():
            if x is None:
                per_split[split] = torch.empty(0, _dim(model))
    return out


def extract_features(model, ds, plan: Plan | str, pooling: str, batch_size: int = 128,
                     progress: bool = False, desc: str = "features") -> torch.Tensor:
    """The frozen rewired body's pooled output for every row of ``ds``, in ``ds`` order (float32, CPU)."""
    plan = Plan.parse(plan) if isinstance(plan, str) else plan
    return extract_plan_features(model, {"rows": ds}, [plan], pooling, batch_size, share=False,
                                 progress=progress, desc=desc)[plan.text]["rows"]


def fill_feature_cache(cache: dict, model, plans, task_name: str, datasets: dict, pooling: str,
                       batch_size: int = 128, share: bool = True, progress: bool = False) -> float:
    """Put the features of every plan in ``plans`` missing from ``cache`` there, under
    ``(plan.hash, task_name, split)``, computed together (shared prefixes once, see
    ``extract_plan_features``). Each plan's share of the time goes under
    ``(plan.hash, task_name, "_time_s")``. Returns the seconds spent."""
    todo = {}
    for p in plans:
        p = Plan.parse(p) if isinstance(p, str) else p
        if any((p.hash, task_name, s) not in cache for s in datasets):
            todo.setdefault(p.text, p)
    if not todo:
        return 0.0
    t = time.perf_counter()
    feats = extract_plan_features(model, datasets, list(todo.values()), pooling, batch_size, share=share,
                                  progress=progress, desc=f"features {task_name} ({len(todo)} plans)")
    elapsed = time.perf_counter() - t
    for text, p in todo.items():
        for split, x in feats[text].items():
            cache[(p.hash, task_name, split)] = x
        cache[(p.hash, task_name, "_time_s")] = elapsed / len(todo)
    return elapsed


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
               task: Task, hp: ProbeHParams, seed: int, losses: list | None = None) -> nn.Linear:
    """Train a linear head; ``features_of(indices)`` gives the features of those training rows.
    ``losses``, when given, gets each epoch's mean training loss (over rows)."""
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
        total = 0.0
        for start in range(0, n, hp.batch_size):
            idx = perm[start:start + hp.batch_size]
            logits = head(features_of(idx))
            y = labels[idx]
            loss = loss_fn(logits.squeeze(-1), y.float()) if task.is_regression else loss_fn(logits, y.long())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        if losses is not None:
            losses.append(total / max(1, n))
    return head


def train_heads(features_of: Callable[[torch.Tensor], torch.Tensor], labels: torch.Tensor, dim: int,
                task: Task, hp: ProbeHParams, seeds, losses: list | None = None) -> list[nn.Linear]:
    """``train_head`` for several seeds at once: the heads stacked into one (seeds, labels, dim)
    weight, every step one batched matmul over all seeds' batches. Each seed keeps its own
    generator (init, then one permutation per epoch, drawn in the same order as ``train_head``),
    and the loss is the sum of the seeds' mean losses, so each head gets exactly its own gradient
    and AdamW (elementwise) updates it as it would alone: the result equals ``train_head`` per
    seed up to float rounding of the batched matmul (tested). ``features_of(idx)`` takes a
    (seeds, batch) index tensor and returns (seeds, batch, dim). ``losses``, when given, gets
    each epoch's mean training loss of every seed (a list per epoch, in ``seeds`` order), the
    curve a W&B run of the probe shows."""
    seeds = [int(s) for s in seeds]
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    k, c = len(seeds), task.num_labels
    weight = torch.empty(k, c, dim)
    bias = torch.zeros(k, c)
    for i, g in enumerate(gens):
        weight[i].normal_(0.0, 0.02, generator=g)
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    n = len(labels)
    steps = math.ceil(n / hp.batch_size) * hp.epochs
    opt = torch.optim.AdamW([weight, bias], lr=hp.learning_rate, weight_decay=hp.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1.0 - s / steps))
    for _ in range(hp.epochs):
        perms = torch.stack([torch.randperm(n, generator=g) for g in gens])
        total = torch.zeros(k)
        for start in range(0, n, hp.batch_size):
            idx = perms[:, start:start + hp.batch_size]  # (seeds, batch)
            logits = torch.baddbmm(bias.unsqueeze(1), features_of(idx), weight.transpose(1, 2))
            y = labels[idx]
            if task.is_regression:
                per_seed = (logits.squeeze(-1) - y.float()).pow(2).mean(dim=1)
            else:
                per_seed = nn.functional.cross_entropy(logits.reshape(-1, c), y.reshape(-1).long(),
                                                       reduction="none").view(k, -1).mean(dim=1)
            loss = per_seed.sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += per_seed.detach() * idx.shape[1]
        if losses is not None:
            losses.append((total / max(1, n)).tolist())
    heads = []
    for i in range(k):
        head = nn.Linear(dim, c)
        with torch.no_grad():
            head.weight.copy_(weight[i])
            head.bias.copy_(bias[i])
        heads.append(head)
    return heads


def score_head(head: nn.Linear, task: Task, eval_features: dict[str, torch.Tensor],
               eval_labels: dict[str, torch.Tensor], predictions: dict | None = None) -> dict[str, float]:
    """The head's metrics per evaluation split; each row's prediction goes to ``predictions[split]``
    when a dict is given (records keep them, for paired comparisons)."""
    metrics = {}
    with torch.no_grad():
        for split, feats in eval_features.items():
            preds = predictions_from_logits(task, head(feats).numpy())
            metrics.update(score_split(task, split, preds, eval_labels[split].numpy()))
            if predictions is not None:
                predictions[split] = preds
    return metrics


def labels_of(ds) -> torch.Tensor:
    return torch.tensor(ds["labels"])


def probe(model, plan: Plan | str, task: Task | str, train_ds, eval_sets: dict, hp: ProbeHParams,
          seeds, pooling: str, cache: dict | None = None, cache_key=None, naive: bool = False,
          progress: bool = False) -> dict[int, dict]:
    """Probe ``plan`` on one task for each seed; returns ``{seed: {metrics, score, predictions,
    labels, time_s, head, train_losses}}`` (predictions and labels per evaluation split, one per row;
    ``train_losses``: the head's mean training loss per epoch).

    ``model`` is the bare encoder (``kind="encoder"``), frozen here. With ``naive=False`` the
    features are computed once (and kept in ``cache[cache_key + (split,)]`` when a cache is given,
    so later calls for the same plan reuse them; ``fill_feature_cache`` fills it for many plans at
    once, sharing their common prefixes) and every seed's head trains at once (``train_heads``);
    with ``naive=True`` the body runs on every batch of every epoch of every seed, and on the
    evaluation sets once per seed, one seed after the other.
    """
    task = get_task(task) if isinstance(task, str) else task
    for p in model.parameters():
        p.requires_grad_(False)
    y_train = labels_of(train_ds)
    y_eval = {s: labels_of(d) for s, d in eval_sets.items()}
    results = {}
    seeds = [int(s) for s in seeds]
    plan = Plan.parse(plan) if isinstance(plan, str) else plan
    if not naive:
        keyed = cache is not None and cache_key is not None
        store, base = (cache, tuple(cache_key)) if keyed else ({}, ())
        splits = {"train": train_ds, **eval_sets}
        missing = {s: d for s, d in splits.items() if base + (s,) not in store}
        t_feat = 0.0 if missing else store.get(base + ("_time_s",), 0.0)  # share of a shared extraction
        if missing:
            t = time.perf_counter()
            feats = extract_plan_features(model, missing, [plan], pooling, hp.extract_batch_size, share=False,
                                          progress=progress, desc=f"features {task.name}")[plan.text]
            store.update({base + (s,): x for s, x in feats.items()})
            t_feat = time.perf_counter() - t
        x_train = store[base + ("train",)]
        x_eval = {s: store[base + (s,)] for s in eval_sets}
        t, losses = time.perf_counter(), []
        heads = train_heads(lambda idx: x_train[idx], y_train, x_train.shape[1], task, hp, seeds, losses)
        share = (t_feat + time.perf_counter() - t) / max(1, len(seeds))
        for i, (seed, head) in enumerate(zip(seeds, heads)):
            t = time.perf_counter()
            preds: dict = {}
            metrics = score_head(head, task, x_eval, y_eval, preds)
            results[seed] = {"metrics": metrics, "score": task_score(task, metrics), "predictions": preds,
                             "labels": y_eval, "time_s": round(time.perf_counter() - t + share, 4), "head": head,
                             "train_losses": [epoch[i] for epoch in losses]}
        return results
    for seed in seeds:
        t, losses = time.perf_counter(), []
        src = body_features(model, train_ds, plan, pooling)
        head = train_head(src, y_train, _dim(model), task, hp, seed, losses)
        x_eval = {s: body_features(model, d, plan, pooling)(torch.arange(len(d))) for s, d in eval_sets.items()}
        preds: dict = {}
        metrics = score_head(head, task, x_eval, y_eval, preds)
        results[seed] = {"metrics": metrics, "score": task_score(task, metrics), "predictions": preds,
                         "labels": y_eval, "time_s": round(time.perf_counter() - t, 4), "head": head,
                         "train_losses": losses}
    return results


def _dim(model) -> int:
    return int(model.config.hidden_size)
