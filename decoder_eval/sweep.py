"""Sweeps: a YAML config -> plans -> one results record per (plan, task), resumable.

A config (``configs/decoder/*.yaml``, read by ``decoder_eval.config`` in the grammar both tracks
share, ``glue_painters.sweep_config``) names a model, the grid of variants and the tasks. Every
option is checked before any model work, and every plan before any record is written.

Records live in ``glue_painters.results.ResultsStore`` under track ``decoder``, one per
(model fingerprint, plan hash, variant and its parameters, task, data subset, dtype, healed,
scoring version). A re-run skips the records it finds; since each record is written atomically
after its task's pass, a sweep killed anywhere resumes with no record lost or duplicated. With
``log_samples`` the per-item outputs go to a JSON Lines file next to the record, written
(atomically) before the record itself, so a record always has its samples.

The loop is the library's (``glue_painters.sweep.run_steps``, the GLUE track's too): pending (plan,
task) pairs, shared across processes, evaluated, records. Under ``accelerate launch`` or torchrun
every process reads the store, waits for the others, then evaluates its own share of the pending
pairs (``share_work`` over ``prefix_groups``, the same split computed independently by every
process) and writes those records alone; after a last wait each returns the whole sweep. One
process alone makes no process group.

With ``holdout:`` (``decoder_eval.holdout``) each task's documents are split before anything is
scored; the rows run on the scan part, then the full model and the scan's winners (per task, and
across tasks) on the held-out part, in a second round of the same loop (so it resumes and splits
across processes the same way). The part is in every record's key (``subset.selection``) and shown
as its ``split`` (``scan``, ``holdout``; ``all`` without a split).

LoRA healing (``decoder_eval/heal.py``, later) evaluates its own model per plan with
``evaluate.evaluate_plan(s)`` and stores each result with ``save_result(..., healed=True,
heal={...its settings...})``; the summary then shows healed and frozen results as separate tables.
"""

from __future__ import annotations

import json
import platform
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from glue_painters import __version__ as painters_version
from glue_painters.errors import UserError
from glue_painters.holdout import Pick
from glue_painters.per_item import compact as compact_per_item
from glue_painters.models.aliases import identity
from glue_painters.plans import Plan
from glue_painters.processes import process_state, share_work
from glue_painters.results import ResultsStore, atomic_write_text, record_key
from glue_painters.rewire import num_layers
from glue_painters.sweep import SweepOutcome, Steps, model_fingerprint, run_steps  # noqa: F401 - SweepOutcome: re-exported
from glue_painters.tracking import Tracker, run_config, run_group
from glue_painters.upstream import warn_untested
from glue_painters.variants import VariantSpec

from .config import (CONFIG_KEYS, DEFAULT_TASKS, PAPER_VARIANTS, DecoderSweepConfig, PlanSpec,  # noqa: F401 - re-exported
                     SweepConfig, expand, load_config, parse_config)
from .evaluate import Evaluator, TaskResult, load_tasks
from .holdout import choose, part_of, split_tasks
from .tasks import TaskData

TRACK = "decoder"
# Bump when request building or scoring changes what a record means (old records then no
# longer match and are recomputed); unrelated code changes keep records valid.
SCORING_VERSION = "1"


# ---- records -------------------------------------------------------------------------------------
def key_fields(model_fp: str, spec: PlanSpec, task: str, subset: dict, dtype: str,
               healed: bool = False, heal: dict | None = None) -> dict:
    params = spec.param_dict
    return {"model": model_fp, "plan": spec.plan.hash, "variant": spec.variant, "params": params,
            "seed": params.get("seed"), "task": task, "subset": subset, "dtype": dtype,
            "healed": healed, "heal": heal, "code": SCORING_VERSION}


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or None
    except Exception:
        return None


def versions() -> dict:
    import torch
    import transformers

    # threads: torch's CPU kernels split reductions by thread count, so perplexity can move in the
    # 6th digit with it (accuracies do not); recorded, not keyed, so a re-run on another machine
    # reuses the records and a reader can still see why a digit differs.
    return {"glue_painters": painters_version, "scoring": SCORING_VERSION, "torch": torch.__version__,
            "transformers": transformers.__version__, "python": platform.python_version(), "git": _git_commit(),
            "threads": torch.get_num_threads()}


def samples_path(store: ResultsStore, key: dict) -> Path:
    return store.path(TRACK, record_key(key)).with_suffix(".samples.jsonl")


