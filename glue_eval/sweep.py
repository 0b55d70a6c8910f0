"""GLUE sweeps from YAML: variants x N x tasks x seeds, fine-tuned and/or probed.

A config (see ``configs/glue/*.yaml``)::

    model: minilm                    # alias, hub id or local folder
    variants: [full, skip, middle_repeat, reverse, random, parallel, looped_parallel]
    n: [0, 1]                        # list, or "all" (every valid N), or {min: 0, max: 4}
    k: 3                             # looped_parallel iterations
    plans: []                        # extra plans of your own: text (0-1,5) or specs (skip:n=1)
    tasks: [rte, mrpc]
    modes: [finetune, probe]
    seeds: [0, 1, 2]                 # or a count: 3
    limit_train: 256                 # fixed random subsets (null = all rows)
    limit_eval: 200
    finetune: {learning_rate: 2.0e-5, batch_size: 32, epochs: 3, max_length: 128}
    probe: {learning_rate: 3.0e-2, batch_size: 32, epochs: 3, max_length: 128, pooling: auto}
    wandb: {project: glue-painters}

``random`` uses the run's seed as its permutation seed, so its mean over seeds averages over
permutations as well (the paper averages 10 permutation seeds).

Every finished run is one record in the shared ``ResultsStore`` (track ``glue``), keyed by the
weights' fingerprint, the plan hash, task, mode, seed, hyperparameters, subset, the data files'
hashes and the code version. A run whose record exists is skipped, so an interrupted sweep
resumes where it stopped, and variants that give the same plan (e.g. reverse and full when the
middle is one layer) run once. Every run is also a W&B run (offline unless ``WANDB_MODE`` says
otherwise) with config fields variant, N, k, seed, task, mode, plan, model.
"""

from __future__ import annotations

import hashlib
import math
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from glue_painters import __version__, rewire
from glue_painters.errors import UserError
from glue_painters.plans import Plan
from glue_painters.results import ResultsStore, atomic_write_text, process_state, share_work
from glue_painters.variants import VARIANTS, build, n_range, resolve
from glue_painters.yamlfile import read_yaml
from . import tasks as T
from .finetune import finetune
from .hparams import FinetuneHParams, ProbeHParams
from .metrics import glue_average
from .probe import fill_feature_cache, probe

TRACK = "glue"
MODES = ("finetune", "probe")
N_VARIANTS = ("skip", "middle_repeat", "reverse", "random", "parallel", "looped_parallel")
SWEEP_VARIANTS = ("full",) + N_VARIANTS
_CODE_FILES = ("tasks.py", "glue_metric.py", "metrics.py", "finetune.py", "probe.py", "modeling.py")
# Part of every record's key, like the decoder track's SCORING_VERSION: bump it when a change alters
# what a finished GLUE run would score (tokenization, metrics, training or probing semantics), so
# stale records are re-run. A hash of the source files would re-run the whole sweep after any
# refactor; that hash is kept in each record (``code_hash``) for provenance instead.
SCORING_VERSION = "glue-v1"


def code_version() -> str:
    """Package version + a hash of the code that decides a GLUE result (recorded, not keyed)."""
    h = hashlib.sha256()
    here = Path(__file__).parent
    for name in _CODE_FILES:
        h.update((here / name).read_bytes())
    h.update(Path(rewire.__file__).read_bytes())
    return f"{__version__}+{h.hexdigest()[:10]}"


