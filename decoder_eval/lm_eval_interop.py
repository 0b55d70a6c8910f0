"""Hand a rewired model to stock lm-evaluation-harness, for any lm-eval task.

One line (``pip install lm_eval``; the plan is a Plan, plan text or a variant spec)::

    from decoder_eval.lm_eval_interop import lm_eval_evaluate
    results = lm_eval_evaluate(model, tokenizer, "skip:n=8", ["arc_easy", "piqa"], limit=100)

Any task name lm-eval knows runs as lm-eval defines it (on hub data). Our five benchmarks can
instead read our local JSON Lines files: pass ``data_dir=`` (or ``local=True`` for the default
folder) and the names ``lambada_openai``, ``arc_easy``, ``arc_challenge``, ``hellaswag``,
``winogrande``, ``gsm8k`` map to task YAMLs written next to a temporary folder that ``include`` the
stock YAML and change only where the documents come from (``local_task_yamls``). The
benchmark script and the ``real`` tests use this to compare our engine with stock lm-eval.

Why a context manager underneath (``rewired_lm``): lm-eval's ``HFLM`` wraps a model instance it is
handed; the plan is put on with ``glue_painters.rewire`` for the duration and taken off after, so
lm-eval runs the rewired model through the model's own forward and ``generate``.

lm-eval is an optional dependency (the ``test`` extra); this module imports it only when called.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

from glue_painters.errors import UserError
from glue_painters.plans import Plan
from glue_painters.rewire import num_layers, rewired
from glue_painters.variants import resolve

from .data import resolve_data_dir
from .tasks import TASKS, get_task, hellaswag_preprocess


def _lm_eval():
    try:
        import lm_eval
    except ImportError:
        raise UserError("stock lm-eval is not installed: pip install 'lm_eval>=0.4' "
                        "(or pip install -e '.[test]')") from None
    return lm_eval


@contextlib.contextmanager
def rewired_lm(model, tokenizer, plan: Plan | str | None = None, batch_size: int = 16, **hflm_kwargs) -> Iterator:
    """``with rewired_lm(model, tok, "skip:n=8") as lm: lm_eval.simple_evaluate(model=lm, ...)``."""
    _lm_eval()
    from lm_eval.models.huggingface import HFLM

    if plan is None:
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, **hflm_kwargs)
        yield lm
        return
    plan = plan if isinstance(plan, Plan) else resolve(plan, num_layers(model))
    with rewired(model, plan):
        yield HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, **hflm_kwargs)


# ---- our local files as lm-eval tasks ------------------------------------------------------------
def arc_docs(dataset):
    """process_docs: original ARC JSONL records -> the hub's ``allenai/ai2_arc`` shape."""
    def convert(doc):
        q = doc["question"]
        return {"id": doc["id"], "question": q["stem"], "answerKey": doc["answerKey"],
                "choices": {"text": [c["text"] for c in q["choices"]], "label": [c["label"] for c in q["choices"]]}}

    return dataset.map(convert, remove_columns=dataset.column_names)


def hellaswag_docs(dataset):
    """process_docs: the offline pre-joined HellaSwag records, cleaned with lm-eval's preprocess."""
    def convert(doc):
        return {"query": hellaswag_preprocess(doc["query"]),
                "choices": [hellaswag_preprocess(e) for e in doc["endings"]], "label": int(doc["label"])}

    return dataset.map(convert)


_SPLIT_KEYS = ("training_split", "validation_split", "test_split", "fewshot_split")
# Where lm-eval 0.4 keeps the stock YAMLs (inside its package); looked up in its task index if moved.
_STOCK_YAML = {"lambada_openai": "lambada/lambada_openai.yaml", "arc_easy": "arc/arc_easy.yaml",
               "arc_challenge": "arc/arc_challenge.yaml", "hellaswag": "hellaswag/hellaswag.yaml",
               "winogrande": "winogrande/default.yaml", "gsm8k": "gsm8k/gsm8k.yaml"}


def _stock_yaml(name: str) -> Path:
    lm_eval = _lm_eval()
    path = Path(lm_eval.__file__).parent / "tasks" / _STOCK_YAML[name]
    if path.is_file():
        return path
    from lm_eval.tasks import TaskManager  # indexes every task: slow, so only as a fallback

    return Path(TaskManager().task_index[name].yaml_path)


