"""Sweeps: a YAML config -> plans -> one results record per (plan, task), resumable.

A config (``configs/decoder/*.yaml``) names a model, the variants, the N values (default: every
valid N, ``variants.n_range(T)``), the k values of looped parallel (Fig. 10), the seeds of the
random variant (default 10; the summary reports mean and std), the tasks and the limit. Every
option is checked before any model work, and every plan before any record is written.

Records live in ``glue_painters.results.ResultsStore`` under track ``decoder``, one per
(model fingerprint, plan hash, variant and its parameters, task, data subset, dtype, healed,
scoring version). A re-run skips the records it finds; since each record is written atomically
after its task's pass, a sweep killed anywhere resumes with no record lost or duplicated. With
``log_samples`` the per-item outputs go to a JSON Lines file next to the record, written
(atomically) before the record itself, so a record always has its samples.

Under ``accelerate launch`` or torchrun every process reads the store, waits for the others, then
evaluates its own share of the pending (plan, task) pairs (``share_work`` over ``prefix_groups``,
the same split computed independently by every process) and writes those records alone; after a
last wait each returns the whole sweep. One process alone makes no process group.

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
from typing import Any, Callable, Mapping

from glue_painters.yamlfile import read_yaml

from glue_painters import __version__ as painters_version
from glue_painters.errors import UserError
from glue_painters.fingerprints import config_weights_fingerprint
from glue_painters.plans import Plan
from glue_painters.results import ResultsStore, atomic_write_text, process_state, record_key, share_work
from glue_painters.rewire import num_layers
from glue_painters.variants import VARIANTS, build, n_range

from .evaluate import Evaluator, TaskResult, load_tasks
from .tasks import TASKS, TaskData, get_task

TRACK = "decoder"
# Bump when request building or scoring changes what a record means (old records then no
# longer match and are recomputed); unrelated code changes keep records valid.
SCORING_VERSION = "1"

PAPER_VARIANTS = ["full", "skip", "middle_repeat", "reverse", "random", "parallel", "looped_parallel"]
DEFAULT_TASKS = ["lambada_openai", "arc_easy", "arc_challenge", "hellaswag", "winogrande", "gsm8k"]
CONFIG_KEYS = {
    "model": "model alias, local folder or hub id (required)",
    "variants": f"variants to run (default: the paper's {', '.join(PAPER_VARIANTS)})",
    "n": "N values: 'all' (default: every valid N), a number, a list, or {from, to, step}",
    "k": "looped_parallel iterations, a number or a list (default 3; Fig. 10 sweeps it)",
    "seeds": "random variant: a count (seeds 0..count-1, default 10) or a list of seeds",
    "i": "skip_one/switch layer indices: 'all' (default) or a list",
    "plans": "extra plans as text, e.g. ['0-7,[8-23]x3,24-31'] (variant 'custom')",
    "tasks": f"benchmarks (default: {', '.join(DEFAULT_TASKS)})",
    "limit": "first N documents per task: a number, or {default: N, <task>: N}; omit for all",
    "primary_metric": "per-task metric for the normalized score, e.g. {hellaswag: acc}",
    "batch_size": "packed rows (~256 tokens each) per forward / prompts per generate call (default 16)",
    "dtype": "float32 | bfloat16 | float16 | auto (default: bfloat16 on CUDA, float32 on CPU)",
    "device": "cpu | cuda | cuda:N | auto (default auto)",
    "description": "free text, kept in every record",
}


@dataclass
class SweepConfig:
    model: str
    variants: list[str]
    n: list[int] | None  # None: every valid N
    k: list[int]
    seeds: list[int]
    i: list[int] | None
    plans: list[str]
    tasks: list[str]
    limit: dict[str, int | None]
    primary_metric: dict[str, str]
    batch_size: int = 16
    dtype: str | None = None
    device: str | None = None
    description: str = ""
    source: str = ""
    raw: dict = field(default_factory=dict)


def _ints(value, what: str, allow_all: bool = False) -> list[int] | None:
    if value is None or (allow_all and value == "all"):
        return None
    if isinstance(value, bool):
        raise UserError(f"config '{what}' must be integers, got {value!r}")
    if isinstance(value, int):
        return [value]
    if isinstance(value, dict) and allow_all:
        unknown = set(value) - {"from", "to", "step"}
        if unknown or "to" not in value:
            raise UserError(f"config '{what}' as a mapping takes from/to/step, got {sorted(value)}")
        return list(range(int(value.get("from", 0)), int(value["to"]) + 1, int(value.get("step", 1))))
    if isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return list(value)
    raise UserError(f"config '{what}' must be {'all, ' if allow_all else ''}an integer or a list of integers, got {value!r}")


def parse_config(raw: Any, source: str = "<config>") -> SweepConfig:
    """Check a config mapping (already read from YAML) and fill in the defaults."""
    if raw is None or raw == {}:
        raise UserError(f"config {source} is empty: it needs at least 'model:' (keys: {', '.join(CONFIG_KEYS)})")
    if not isinstance(raw, dict):
        raise UserError(f"config {source} must be a mapping of keys to values, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(CONFIG_KEYS))
    if unknown:
        raise UserError(f"config {source}: unknown key(s) {', '.join(unknown)}; known: {', '.join(CONFIG_KEYS)}")
    if not isinstance(raw.get("model"), str) or not raw["model"].strip():
        raise UserError(f"config {source}: 'model' (an alias, folder or hub id) is required")
    variants = raw.get("variants", PAPER_VARIANTS)
    if isinstance(variants, str):
        variants = [variants]
    if not isinstance(variants, list) or not all(isinstance(v, str) for v in variants):
        raise UserError(f"config {source}: 'variants' must be a list of names")
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        raise UserError(f"config {source}: unknown variant(s) {', '.join(bad)}; known: {', '.join(VARIANTS)}")
    tasks = raw.get("tasks", DEFAULT_TASKS)
    if isinstance(tasks, str):
        tasks = [tasks]
    if not isinstance(tasks, list) or not tasks:
        raise UserError(f"config {source}: 'tasks' must be a non-empty list")
    for t in tasks:
        get_task(t)
    seeds = raw.get("seeds", 10)
    seeds = list(range(seeds)) if isinstance(seeds, int) and not isinstance(seeds, bool) else _ints(seeds, "seeds")
    if not seeds:
        raise UserError(f"config {source}: 'seeds' needs at least one seed")
    limit = raw.get("limit")
    if isinstance(limit, dict):
        unknown = sorted(set(limit) - set(TASKS) - {"default"})
        if unknown:
            raise UserError(f"config {source}: 'limit' has unknown task(s) {', '.join(unknown)}")
        limits = {t: limit.get(t, limit.get("default")) for t in tasks}
    else:
        limits = {t: limit for t in tasks}
    for t, v in limits.items():
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            raise UserError(f"config {source}: limit for {t} must be a positive integer, got {v!r}")
    primary = raw.get("primary_metric") or {}
    if not isinstance(primary, dict):
        raise UserError(f"config {source}: 'primary_metric' must map task -> metric")
    for t, m in primary.items():
        if m not in get_task(t).metrics:
            raise UserError(f"config {source}: task {t} has no metric {m!r}; it has {', '.join(get_task(t).metrics)}")
        if m == "perplexity":
            raise UserError(f"config {source}: the primary metric must be an accuracy (perplexity has no chance level)")
    plans = raw.get("plans") or []
    if not isinstance(plans, list) or not all(isinstance(p, str) for p in plans):
        raise UserError(f"config {source}: 'plans' must be a list of plan texts")
    for p in plans:
        Plan.parse(p)
    batch_size = raw.get("batch_size", 16)
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise UserError(f"config {source}: 'batch_size' must be a positive integer")
    ks = _ints(raw.get("k", 3), "k")
    if any(k < 1 for k in ks):
        raise UserError(f"config {source}: every k must be at least 1")
    return SweepConfig(
        model=raw["model"].strip(), variants=list(variants), n=_ints(raw.get("n", "all"), "n", allow_all=True),
        k=ks, seeds=seeds, i=_ints(raw.get("i", "all"), "i", allow_all=True), plans=plans, tasks=list(tasks),
        limit=limits, primary_metric=dict(primary), batch_size=batch_size, dtype=raw.get("dtype"),
        device=raw.get("device"), description=str(raw.get("description", "")), source=source, raw=dict(raw))


def load_config(path: str | Path) -> SweepConfig:
    return parse_config(read_yaml(path), str(path))


# ---- plans ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PlanSpec:
    """One row of a sweep: a variant with its parameters, and the plan it builds."""

    variant: str
    params: tuple  # sorted (name, value) pairs
    plan: Plan

    @property
    def param_dict(self) -> dict:
        return dict(self.params)


def expand(cfg: SweepConfig, num_layers_: int) -> list[PlanSpec]:
    """Every (variant, parameters) of the config as plans for a model of ``num_layers_`` layers."""
    ns = cfg.n if cfg.n is not None else n_range(num_layers_)
    specs: list[PlanSpec] = []

    def add(variant, **params):
        spec = PlanSpec(variant, tuple(sorted(params.items())), build(variant, num_layers_, **params))
        if spec not in specs:  # a value listed twice in the config is one row
            specs.append(spec)

    for variant in cfg.variants:
        wanted = VARIANTS[variant][1]
        if not wanted:
            add(variant)
        elif "n" in wanted:
            for n in ns:
                if variant == "random":
                    for seed in cfg.seeds:
                        add(variant, n=n, seed=seed)
                elif variant == "looped_parallel":
                    for k in cfg.k:
                        add(variant, n=n, k=k)
                else:
                    add(variant, n=n)
        elif "i" in wanted:
            top = num_layers_ - 1 if variant == "skip_one" else num_layers_ - 2
            for i in cfg.i if cfg.i is not None else range(top + 1):
                add(variant, i=i)
    for text in cfg.plans:
        specs.append(PlanSpec("custom", (("plan", Plan.parse(text).text),), Plan.parse(text).validate(num_layers_)))
    if "full" not in cfg.variants:  # normalization needs the full model's score
        specs.insert(0, PlanSpec("full", (), build("full", num_layers_)))
    return specs


# ---- records -------------------------------------------------------------------------------------
def model_fingerprint(model) -> str:
    """The loader's file fingerprint, else a hash of the weights and config (in-memory models)."""
    from glue_painters.models import source_of

    try:
        return source_of(model).fingerprint
    except UserError:  # built in memory (tests) or loaded some other way
        return config_weights_fingerprint(model)


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

    return {"glue_painters": painters_version, "scoring": SCORING_VERSION, "torch": torch.__version__,
            "transformers": transformers.__version__, "python": platform.python_version(), "git": _git_commit()}