# ---- config -------------------------------------------------------------------------------------
@dataclass
class SweepConfig:
    model: str = "minilm"
    variants: list = field(default_factory=lambda: list(SWEEP_VARIANTS))
    n: object = "all"
    k: int = 3
    plans: list = field(default_factory=list)
    tasks: list = field(default_factory=lambda: ["cola", "sst2", "mrpc", "stsb", "rte", "wnli"])
    modes: list = field(default_factory=lambda: list(MODES))
    seeds: object = 3
    limit_train: int | None = None
    limit_eval: int | None = None
    subset_seed: int = 0
    finetune: dict = field(default_factory=dict)
    probe: dict = field(default_factory=dict)
    wandb: dict = field(default_factory=dict)
    source: str = "<dict>"

    # filled by ``check``
    finetune_hp: FinetuneHParams = None
    probe_hp: ProbeHParams = None

    def check(self) -> "SweepConfig":
        w = self.source
        if not isinstance(self.model, str) or not self.model:
            raise UserError(f"{w}: 'model' must be a model name or path")
        self.variants = _str_list(self.variants, "variants", w)
        for v in self.variants:
            if v not in SWEEP_VARIANTS:
                extra = " (skip_one/switch take i: give them as plans, e.g. 'skip_one:i=3')" if v in VARIANTS else ""
                raise UserError(f"{w}: unknown variant '{v}'{extra}; sweep variants: {', '.join(SWEEP_VARIANTS)}")
        self.plans = _str_list(self.plans, "plans", w)
        self.tasks = [T.get_task(t).name for t in _str_list(self.tasks, "tasks", w)]
        self.modes = _str_list(self.modes, "modes", w)
        for m in self.modes:
            if m not in MODES:
                raise UserError(f"{w}: unknown mode '{m}'; modes: {', '.join(MODES)}")
        self.seeds = _check_run_settings({"seeds": self.seeds}, w)["seeds"]
        if not isinstance(self.k, int) or isinstance(self.k, bool) or self.k < 1:
            raise UserError(f"{w}: 'k' must be an integer >= 1")
        _check_run_settings({"limit_train": self.limit_train, "limit_eval": self.limit_eval}, w)
        if not isinstance(self.subset_seed, int) or isinstance(self.subset_seed, bool):
            raise UserError(f"{w}: 'subset_seed' must be an integer")
        self.n_values(None)  # shape check
        self.overrides = {}
        for mode in MODES:
            section = getattr(self, mode)
            if section is None:
                section = {}
            if not isinstance(section, dict):
                raise UserError(f"{w}: '{mode}' must be a mapping of settings")
            section = dict(section)
            over = {k: section.pop(k) for k in ("seeds", "limit_train", "limit_eval") if k in section}
            self.overrides[mode] = _check_run_settings(over, f"{w}: {mode}")
            hp = (FinetuneHParams if mode == "finetune" else ProbeHParams).from_dict(section, f"{w}: {mode}")
            setattr(self, f"{mode}_hp", hp)
        if not isinstance(self.wandb, dict) or set(self.wandb) - {"project", "entity", "group", "tags"}:
            raise UserError(f"{w}: 'wandb' takes project, entity, group, tags")
        if not self.variants and not self.plans:
            raise UserError(f"{w}: nothing to run: give 'variants' or 'plans'")
        return self

    def setting(self, mode: str, name: str):
        """``seeds``, ``limit_train`` or ``limit_eval`` for one mode (its section overrides the top level)."""
        over = getattr(self, "overrides", {}).get(mode, {})
        return over[name] if name in over else getattr(self, name)

    def n_values(self, num_layers: int | None) -> list[int]:
        w, n = self.source, self.n
        if n == "all":
            return n_range(num_layers) if num_layers else []
        if isinstance(n, int) and not isinstance(n, bool):
            return [n]
        if isinstance(n, list) and n and all(isinstance(i, int) and not isinstance(i, bool) for i in n):
            return list(n)
        if isinstance(n, dict) and set(n) <= {"min", "max"}:
            lo = n.get("min", 0)
            hi = n.get("max")
            if num_layers is None:
                return []
            hi = n_range(num_layers)[-1] if hi is None else hi
            return list(range(lo, hi + 1))
        raise UserError(f"{w}: 'n' must be a list of integers, an integer, 'all' or {{min: A, max: B}}, got {n!r}")


def _check_run_settings(d: dict, where: str) -> dict:
    out = dict(d)
    if "seeds" in d:
        seeds = d["seeds"]
        if isinstance(seeds, int) and not isinstance(seeds, bool):
            if seeds < 1:
                raise UserError(f"{where}: 'seeds' count must be at least 1")
            seeds = list(range(seeds))
        if not isinstance(seeds, list) or not seeds or not all(
                isinstance(s, int) and not isinstance(s, bool) for s in seeds) or len(set(seeds)) != len(seeds):
            raise UserError(f"{where}: 'seeds' must be a list of distinct integers or a count")
        out["seeds"] = seeds
    for name in ("limit_train", "limit_eval"):
        if name in d:
            v = d[name]
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise UserError(f"{where}: '{name}' must be a positive integer or null")
    return out


def _str_list(v, name, where) -> list[str]:
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise UserError(f"{where}: '{name}' must be a list of strings")
    return list(v)