def save_result(store: ResultsStore, key: dict, spec: PlanSpec, result: TaskResult, *, model_name: str,
                config: dict | None = None, extra: dict | None = None) -> Path:
    """Write one record (and its samples first, if the result has them). The record keeps every
    document's scores (``per_item``: {metric: [value per document]}, in the task's document order,
    see ``glue_painters.per_item``) so that plans can be compared document by document."""
    samples_file = None
    if result.samples is not None:
        path = samples_path(store, key)
        atomic_write_text(path, "".join(json.dumps(s, default=str) + "\n" for s in result.samples))
        samples_file = path.name
    record = {
        "model": model_name, "model_identity": identity(model_name),  # the weights as they are; not keyed
        "variant": spec.variant, "params": spec.param_dict, "plan": spec.plan.to_json(),
        "plan_hash": spec.plan.hash, "executions": spec.plan.executions, "task": result.task,
        "metrics": result.metrics, "stderr": result.stderr, "chance": result.chance,
        "primary_metric": result.primary, "n": result.n, "healed": key.get("healed", False),
        "timing": {"pass_seconds": round(result.seconds, 3), "plans_in_pass": result.plans_in_pass,
                   "seconds_per_plan": round(result.seconds / max(1, result.plans_in_pass), 3)},
        "versions": versions(), "config": config or {}, "samples_file": samples_file,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **(extra or {}),
        **({} if getattr(result, "higher_is_better", True) else {"higher_is_better": False}),
    }
    if getattr(result, "per_item", None):  # results made elsewhere (the search's verdict) may have none
        record["per_item"] = compact_per_item(result.per_item)
    return store.put(TRACK, key, record)