def samples_path(store: ResultsStore, key: dict) -> Path:
    return store.path(TRACK, record_key(key)).with_suffix(".samples.jsonl")


def save_result(store: ResultsStore, key: dict, spec: PlanSpec, result: TaskResult, *, model_name: str,
                config: dict | None = None, extra: dict | None = None) -> Path:
    """Write one record (and its samples first, if the result has them)."""
    samples_file = None
    if result.samples is not None:
        path = samples_path(store, key)
        atomic_write_text(path, "".join(json.dumps(s, default=str) + "\n" for s in result.samples))
        samples_file = path.name
    record = {
        "model": model_name, "variant": spec.variant, "params": spec.param_dict, "plan": spec.plan.to_json(),
        "plan_hash": spec.plan.hash, "executions": spec.plan.executions, "task": result.task,
        "metrics": result.metrics, "stderr": result.stderr, "chance": result.chance,
        "primary_metric": result.primary, "n": result.n, "healed": key.get("healed", False),
        "timing": {"pass_seconds": round(result.seconds, 3), "plans_in_pass": result.plans_in_pass,
                   "seconds_per_plan": round(result.seconds / max(1, result.plans_in_pass), 3)},
        "versions": versions(), "config": config or {}, "samples_file": samples_file,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **(extra or {}),
    }
    return store.put(TRACK, key, record)