def load_config(path) -> SweepConfig:
    path = Path(path)
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise UserError(f"{path}: a sweep config is a YAML mapping (model:, variants:, tasks: ...)")
    known = {f for f in SweepConfig.__dataclass_fields__ if f not in ("source", "finetune_hp", "probe_hp")}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UserError(f"{path}: unknown key(s) {', '.join(map(str, unknown))}; known: {', '.join(sorted(known))}")
    return SweepConfig(**data, source=str(path)).check()


# ---- runs ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunSpec:
    model: str
    variant: str | None       # None for a custom plan
    n: int | None
    k: int | None
    plan_spec: str | None     # for custom plans: text or variant spec
    task: str
    mode: str
    seed: int

    def plan(self, num_layers: int) -> Plan:
        if self.variant is None:
            return resolve(self.plan_spec, num_layers)
        params = {}
        if self.variant != "full":
            params["n"] = self.n
        if self.variant == "looped_parallel":
            params["k"] = self.k
        if self.variant == "random":
            params["seed"] = self.seed
        return build(self.variant, num_layers, **params)

    @property
    def label(self) -> str:
        if self.variant is None:
            return self.plan_spec
        if self.variant == "full":
            return "full"
        return f"{self.variant}:n={self.n}" + (f",k={self.k}" if self.variant == "looped_parallel" else "")


def expand(cfg: SweepConfig, num_layers: int) -> list[RunSpec]:
    ns = cfg.n_values(num_layers)
    for n in ns:
        if not 0 <= n <= n_range(num_layers)[-1]:
            raise UserError(f"{cfg.source}: N={n} is out of range for {cfg.model} ({num_layers} layers): "
                            f"valid N are {n_range(num_layers)[0]}..{n_range(num_layers)[-1]}")
    shapes = []
    for v in cfg.variants:
        if v == "full":
            shapes.append((v, None, None, None))
        else:
            shapes += [(v, n, cfg.k if v == "looped_parallel" else None, None) for n in ns]
    for p in cfg.plans:
        resolve(p, num_layers)  # check now, not mid-sweep
        shapes.append((None, None, None, p))
    return [RunSpec(cfg.model, v, n, k, p, task, mode, seed)
            for mode in cfg.modes for task in cfg.tasks for (v, n, k, p) in shapes
            for seed in cfg.setting(mode, "seeds")]


def _file_sha(path: str) -> str:
    if not os.path.isfile(path):
        return path  # a hub source: its id
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


@dataclass
class TaskData:
    task: T.Task
    train: object          # tokenized datasets
    evals: dict
    sources: dict          # split -> data file hash (or hub id)
    sizes: dict


def prepare_task(task_name, tokenizer, max_length, data_dir, limit_train, limit_eval, subset_seed=0,
                 loaded: dict | None = None) -> TaskData:
    """Rows of every split (``loaded[(task, split)]`` if given, else read and checked now), subset, tokenized."""
    task = T.get_task(task_name)
    sources, sizes = {}, {}
    read = (lambda t, sp, d: loaded[(t.name, sp)]) if loaded is not None else T.load_rows
    rows, src = read(task, "train", data_dir)
    rows = T.subset(rows, limit_train, subset_seed)
    sources["train"], sizes["train"] = _file_sha(src), len(rows)
    train = T.tokenize(T.to_dataset(rows), task, tokenizer, max_length)
    evals = {}
    for split in task.eval_splits:
        rows, src = read(task, split, data_dir)
        rows = T.subset(rows, limit_eval, subset_seed)
        sources[split], sizes[split] = _file_sha(src), len(rows)
        evals[split] = T.tokenize(T.to_dataset(rows), task, tokenizer, max_length)
    return TaskData(task, train, evals, sources, sizes)


def key_fields(fingerprint, plan: Plan, spec: RunSpec, hparams: dict, subset: dict, data: dict) -> dict:
    return {"model": fingerprint, "plan": plan.hash, "task": spec.task, "mode": spec.mode, "seed": spec.seed,
            "hparams": hparams, "subset": subset, "data": data, "code": SCORING_VERSION}


def _wandb_setup():
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")