# ---- running ----------------------------------------------------------------------------------------
def _pick_device(device: str | None, state=None) -> str:
    """auto -> cuda if there is a GPU. With several processes, plain cuda -> the process's own GPU
    (local rank modulo the GPU count, so more processes than GPUs share them)."""
    import torch

    if device in (None, "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and state is not None and state.num_processes > 1:
        return f"cuda:{state.local_process_index % torch.cuda.device_count()}"
    return device


def _pick_dtype(dtype: str | None, device: str) -> str:
    if dtype in (None, "auto"):
        return "bfloat16" if device.startswith("cuda") else "float32"
    if dtype not in ("float32", "bfloat16", "float16"):
        raise UserError(f"--dtype must be float32, bfloat16, float16 or auto, got {dtype!r}")
    return dtype


def run_sweep(cfg: SweepConfig, *, results_dir=None, data_dir=None, log_samples: bool = False,
              device: str | None = None, dtype: str | None = None, batch_size: int | None = None,
              model=None, tokenizer=None, progress: bool = True,
              on_record: Callable[[dict], None] | None = None, wandb: bool = False) -> SweepOutcome:
    """Run (or resume) a sweep; returns every record of it. ``model``/``tokenizer`` skip loading
    (tests); ``on_record`` is called after each record this process writes.

    Under ``accelerate launch``/torchrun every process runs this: each evaluates its share of the
    pending (plan, task) pairs (``share_work``) and writes their records; all return every record."""
    start = time.perf_counter()
    data: Mapping[str, TaskData] = load_tasks(cfg.tasks, data_dir, cfg.limit, cfg.lm_eval_options())  # bad data fails here
    state = process_state()
    if state.is_main_process:
        warn_untested()  # one line on stderr when an upstream release is outside the tested window
    device = _pick_device(device or cfg.device, state)
    dtype = _pick_dtype(dtype or cfg.dtype, device)
    if model is None:
        from glue_painters.models import load_model

        with state.main_process_first():  # the first load may write a converted copy to the cache
            model, tokenizer = load_model(cfg.model, dtype=dtype, device=device)
    else:
        dtype = str(next(model.parameters()).dtype).replace("torch.", "")
    specs = expand(cfg, num_layers(model))  # bad N/k/i fail here, before any record
    fingerprint = model_fingerprint(model)
    store = ResultsStore(results_dir)
    evaluator = Evaluator(model, tokenizer, batch_size or cfg.batch_size, generation_memory=cfg.generation_memory)
    config_record = {"source": cfg.source, **cfg.raw, "device": device, "dtype": dtype,
                     "batch_size": batch_size or cfg.batch_size, "data_dir": str(data_dir) if data_dir else None}
    extra = {"device": device} | ({"process": state.process_index} if state.num_processes > 1 else {})
    tracker = Tracker(wandb, Path(store.root), dict(cfg.wandb or {}))  # runs in <results>/wandb/offline-run-*
    written: dict[str, dict] = {}
    write = _writer(store, cfg, config_record, extra, written, _logged(tracker, cfg, on_record))
    resume = (store.root / TRACK, {"model": fingerprint, "dtype": dtype, "code": SCORING_VERSION,
                                   "batch_size": batch_size or cfg.batch_size, "process": state.process_index})
    scan, held = split_tasks(data, cfg.holdout, f"config {cfg.source}: ") if cfg.holdout else (data, {})

    def phase(part: Mapping[str, object], runs: list[tuple[str, PlanSpec, dict]]) -> SweepOutcome:
        def compute(runs: list[tuple[str, PlanSpec, dict]]) -> None:
            _evaluate(evaluator, part, _by_task(runs), write, cfg, log_samples, progress and state.is_main_process,
                      device, resume)

        def share(runs, procs) -> list:
            mine = _my_share(_by_task(runs), part, evaluator, procs)
            return [(name, spec, key) for name, pairs in mine.items() for spec, key in pairs]

        steps = Steps(runs, find=lambda run: store.get(TRACK, run[2]), share=share, compute=compute,
                      read=lambda run: written.get(record_key(run[2])) or store.get(TRACK, run[2]))
        return run_steps(steps, store=store, procs=state, tracker=tracker, started=start, specs=specs,
                         tasks=list(data))

    outcome = phase(scan, [(name, s, key_fields(fingerprint, s, name, scan[name].subset, dtype))
                           for name in scan for s in specs])
    if not cfg.holdout:
        return outcome
    # The held-out part: every process picks the same winners from the same scan records.
    choice = choose(outcome.records)
    first = {}
    for s in specs:
        first.setdefault(s.plan.text, s)
    full = next(s for s in specs if s.variant == "full").plan.text
    runs = [(name, first[text], key_fields(fingerprint, first[text], name, held[name].subset, dtype))
            for name in held for text in dict.fromkeys([full, *choice.plans_for(name)])]
    again = phase(held, runs)
    return HeldOutOutcome(outcome.records, outcome.written + again.written, outcome.skipped + again.skipped,
                          time.perf_counter() - start, outcome.specs, outcome.tasks, again.wandb,
                          holdout=again.records, choice=choice)


@dataclass
class HeldOutOutcome(SweepOutcome):
    """A sweep with a held-out split: ``records`` are the scan's (what its summary table is of),
    ``holdout`` the full model's and the winners' records on the held-out documents, ``choice``
    the winners and the rule that picked them (``decoder_eval.holdout.choose``)."""

    holdout: list[dict] = field(default_factory=list)
    choice: Pick | None = None


def _by_task(runs: list[tuple[str, PlanSpec, dict]]) -> dict[str, list[tuple[PlanSpec, dict]]]:
    """Runs as the engine takes them: per task, (row, key) pairs in order."""
    todo: dict[str, list[tuple[PlanSpec, dict]]] = {}
    for name, spec, key in runs:
        todo.setdefault(name, []).append((spec, key))
    return todo


def _pending(store: ResultsStore, fingerprint: str, specs: list[PlanSpec], data: Mapping[str, TaskData],
             dtype: str) -> tuple[dict[str, list[tuple[PlanSpec, dict]]], dict[str, dict]]:
    """Split the sweep's (spec, task) pairs into those to run, per task, and the records found."""
    todo: dict[str, list[tuple[PlanSpec, dict]]] = {}
    found: dict[str, dict] = {}
    for name, task_data in data.items():
        for spec in specs:
            key = key_fields(fingerprint, spec, name, task_data.subset, dtype)
            rec = store.get(TRACK, key)
            if rec is None:
                todo.setdefault(name, []).append((spec, key))
            else:
                found[record_key(key)] = rec
    return todo, found


def _logged(tracker: Tracker, cfg, on_record):
    """``on_record`` that first logs the record as its own W&B run (id = its key hash)."""
    def log(rec: dict) -> None:
        spec = VariantSpec.of(rec["variant"], **rec["params"])
        plan = Plan.from_json(rec["plan"])
        tracker.log_record(rec["key_hash"], rec, name=f"{spec.text}/{rec['task']}", job_type="eval",
                           group=run_group(cfg.model, rec["task"], "eval", spec),
                           config=run_config(track="decoder", model=cfg.model, spec=spec, plan=plan, task=rec["task"],
                                             mode="eval", dtype=rec["key"].get("dtype"), n_docs=rec.get("n")))
        if on_record is not None:
            on_record(rec)

    return log if tracker.enabled else on_record


def _writer(store, cfg, config_record, extra, found, on_record) -> Callable[[PlanSpec, dict, TaskResult], None]:
    """What to do with one finished (spec, task) result: write its record, remember it, report it."""

    def write(spec: PlanSpec, key: dict, result: TaskResult) -> None:
        save_result(store, key, spec, result, model_name=cfg.model, config=config_record,
                    extra=dict(extra, split=part_of(key.get("subset"))))
        rec = store.get(TRACK, key)
        found[record_key(key)] = rec
        if on_record is not None:
            on_record(rec)

    return write


def _evaluate(evaluator: Evaluator, data, todo, write, cfg, log_samples: bool, progress: bool, device: str,
              resume: tuple | None = None) -> None:
    """Evaluate every pending plan, one pass per task (plans with equal text share one result).
    ``resume=(folder, key)``: each pass keeps its finished batches there (``progress``)."""
    import torch
    from tqdm.auto import tqdm

    total = sum(evaluator.work_units(data[name], len({s.plan.text for s, _ in pending}))
                for name, pending in todo.items())
    with tqdm(total=total, desc="decoder sweep", unit="batch", disable=not progress or total == 0,
              dynamic_ncols=True) as bar:
        evaluator.progress = bar.update
        for name, pending in todo.items():
            bar.set_postfix_str(f"{name}: {len({s.plan.text for s, _ in pending})} plans")
            by_plan: dict[str, list[tuple[PlanSpec, dict]]] = {}
            for spec, key in pending:
                by_plan.setdefault(spec.plan.text, []).append((spec, key))

            def store_plan(text: str, result: TaskResult, by_plan=by_plan) -> None:
                for spec, key in by_plan[text]:
                    write(spec, key, result)

            evaluator.run(data[name], [s.plan for s, _ in pending], log_samples, cfg.primary_metric.get(name),
                          on_result=store_plan,
                          resume=(resume[0], dict(resume[1], task=name, subset=data[name].subset)) if resume else None)
            if device.startswith("cuda"):
                torch.cuda.empty_cache()


# ---- several processes ------------------------------------------------------------------------------
def prefix_groups(plans: list[Plan]) -> dict[str, tuple]:
    """Each plan's group: the longest run of first steps it shares with another plan of the list
    (the part ``prefix.PlanTrie`` computes once for all plans below it), or its own text when it
    shares none. Plans of one group stay on one process so that sharing is kept."""
    units = {p.text: tuple(repr(u) for u in p.units()) for p in plans}
    ordered = sorted(units.items(), key=lambda kv: kv[1])  # a plan's longest shared prefix is with a neighbour
    common = {text: 0 for text in units}
    for (a, ua), (b, ub) in zip(ordered, ordered[1:]):
        n = next((i for i, (x, y) in enumerate(zip(ua, ub)) if x != y), min(len(ua), len(ub)))
        common[a], common[b] = max(common[a], n), max(common[b], n)
    return {text: units[text][:common[text]] if common[text] else (text,) for text in units}


def _my_share(todo: dict[str, list[tuple[PlanSpec, dict]]], data, evaluator: Evaluator, state) -> dict:
    """This process's part of ``todo``: (task, prefix group) units dealt out by estimated cost
    (batches x executed steps, a shared prefix counted once), generation's as scoring's (its
    engine shares the prompt's prefill and decodes a group's plans in one batch)."""
    costs: dict[tuple, float] = {}
    group_of: dict[tuple[str, str], tuple] = {}
    for name, pending in todo.items():
        plans = list({s.plan.text: s.plan for s, _ in pending}.values())
        groups = prefix_groups(plans)
        batches = evaluator.work_units(data[name], 1)
        for p in plans:
            unit = (name, groups[p.text])
            head = 0 if unit not in costs else len(groups[p.text])
            costs[unit] = costs.get(unit, 0) + batches * (len(list(p.units())) - head)
            group_of[(name, p.text)] = unit
    mine = set(share_work(costs, state.num_processes)[state.process_index])
    return {name: kept for name, pending in todo.items()
            if (kept := [(s, k) for s, k in pending if group_of[(name, s.plan.text)] in mine])}