# ---- running ----------------------------------------------------------------------------------------
@dataclass
class SweepOutcome:
    records: list[dict]  # every record of the sweep (found or written), in spec x task order
    written: int
    skipped: int
    seconds: float
    specs: list[PlanSpec]
    tasks: list[str]


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
              on_record: Callable[[dict], None] | None = None) -> SweepOutcome:
    """Run (or resume) a sweep; returns every record of it. ``model``/``tokenizer`` skip loading
    (tests); ``on_record`` is called after each record this process writes.

    Under ``accelerate launch``/torchrun every process runs this: each evaluates its share of the
    pending (plan, task) pairs (``share_work``) and writes their records; all return every record."""
    start = time.perf_counter()
    data: Mapping[str, TaskData] = load_tasks(cfg.tasks, data_dir, cfg.limit)  # bad data fails here
    state = process_state()
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
    todo, found = _pending(store, fingerprint, specs, data, dtype)
    pending_count = sum(len(v) for v in todo.values())
    state.wait_for_everyone()  # every process has seen the same store before anyone writes to it
    evaluator = Evaluator(model, tokenizer, batch_size or cfg.batch_size)
    if state.num_processes > 1:
        todo = _my_share(todo, data, evaluator, state)
    config_record = {"source": cfg.source, **cfg.raw, "device": device, "dtype": dtype,
                     "batch_size": batch_size or cfg.batch_size, "data_dir": str(data_dir) if data_dir else None}
    extra = {"device": device} | ({"process": state.process_index} if state.num_processes > 1 else {})
    write = _writer(store, cfg, config_record, extra, found, on_record)
    _evaluate(evaluator, data, todo, write, cfg, log_samples, progress and state.is_main_process, device)
    state.wait_for_everyone()  # the other processes' records are all in the store now
    ordered = []
    for name in data:
        for s in specs:
            key = key_fields(fingerprint, s, name, data[name].subset, dtype)
            ordered.append(found.get(record_key(key)) or store.get(TRACK, key))
    missing = sum(r is None for r in ordered)
    if missing:  # pragma: no cover - a process died without its launcher stopping the others
        raise UserError(f"{missing} records of the sweep are missing from {store.root}; run it again to resume")
    return SweepOutcome(ordered, pending_count, len(ordered) - pending_count, time.perf_counter() - start,
                        specs, list(data))


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