def wandb_config(spec: RunSpec, plan: Plan, model_name: str, fingerprint: str, hparams: dict, subset: dict) -> dict:
    return {"variant": spec.variant or "custom", "N": spec.n, "k": spec.k, "seed": spec.seed, "task": spec.task,
            "mode": spec.mode, "plan": plan.text, "plan_hash": plan.hash, "model": model_name,
            "model_fingerprint": fingerprint, "label": spec.label, **{f"hp/{k}": v for k, v in hparams.items()},
            "limit_train": subset.get("train"), "limit_eval": subset.get("eval")}


class _Wandb:
    """One W&B run per GLUE run, or nothing when disabled."""

    def __init__(self, enabled: bool, settings: dict, root: Path):
        self.enabled, self.settings, self.root = enabled, settings or {}, root
        if enabled:
            _wandb_setup()
            self.root.mkdir(parents=True, exist_ok=True)

    def start(self, spec: RunSpec, config: dict):
        if not self.enabled:
            return None
        import wandb
        group = self.settings.get("group") or f"{spec.model}/{spec.task}/{spec.mode}"
        return wandb.init(project=self.settings.get("project", "glue-painters"), entity=self.settings.get("entity"),
                          group=group, job_type=spec.mode, name=f"{spec.label}/{spec.task}/{spec.mode}/s{spec.seed}",
                          tags=self.settings.get("tags"), config=config, dir=str(self.root),
                          reinit="finish_previous")

    @staticmethod
    def finish(run, record: dict | None, failed: bool = False):
        if run is None:
            return
        if record is not None:
            run.log({f"eval/{k}": v for k, v in record["metrics"].items()} | {"eval/score": record["score"]})
            run.summary.update({**record["metrics"], "score": record["score"]})
        run.finish(exit_code=1 if failed else 0)


def _record(spec: RunSpec, plan: Plan, model_name: str, td: TaskData, res: dict, extra: dict) -> dict:
    return {"variant": spec.variant or "custom", "n": spec.n, "k": spec.k, "label": spec.label, "plan_text": plan.text,
            "plan_hash": plan.hash, "model_name": model_name, "task": spec.task, "mode": spec.mode, "seed": spec.seed,
            "metrics": res["metrics"], "score": res["score"], "sizes": td.sizes, "executions": plan.executions,
            "code_hash": code_version(), **extra}


def run_finetune_one(spec: RunSpec, hp: FinetuneHParams, data_dir=None, limit_train=None, limit_eval=None,
                     output_dir=None, save_steps=None, resume=False, results=None, wandb_on=True,
                     subset_seed=0, wandb_settings=None) -> dict | None:
    """One fine-tuning run (the ``python -m glue_eval.finetune_cli`` form), record optional."""
    from transformers import set_seed
    from transformers.trainer_utils import get_last_checkpoint
    from .modeling import load, weights_fingerprint
    task = T.get_task(spec.task)
    set_seed(spec.seed)
    model, tok = load(spec.model, "sequence-classification", num_labels=task.num_labels)
    fingerprint = weights_fingerprint(model.base_model)
    from glue_painters.rewire import num_layers
    plan = spec.plan(num_layers(model)) if spec.variant else resolve(spec.plan_spec, num_layers(model))
    td = prepare_task(task.name, tok, hp.max_length, data_dir, limit_train, limit_eval, subset_seed)
    subset = {"train": limit_train, "eval": limit_eval, "seed": subset_seed}
    hparams = asdict(hp)
    wb = _Wandb(wandb_on, wandb_settings, Path(results or output_dir) / "wandb")
    run = wb.start(spec, wandb_config(spec, plan, spec.model, fingerprint, hparams, subset))
    ckpt = get_last_checkpoint(output_dir) if resume and Path(output_dir).is_dir() else None
    if resume and ckpt is None:
        print(f"no checkpoint in {output_dir}: starting from scratch", file=sys.stderr)
    try:
        res = finetune(model, plan, task, td.train, td.evals, hp, spec.seed, output_dir, tokenizer=tok,
                       report_to=["wandb"] if run is not None else "none", save_steps=save_steps, resume=ckpt)
    except BaseException:
        wb.finish(run, None, failed=True)
        raise
    rec = _record(spec, plan, spec.model, td, res, {"train_loss": res["train_loss"], "steps": res["steps"],
                                                    "train_time_s": res["train_time_s"]})
    trainer = res["trainer"]
    if trainer.is_world_process_zero():
        from glue_painters.results import atomic_write_json
        atomic_write_json(Path(output_dir) / "metrics.json", rec)
        if results:
            ResultsStore(results).put(TRACK, key_fields(fingerprint, plan, spec, hparams, subset, td.sources), rec)
    wb.finish(run, rec)
    return rec


