"""Shared helpers for the report tests (no tests here): results stores built from hand-made records,
written by the tracks' own record writers (``decoder_eval.sweep.save_result`` and
``glue_eval.records.make_record`` / ``key_fields``), so the report reads exactly what the
sweeps write.

Why designed numbers: each of the paper's claims gets a known answer. The decoder store is made
so every claim holds (a 10-layer model; the quality q of a variant falls with the middle size m);
the GLUE store is made so several do not (parallel below skip, middle_repeat not the lowest), so
the decision rules are exercised both ways.

Per-document scores (what the paired intervals resample) are designed too. Decoder: document d of
a plan scores ``score + difficulty_d + noise_{plan,d}``, both terms of mean exactly 0 over the
documents, so each record's metric is exactly its designed score and the documents' shared
difficulty is what pairing removes; ``noise`` sets how far plans disagree document by document (a
large one makes a small designed effect undecidable). GLUE: labels fixed per task, and each plan
answers correctly the rows that are easiest for it (a shared difficulty plus its own jitter),
as many as its designed score says. ``per_item=False`` writes a store as older versions did, with
no per-document scores.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from glue_painters.results import ResultsStore
from glue_painters.variants import n_range

DEC_T = 10
DEC_TASKS = {  # task: (primary, chance, full, stderr, speed of degradation)
    "lambada_openai": ("acc", 0.0, 0.60, 0.01, 1.0),
    "arc_easy": ("acc", 0.25, 0.70, 0.01, 1.6),
    "hellaswag": ("acc_norm", 0.25, 0.50, 0.01, 0.8),
    "gsm8k": ("exact_match", 0.0, 0.01, 0.01, 1.0),  # full model at chance: flagged
}
K_VALUES = (2, 3, 4)


def decoder_quality(variant: str, n: int | None, T: int = DEC_T, k: int | None = None, seed: int | None = None,
                    i: int | None = None) -> float:
    """The designed normalized median of a plan (see the module docstring)."""
    if variant == "full":
        return 1.0
    if variant == "skip_one":
        return 0.2 if i in (0, T - 1) else 0.95
    if variant == "switch":
        return 0.4 if i == 0 else 0.97
    m = T - 2 * n - 1
    if variant == "looped_parallel":
        kopt = m / 3
        return 1 - 0.07 * m - 0.01 * (k - kopt) ** 2 + 0.05
    if variant == "parallel":
        return 1 - 0.07 * m - 0.01 * (1 - m / 3) ** 2
    slope = {"skip": 0.09, "middle_repeat": 0.12, "reverse": 0.085, "random": 0.05}[variant]
    noise = 0.0 if seed is None else 0.01 * (seed - 1)
    return 1 - slope * m + noise


def _glue_spec(v, n, k, seed):
    """The GLUE sweep's row: a variant (random's permutation = the training seed) or a plan (k)."""
    from glue_painters.variants import VariantSpec

    if v is None:
        return VariantSpec.parse(k)
    params = {} if v == "full" else {"n": n, **({"k": k} if v == "looped_parallel" else {}),
                                      **({"seed": seed} if v == "random" else {})}
    return VariantSpec.of(v, **params)


def _specs(T: int):
    from decoder_eval.sweep import PlanSpec
    from glue_painters.variants import VariantSpec

    def spec(variant, **params):
        return PlanSpec.of(VariantSpec.of(variant, **params), T)

    out = [spec("full")]
    for n in n_range(T):
        for v in ("skip", "middle_repeat", "reverse", "parallel"):
            out.append(spec(v, n=n))
        for seed in range(3):
            out.append(spec("random", n=n, seed=seed))
        for k in K_VALUES:
            out.append(spec("looped_parallel", n=n, k=k))
    for i in range(T):
        out.append(spec("skip_one", i=i))
    for i in range(T - 1):
        out.append(spec("switch", i=i))
    return out


DOCS = 200


def _doc_scores(score: float, task: str, plan: str, noise: float, n: int = DOCS) -> list[float]:
    """``n`` per-document scores of mean exactly ``score`` (see the module docstring)."""
    import zlib

    import numpy as np

    shared = np.random.default_rng(zlib.crc32(task.encode())).normal(0, 0.3, n)
    own = np.random.default_rng(zlib.crc32(f"{task}/{plan}".encode())).normal(0, noise, n)
    return list(score + (shared - shared.mean()) + (own - own.mean()))


def write_decoder_store(root: Path, model: str = "tinyllama", tasks=tuple(DEC_TASKS), quality=decoder_quality,
                        per_item: bool = True, noise: float = 0.05) -> int:
    """A decoder store with every variant of a 10-layer model; returns the number of records."""
    import decoder_eval.sweep as sweep
    from decoder_eval.evaluate import TaskResult
    from decoder_eval.sweep import key_fields, save_result

    # versions() runs git and imports transformers for every record; its answer cannot change
    # within one call, so compute it once (the records are byte-for-byte what the sweep writes)
    original, fixed = sweep.versions, sweep.versions()
    sweep.versions = lambda: fixed
    try:
        return _write_decoder(root, model, tasks, quality, TaskResult, key_fields, save_result, per_item, noise)
    finally:
        sweep.versions = original


def _write_decoder(root, model, tasks, quality, TaskResult, key_fields, save_result, per_item, noise) -> int:
    store = ResultsStore(root)
    count = 0
    for spec in _specs(DEC_T):
        p = spec.param_dict
        q = quality(spec.variant, p.get("n"), DEC_T, p.get("k"), p.get("seed"), p.get("i"))
        for task in tasks:
            primary, chance, full, se, speed = DEC_TASKS[task]
            norm = 1 - (1 - q) * speed
            score = chance + norm * (full - chance)
            docs = [{primary: x} for x in _doc_scores(score, task, spec.plan.text, noise)] if per_item else []
            result = TaskResult(task=task, metrics={primary: score}, stderr={primary: se}, chance=chance,
                                primary=primary, n=DOCS, per_item=docs, seconds=2.0)
            key = key_fields("weights:fixture", spec, task, {"split": "test", "data": "x", "n": DOCS, "limit": None},
                             "float32")
            save_result(store, key, spec, result, model_name=model, config={"source": "fixture.yaml", "model": model})
            count += 1
    return count


GLUE_T = 6
GLUE_TASKS = {"rte": 51.0 + 16, "sst2": 91.0, "cola": 40.0, "wnli": 50.0}  # full-model scores; wnli at chance


def glue_quality(variant: str, n: int | None, T: int = GLUE_T, k: int | None = None, seed: int = 0) -> float:
    """Contrary to the paper on purpose: parallel below skip, middle_repeat above reverse."""
    if variant == "full":
        return 1.0
    m = T - 2 * n - 1
    slope = {"skip": 0.08, "middle_repeat": 0.05, "reverse": 0.09, "random": 0.06, "parallel": 0.11,
             "looped_parallel": 0.10}[variant]
    return 1 - slope * m + 0.005 * seed


def write_glue_store(root: Path, model: str = "tinybert", modes=("finetune", "probe"), seeds=(0, 1),
                     variants=("skip", "middle_repeat", "reverse", "random", "parallel", "looped_parallel"),
                     tasks=tuple(GLUE_TASKS), plans=(), data=None, legacy: bool = False, per_item: bool = True,
                     quality=None) -> int:
    """One record per label, as the sweep writes them; ``legacy``: as sweeps wrote them before
    records were per label (keyed by plan, one record per plan under its first label)."""
    from glue_eval.records import key_fields, make_record, plan_key, relabel
    from glue_eval.runs import RunSpec

    store = ResultsStore(root)
    count = 0
    computed = {}  # plan key -> the record of its first label: labels that build one plan share its result
    shapes = [("full", None, None)] + [(v, n, 3 if v == "looped_parallel" else None)
                                        for v in variants for n in n_range(GLUE_T)]
    from painters.report.data import glue_chance

    shapes += [(None, None, p) for p in plans]  # custom plans as the sweep's ``plans:`` (specs or text)
    for mode in modes:
        for task in tasks:
            full = GLUE_TASKS[task]
            for v, n, k in shapes:
                for seed in seeds:
                    spec = RunSpec.of(model, _glue_spec(v, n, k, seed), task, mode, seed)
                    plan = spec.plan(GLUE_T)
                    chance = glue_chance(task)
                    q = (quality or glue_quality)(v, n, GLUE_T, k, seed) if v is not None else \
                        (0.3 if plan.text.startswith("1-") else 0.9)  # skipping layer 0 hurts most
                    score = chance + q * (full - chance) if task != "wnli" else 50.0 - 1.0 * (seed % 2)
                    td = SimpleNamespace(sizes={"train": 100, "validation": 71 if task == "wnli" else 277})
                    res = {"metrics": {"accuracy": score / 100}, "score": score}
                    if per_item:
                        res |= _glue_rows(task, score, plan.text, seed, td.sizes["validation"])
                    rec = make_record(spec, plan, model, td.sizes, res, {"time_s": 1.0})
                    parts = ("fp:fixture", plan, spec, {"lr": 1e-3, "mode": mode}, {"train": 100, "eval": None, "seed": 0},
                             (data or {}).get(task, {"train": "sha"}))
                    first = computed.setdefault(json.dumps(plan_key(*parts), sort_keys=True), rec)
                    rec = relabel(first, spec)
                    kf = (plan_key if legacy else key_fields)(*parts)
                    if not store.has("glue", kf):  # legacy: a plan ran once, under its first label
                        store.put("glue", kf, rec)
                        count += 1
    return count


def _glue_rows(task: str, score: float, plan: str, seed: int, n: int) -> dict:
    """Row predictions and labels whose accuracy (CoLA: (1 + MCC) / 2) is the designed score."""
    import zlib

    import numpy as np

    labels = np.arange(n) % 2
    acc = (1 + score / 100) / 2 if task == "cola" else score / 100
    easy = np.random.default_rng(zlib.crc32(task.encode())).random(n)
    jitter = np.random.default_rng(zlib.crc32(f"{task}/{plan}/{seed}".encode())).random(n)
    right = np.zeros(n, bool)
    right[np.argsort(easy + 0.1 * jitter)[:round(acc * n)]] = True
    return {"predictions": {"validation": np.where(right, labels, 1 - labels)}, "labels": {"validation": labels}}


def write_similarity(folder: Path, model: str = "tinyllama", size: int = 11, docs: int = 12) -> Path:
    """A similarity report shaped like ``similarity.save``'s: a uniform middle 1..size-3, with
    per-document sums (documents of 10 tokens each: the matrix, its middle block ± 0.02)."""
    import json

    import numpy as np

    from glue_painters.similarity import segments

    mid = range(1, size - 2)
    matrix = [[1.0 if i == j else (0.9 if i in mid and j in mid else 0.3) for j in range(size)] for i in range(size)]
    inside = np.array([[float(i in mid and j in mid and i != j) for j in range(size)] for i in range(size)])
    iu = np.triu_indices(size)
    sums = [((np.array(matrix) + 0.02 * (1 if d % 2 else -1) * inside) * 10)[iu].round(6).tolist() for d in range(docs)]
    path = Path(folder) / f"similarity_{model}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"matrix": matrix, "groups": segments(matrix, 3), "plan": f"0-{size - 2}",
                                "model": model, "n_tokens": 10 * docs, "n_docs": docs, "boundaries": size,
                                "per_document": {"tokens": [10] * docs, "sums": sums}}))
    return path