def _writer(store, cfg, config_record, extra, found, on_record) -> Callable[[PlanSpec, dict, TaskResult], None]:
    """What to do with one finished (spec, task) result: write its record, remember it, report it."""

    def write(spec: PlanSpec, key: dict, result: TaskResult) -> None:
        save_result(store, key, spec, result, model_name=cfg.model, config=config_record, extra=extra)
        rec = store.get(TRACK, key)
        found[record_key(key)] = rec
        if on_record is not None:
            on_record(rec)

    return write


def _evaluate(evaluator: Evaluator, data, todo, write, cfg, log_samples: bool, progress: bool, device: str) -> None:
    """Evaluate every pending plan, one pass per task (plans with equal text share one result)."""
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
                          on_result=store_plan)
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
    (batches x executed steps, a shared prefix counted once). Generation shares no prefix, so
    there every plan is its own unit."""
    costs: dict[tuple, float] = {}
    group_of: dict[tuple[str, str], tuple] = {}
    for name, pending in todo.items():
        plans = list({s.plan.text: s.plan for s, _ in pending}.values())
        generate = data[name].task.kind == "generate_until"
        groups = {p.text: (p.text,) for p in plans} if generate else prefix_groups(plans)
        batches = evaluator.work_units(data[name], 1)
        for p in plans:
            unit = (name, groups[p.text])
            head = 0 if generate or unit not in costs else len(groups[p.text])
            costs[unit] = costs.get(unit, 0) + batches * (len(list(p.units())) - head)
            group_of[(name, p.text)] = unit
    mine = set(share_work(costs, state.num_processes)[state.process_index])
    return {name: kept for name, pending in todo.items()
            if (kept := [(s, k) for s, k in pending if group_of[(name, s.plan.text)] in mine])}