def task_sources(task: T.Task, data_dir) -> dict:
    """What identifies each split's data in a results key: the local file's hash, or the hub id."""
    root = T.resolve_data_dir(data_dir)
    out = {}
    for split in ("train",) + task.eval_splits:
        path = root / task.name / f"{split}.jsonl"
        out[split] = _file_sha(str(path)) if path.is_file() else f"{T.HUB_DATASET}/{task.name}:{split}"
    return out


def run_sweep(cfg: SweepConfig, results_dir, data_dir=None, wandb_on=True, progress=True,
              log=print, dry: bool = False) -> list[dict]:
    """Run every missing run of ``cfg``; returns the sweep's records (new and already done).

    With ``dry=True`` nothing runs: the records already in the store are collected.

    Under ``accelerate launch``/torchrun: fine-tuning runs use every process at once (Trainer's
    own data parallelism on GPUs; on the CPU, where Trainer runs each process alone, every process
    trains the same run), and only the main process writes their records and W&B runs. Probe runs
    are dealt out, a task's probes to one process (they share its features), and each process writes
    its own. Every process then returns the whole sweep.
    """
    import transformers
    from tqdm.auto import tqdm
    from .modeling import choose_pooling, load, weights_fingerprint
    from glue_painters.rewire import num_layers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    # every data file is read and checked before anything runs: a bad row stops the sweep at once
    loaded = {} if dry else {(t, sp): T.load_rows(t, sp, data_dir) for t in cfg.tasks
                             for sp in ("train",) + T.get_task(t).eval_splits}
    store = ResultsStore(results_dir)
    state = process_state(cpu_group=False) if not dry else None
    rank, procs = (state.process_index, state.num_processes) if state else (0, 1)  # Trainer resets `state`
    if rank:
        progress, log = False, (lambda message: None)
    wb = _Wandb(wandb_on and not dry, cfg.wandb, Path(results_dir) / "wandb")
    encoder, tok = load(cfg.model, "encoder")
    T_layers = num_layers(encoder)
    fingerprint = weights_fingerprint(encoder)
    specs = expand(cfg, T_layers)
    subsets = {m: {"train": cfg.setting(m, "limit_train"), "eval": cfg.setting(m, "limit_eval"),
                   "seed": cfg.subset_seed} for m in MODES}
    pooling, pooling_reason = choose_pooling(encoder, cfg.probe_hp.pooling)
    hp_of = {"finetune": asdict(cfg.finetune_hp),
             "probe": {**asdict(cfg.probe_hp), "pooling": pooling}}
    probe_owner = _probe_owners(specs, procs)
    plan_of_modes = "; ".join(f"{m}: seeds {cfg.setting(m, 'seeds')}, subset {subsets[m]}" for m in cfg.modes)
    if not dry:
        log(f"glue sweep: {cfg.model} ({T_layers} layers, weights {fingerprint}), {len(specs)} runs "
            f"({plan_of_modes}; "
            f"{len(cfg.tasks)} tasks); "
            f"probe pooling: {pooling} ({pooling_reason})")

    records, done, ran = [], 0, 0
    mine = [s for s in specs if s.mode != "probe" or probe_owner[s.task] == rank]
    bar = tqdm(total=len(mine), desc="glue sweep", unit="run", disable=not progress or dry, file=sys.stderr)
    feature_cache: dict = {}
    for mode in cfg.modes:
        hp = cfg.finetune_hp if mode == "finetune" else cfg.probe_hp
        subset = subsets[mode]
        for task_name in cfg.tasks:
            if mode == "probe" and probe_owner[task_name] != rank:
                continue  # another process probes this task
            task = T.get_task(task_name)
            sources = task_sources(task, data_dir)
            group = [s for s in specs if s.mode == mode and s.task == task_name]
            td = None
            # runs grouped by plan: a probe extracts the plan's features once for all its seeds,
            # and two labels with the same plan and seed (reverse = full when the middle is one
            # layer) run once
            by_plan: dict[str, list] = {}
            for s in group:
                plan = s.plan(T_layers)
                by_plan.setdefault(plan.hash, []).append((s, plan))
            for items in by_plan.values():
                todo = []
                for s, plan in items:
                    kf = key_fields(fingerprint, plan, s, hp_of[mode], subset, sources)
                    rec = store.get(TRACK, kf)
                    if rec is not None:
                        records.append(_relabel(rec, s))
                        done += 1
                        bar.update(1)
                    elif not dry and not any(t[0].seed == s.seed for t in todo):
                        todo.append((s, plan, kf))
                if not todo:
                    continue
                if td is None:
                    td = prepare_task(task_name, tok, hp.max_length, data_dir, subset["train"],
                                      subset["eval"], cfg.subset_seed, loaded)
                    if td.sources != sources:  # pragma: no cover - files changed while running
                        raise UserError(f"GLUE {task_name} data changed during the sweep")
                bar.set_postfix_str(f"{mode} {task_name} {todo[0][0].label}")
                if mode == "finetune":
                    for s, plan, kf in todo:
                        rec = _finetune_in_sweep(cfg, s, plan, td, fingerprint, hp_of[mode], subset,
                                                 wb if rank == 0 else _Wandb(False, {}, Path()))
                        if rank == 0:
                            store.put(TRACK, kf, rec)
                        records.append(_relabel(rec, s))
                        ran += 1
                        bar.update(1)
                else:
                    _probe_in_sweep(cfg, encoder, todo, td, fingerprint, hp_of[mode], subset, wb, store,
                                    pooling, feature_cache, records, bar, by_plan)
                    ran += len(todo)
            # labels whose plan equals another label's (deduplicated above) share that record
            for s in group:
                if not any(r["_spec"] == s for r in records):
                    plan_hash = s.plan(T_layers).hash
                    twin = next((r for r in records if r["plan_hash"] == plan_hash and r["task"] == s.task
                                 and r["mode"] == s.mode and r["seed"] == s.seed), None)
                    if twin is not None:
                        records.append(_relabel(twin, s))
                        bar.update(1)
            feature_cache.clear()
    bar.close()
    if procs > 1:
        _wait_for_everyone()
        records = run_sweep(cfg, results_dir, data_dir, wandb_on=False, progress=False, log=log, dry=True)
        log(f"glue sweep: {procs} processes; {len(records)} runs of the sweep in {results_dir}")
    elif not dry:
        log(f"glue sweep: {ran} runs done now, {done} already in {results_dir}")
    return records