def local_task_yamls(out_dir: str | Path, data_dir=None, tasks: Sequence[str] = tuple(TASKS)) -> dict[str, str]:
    """Write one lm-eval task YAML per task into ``out_dir``; returns ``{our name: lm-eval name}``.

    Each YAML ``include``s the stock task and overrides only the data: ``dataset_path: json`` over
    our files, the splits renamed to match, and (ARC, HellaSwag) a ``process_docs`` that turns
    our record shape into the one the stock prompts expect.
    """
    import yaml

    where = resolve_data_dir(data_dir)
    if where == "hub":
        raise UserError("local_task_yamls needs a local data folder, not 'hub'")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = {}
    for name in tasks:
        task = get_task(name)
        stock = _stock_yaml(name)
        files = {"eval": str(Path(where) / task.split.local)}
        if task.fewshot_split is not None:
            files["train"] = str(Path(where) / task.fewshot_split.local)
        for path in files.values():
            if not Path(path).is_file():
                raise UserError(f"data file {path} not found")
        eval_key = "validation_split" if task.split.hub_split == "validation" else "test_split"
        cfg = {"include": str(stock), "task": f"painters_{name}", "tag": [],
               "dataset_path": "json", "dataset_name": None, "dataset_kwargs": {"data_files": files},
               **{k: None for k in _SPLIT_KEYS}, eval_key: "eval"}
        if task.fewshot_split is not None:
            cfg.update(training_split="train", fewshot_split="train")
        text = yaml.safe_dump(cfg, sort_keys=False)
        if name in ("arc_easy", "arc_challenge"):
            text += "process_docs: !function decoder_eval.lm_eval_interop.arc_docs\n"
        elif name == "hellaswag":
            text += "process_docs: !function decoder_eval.lm_eval_interop.hellaswag_docs\n"
        (out_dir / f"painters_{name}.yaml").write_text(text)
        names[name] = f"painters_{name}"
    return names


def lm_eval_evaluate(model, tokenizer, plan: Plan | str | None, tasks: Sequence[str], *, limit=None,
                     data_dir=None, local: bool = False, batch_size: int = 16, **simple_evaluate_kwargs) -> dict:
    """Run stock ``lm_eval.simple_evaluate`` on ``model`` under ``plan``; returns lm-eval's result
    dict. With ``data_dir``/``local``, our five task names read our local files (results are
    still keyed by our names)."""
    lm_eval = _lm_eval()
    from lm_eval.tasks import TaskManager

    simple_evaluate_kwargs.setdefault("bootstrap_iters", 0)
    with tempfile.TemporaryDirectory(prefix="painters-lm-eval-") as tmp, \
            rewired_lm(model, tokenizer, plan, batch_size=batch_size) as lm:
        if data_dir is not None or local:
            mapping = local_task_yamls(tmp, data_dir, [t for t in tasks if t in TASKS])
            # index only our YAMLs unless a stock task is asked for too (indexing all is slow)
            manager = TaskManager(include_path=tmp, include_defaults=any(t not in mapping for t in tasks))
        else:
            mapping, manager = {}, TaskManager()
        names = [mapping.get(t, t) for t in tasks]
        out = lm_eval.simple_evaluate(model=lm, tasks=names, limit=limit, task_manager=manager,
                                      **simple_evaluate_kwargs)
    back = {v: k for k, v in mapping.items()}
    for section in ("results", "samples", "configs", "n-samples", "higher_is_better", "versions"):
        if isinstance(out.get(section), dict):
            out[section] = {back.get(k, k): v for k, v in out[section].items()}
    return out


def seed_like_simple_evaluate(loaded: dict, seed: int = 1234) -> None:
    """Apply to tasks loaded by a ``TaskManager`` what ``lm_eval.simple_evaluate`` applies before it
    calls ``evaluate``: a default ``num_fewshot`` of 0 and the few-shot sampler's seed. Why: a caller
    that skips ``simple_evaluate`` (to time ``evaluate`` alone) otherwise samples other few-shot
    examples than stock lm-eval - and, the sampler's generator running on, other ones again for
    every later ``evaluate`` on the same tasks. Call it before each ``evaluate``."""
    tasks = loaded.get("tasks", loaded) if isinstance(loaded, dict) else loaded
    for task in tasks.values():
        if task.get_config("num_fewshot") is None:
            task.set_config(key="num_fewshot", value=0)
        task.set_fewshot_seed(seed=seed)


def prompt_mismatches(ours: dict, stock_samples: dict) -> list[str]:
    """Where stock lm-eval's requests (``samples[task][i]["arguments"]``) differ from ours
    (``{task: TaskData}``): one line per differing document, empty when every prompt is equal."""
    out = []
    for task, samples in stock_samples.items():
        items = {it.index: it for it in ours[task].items}
        for sample in samples:
            item = items.get(sample["doc_id"])
            if item is None:
                out.append(f"{task} doc {sample['doc_id']}: not among ours")
                continue
            theirs = [a[0] if isinstance(a, (list, tuple)) else a for a in sample["arguments"]]
            mine = [getattr(r, "context", getattr(r, "text", None)) for r in item.requests]
            if theirs != mine:
                out.append(f"{task} doc {sample['doc_id']}: prompts differ")
    return out