def _probe_owners(specs: list[RunSpec], procs: int) -> dict[str, int]:
    """The process that runs each task's probes: all of a task on one process, since its probes
    share the task's features; tasks dealt largest first (``share_work``). The same on every process."""
    counts: dict[str, int] = {}
    for s in specs:
        counts[s.task] = counts.get(s.task, 0) + (s.mode == "probe")
    return {task: rank for rank, share in enumerate(share_work(counts, procs)) for task in share}


def is_main_process() -> bool:
    """Rank 0 of the process group, or a plain run (asks the group, as ``_wait_for_everyone``)."""
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def _wait_for_everyone() -> None:
    """All processes meet here. Asks the process group itself, not accelerate's shared state:
    Trainer resets that (on a CPU machine to a one-process view)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _relabel(rec: dict, spec: RunSpec) -> dict:
    """The record as seen from this sweep's label (a plan shared by two variants has one record)."""
    out = dict(rec)
    out.update({"variant": spec.variant or "custom", "n": spec.n, "k": spec.k, "label": spec.label, "_spec": spec})
    return out


def _finetune_in_sweep(cfg, spec, plan, td, fingerprint, hparams, subset, wb) -> dict:
    from transformers import set_seed
    from .modeling import load
    set_seed(spec.seed)
    model, tok = load(cfg.model, "sequence-classification", num_labels=td.task.num_labels)
    run = wb.start(spec, wandb_config(spec, plan, cfg.model, fingerprint, hparams, subset))
    try:
        with tempfile.TemporaryDirectory(prefix="painters-glue-") as out_dir:
            res = finetune(model, plan, td.task, td.train, td.evals, cfg.finetune_hp, spec.seed, out_dir,
                           tokenizer=tok, report_to=["wandb"] if run is not None else "none", progress=False)
    except BaseException:
        wb.finish(run, None, failed=True)
        raise
    rec = _record(spec, plan, cfg.model, td, res, {"train_loss": res["train_loss"], "steps": res["steps"],
                                                   "time_s": res["train_time_s"] + res["eval_time_s"]})
    wb.finish(run, rec)
    return rec


def _probe_in_sweep(cfg, encoder, todo, td, fingerprint, hparams, subset, wb, store, pooling, cache, records, bar,
                    by_plan=None):
    plan = todo[0][1]
    seeds = [s.seed for s, _, _ in todo]
    if by_plan and (plan.hash, td.task.name, "train") not in cache:
        # first probe of this task: the features of every plan of the task still to run, in one
        # pass sharing the layers plans start with (``probe.fill_feature_cache``)
        pending = [items[0][1] for items in by_plan.values()
                   if any(store.get(TRACK, key_fields(fingerprint, p, s, hparams, subset, td.sources)) is None
                          for s, p in items)]
        fill_feature_cache(cache, encoder, pending or [plan], td.task.name, {"train": td.train, **td.evals},
                           pooling, cfg.probe_hp.extract_batch_size)
    out = probe(encoder, plan, td.task, td.train, td.evals, cfg.probe_hp, seeds, pooling, cache=cache,
                cache_key=(plan.hash, td.task.name), progress=False)
    for s, plan_, kf in todo:
        res = out[s.seed]
        run = wb.start(s, wandb_config(s, plan_, cfg.model, fingerprint, hparams, subset))
        rec = _record(s, plan_, cfg.model, td, res, {"time_s": res["time_s"], "pooling": pooling})
        store.put(TRACK, kf, rec)
        wb.finish(run, rec)
        records.append(_relabel(rec, s))
        bar.update(1)


# ---- summary ------------------------------------------------------------------------------------
def _mean_std(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return None, None, 0
    if any(isinstance(v, float) and math.isnan(v) for v in vals):
        return float("nan"), None, len(vals)
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else None), len(vals)


def _fmt(mean, std):
    if mean is None:
        return "–"
    if isinstance(mean, float) and math.isnan(mean):
        return "nan"
    return f"{mean:.1f}" if std is None else f"{mean:.1f} ± {std:.1f}"


def _label_order(label: str):
    name, _, rest = label.partition(":")
    order = list(SWEEP_VARIANTS)
    n = 0
    for part in rest.split(","):
        if part.startswith("n="):
            n = int(part[2:])
    return (order.index(name) if name in order else len(order), n, label)


def summary_table(records: list[dict], tasks: list[str] | None = None) -> str:
    """Markdown: one table per (model, mode); rows variant x N, columns tasks and the average.

    Cells are the task score (mean of the official metrics x 100) as mean ± std over seeds; the
    average column is the paper's unnormalized mean of the task means over the tasks shown.
    """
    lines = []
    keyed: dict = {}
    for r in records:
        keyed.setdefault((r.get("model_name"), r["mode"]), []).append(r)
    for (model, mode), recs in sorted(keyed.items(), key=lambda kv: (str(kv[0][0]), MODES.index(kv[0][1]))):
        task_list = tasks or [t for t in T.TASKS if any(r["task"] == t for r in recs)]
        seeds = sorted({r["seed"] for r in recs})
        lines += [f"### {model} — {mode} (task score ×100, mean ± std over seeds {seeds})", ""]
        lines.append("| variant | plan | " + " | ".join(task_list) + " | avg |")
        lines.append("|---|---|" + "---:|" * (len(task_list) + 1))
        for label in sorted({r["label"] for r in recs}, key=_label_order):
            rows = [r for r in recs if r["label"] == label]
            plans = sorted({r["plan_text"] for r in rows})
            plan_txt = plans[0] if len(plans) == 1 else f"{len(plans)} plans (seeded)"
            cells, means = [], {}
            for t in task_list:
                m, s, _ = _mean_std([r["score"] for r in rows if r["task"] == t])
                cells.append(_fmt(m, s))
                if m is not None:
                    means[t] = m
            avg = glue_average(means) if len(means) == len(task_list) else None
            lines.append(f"| {label} | `{plan_txt}` | " + " | ".join(cells) + f" | {_fmt(avg, None)} |")
        lines.append("")
    return "\n".join(lines)


def write_report(path, records, header: str) -> None:
    atomic_write_text(Path(path), header.rstrip() + "\n\n" + summary_table(records) + "\n")
