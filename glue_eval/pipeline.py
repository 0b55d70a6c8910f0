"""A GLUE sweep from its config: pending runs -> shared among processes -> fine-tunes -> probes ->
records, on the loop both tracks share (``glue_painters.sweep.run_steps``).

``run_sweep`` fills that loop in with this track's own steps. Each run of the config (``runs.expand``) has one record per
label (``records``); the runs whose record is missing are pending, unless a record of the same
computation can be copied (an old-format record keyed by plan, or another label's). Runs that
build the same plan with the same seed are computed once (``steps``). Under ``accelerate launch``
or torchrun every process runs this and returns the whole sweep (``processes``).
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from glue_painters.errors import UserError
from glue_painters.results import DEFAULT_ROOT, ResultsStore, record_key
from glue_painters.rewire import num_layers
from glue_painters.upstream import warn_untested
from glue_painters.sweep import Steps, SweepOutcome, run_steps

from . import tasks as T
from .config import SweepConfig
from .data import prepare_task, task_sources
from .processes import Processes, _probe_owners
from .records import TRACK, KeyParts, RecordFinder
from .runs import Run, expand
from .steps import finetune_step, probe_step
from glue_painters.tracking import Tracker


@dataclass
class Sweep:
    """What every step of one sweep needs, fixed when it starts."""

    cfg: SweepConfig
    store: ResultsStore
    data_dir: object
    encoder: object
    tokenizer: object
    layers: int
    fingerprint: str
    pooling: str
    pooling_reason: str
    processes: int = 1  # a fine-tune is data-parallel over them (part of its key when more than one)
    _parts: dict = field(default_factory=dict)

    def subset(self, mode: str, task: str) -> dict:
        """What selects a run's rows (part of its key). ``eval`` is the fixed random subset
        (``sample``; ``limit`` meant it before ``sample`` existed, so old records keep their key);
        a first-N ``limit`` adds ``eval_first``, so its records are never taken for a sample's."""
        cfg = self.cfg
        out = {"train": cfg.setting(mode, "sample_train"), "eval": cfg.setting(mode, "sample", task),
               "seed": cfg.subset_seed}
        first = cfg.setting(mode, "limit", task)
        return out | ({"eval_first": first} if first is not None else {})

    def parts(self, mode: str, task: str) -> KeyParts:
        """The key fields shared by a mode's runs on a task (the probe's include the resolved pooling)."""
        if (mode, task) not in self._parts:
            hp = self.cfg.finetune_hp.key_dict(self.processes) if mode == "finetune" else {**asdict(self.cfg.probe_hp),
                                                                         "pooling": self.pooling}
            self._parts[(mode, task)] = KeyParts(self.fingerprint, hp, self.subset(mode, task),
                                                 task_sources(T.get_task(task), self.data_dir))
        return self._parts[(mode, task)]

    def runs(self) -> list[Run]:
        out = []
        for spec in expand(self.cfg, self.layers):
            plan = spec.plan(self.layers)
            out.append(Run(spec, plan, self.parts(spec.mode, spec.task).key(spec, plan)))
        return out


def run_sweep(cfg: SweepConfig, *, results_dir=None, data_dir=None, wandb_on: bool = False, progress: bool = True,
              log=print, dry: bool = False) -> SweepOutcome:
    """Run every missing run of ``cfg``; returns the sweep's records (new and already done) in the
    config's order, as the decoder track's ``run_sweep`` does. With ``dry=True`` nothing runs and
    nothing is written: the records the store has (or could copy) are collected.

    Under ``accelerate launch``/torchrun: fine-tuning runs use every process at once and only the
    main process writes their records and W&B runs; a task's probes go to one process, which
    writes them. Every process then returns the whole sweep."""
    start = time.perf_counter()
    results_dir = Path(results_dir) if results_dir is not None else DEFAULT_ROOT
    rows = {} if dry else read_rows(cfg, data_dir)  # a bad row stops the sweep before anything runs
    procs = Processes() if dry else Processes.of_launch(cpu_group=False)  # the group Trainer trains on
    if procs.is_main and not dry:
        warn_untested()  # one line on stderr when an upstream release is outside the tested window
    if not procs.is_main:
        progress, log = False, (lambda message: None)
    sweep = open_sweep(cfg, results_dir, data_dir, procs.count)
    runs = sweep.runs()
    if dry:
        kept = [rec for rec in find_records(sweep, runs, keep_copies=False) if rec is not None]
        return SweepOutcome(kept, 0, len(kept), time.perf_counter() - start, [run.spec for run in runs], list(cfg.tasks))
    log(_intro(sweep, runs))
    owners = _probe_owners([run.spec for run in runs], procs.count)
    tracker = Tracker(wandb_on, Path(results_dir), dict(cfg.wandb or {}))  # runs land in <results>/wandb/offline-run-*
    finder = RecordFinder(sweep.store)
    steps = Steps(runs, find=lambda run: _find(sweep, finder, run, keep_copy=procs.is_main),
                  share=lambda pending, procs: [r for r in pending if r.spec.mode == "finetune"
                                                or owners[r.spec.task] == procs.index],
                  compute=lambda mine: compute(sweep, mine, rows, procs, tracker, progress),
                  read=lambda run: sweep.store.get(TRACK, run.key))
    outcome = run_steps(steps, store=sweep.store, procs=procs, tracker=tracker, started=start,
                        specs=[run.spec for run in runs], tasks=cfg.tasks)
    if procs.count > 1:
        log(f"glue sweep: {procs.count} processes; {len(outcome.records)} runs of the sweep in {results_dir}")
    else:
        copied = sum(1 for rec in outcome.records if rec.get("migrated_from"))
        log(f"glue sweep: {outcome.written} runs done now, {outcome.skipped} already in {results_dir}"
            + (f" ({copied} copied from a record of the same plan)" if copied else ""))
    if outcome.wandb:
        log(outcome.wandb)
    return outcome


def read_rows(cfg: SweepConfig, data_dir) -> dict:
    """Every split of every task, read and checked: ``{(task, split): (rows, source)}``."""
    return {(t, sp): T.load_rows(t, sp, data_dir) for t in cfg.tasks
            for sp in ("train",) + T.get_task(t).eval_splits}


def open_sweep(cfg: SweepConfig, results_dir, data_dir, processes: int = 1) -> Sweep:
    """The model loaded and identified, and the probe's pooling chosen."""
    import transformers

    from .modeling import choose_pooling, load, weights_fingerprint

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    encoder, tok = load(cfg.model, "encoder")
    pooling, reason = choose_pooling(encoder, cfg.probe_hp.pooling)
    return Sweep(cfg, ResultsStore(results_dir), data_dir, encoder, tok, num_layers(encoder),
                 weights_fingerprint(encoder), pooling, reason, processes)


def find_records(sweep: Sweep, runs: list[Run], keep_copies: bool) -> list[dict | None]:
    """Each run's record: its own, else a copy of the same computation's (written when
    ``keep_copies``), else None: the run is pending."""
    finder = RecordFinder(sweep.store)
    return [_find(sweep, finder, run, keep_copies) for run in runs]


def _find(sweep: Sweep, finder: RecordFinder, run: Run, keep_copy: bool) -> dict | None:
    rec = finder.own(run.key)
    if rec is None:
        rec = finder.copy(run.spec, run.key)
        if rec is not None and keep_copy:
            sweep.store.put(TRACK, run.key, rec)
        if rec is not None:
            rec = dict(rec, key=run.key, key_hash=record_key(run.key), track=TRACK)
    return rec


def compute(sweep: Sweep, runs: list[Run], rows: dict, procs: Processes, tracker: Tracker, progress: bool) -> None:
    """Fine-tunes, then probes, of ``runs``, task by task; each record is written as it is done.
    A fine-tune runs on every process; the main process alone writes its record and W&B run."""
    from tqdm.auto import tqdm

    cfg, off = sweep.cfg, Tracker(False, Path())
    with tqdm(total=len(runs), desc="glue sweep", unit="run", disable=not progress, file=sys.stderr) as bar:
        def put(run: Run, rec: dict, writer: bool = True) -> None:
            if writer:
                sweep.store.put(TRACK, run.key, rec)
            bar.update(1)

        for (mode, task), group in _by_task(runs).items():
            parts, subset = sweep.parts(mode, task), sweep.subset(mode, task)
            hp = cfg.finetune_hp if mode == "finetune" else cfg.probe_hp
            td = prepare_task(task, sweep.tokenizer, hp.max_length, sweep.data_dir, subset["train"], subset["eval"],
                              cfg.subset_seed, rows, first_eval=subset.get("eval_first"))
            if td.sources != parts.data:  # pragma: no cover - files changed while running
                raise UserError(f"GLUE {task} data changed during the sweep")
            bar.set_postfix_str(f"{mode} {task}")
            if mode == "finetune":
                finetune_step(cfg.model, group, td, hp, parts, tracker if procs.is_main else off,
                              lambda run, rec: put(run, rec, procs.is_main))
            else:
                probe_step(cfg.model, sweep.encoder, group, td, hp, sweep.pooling, parts, tracker, put)


def _by_task(runs: list[Run]) -> dict[tuple[str, str], list[Run]]:
    groups: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.spec.mode, run.spec.task), []).append(run)
    return groups


def _intro(sweep: Sweep, runs: list[Run]) -> str:
    cfg = sweep.cfg
    modes = "; ".join(f"{m}: seeds {cfg.setting(m, 'seeds')}, subset {sweep.subset(m, cfg.tasks[0])}" for m in cfg.modes)
    return (f"glue sweep: {cfg.model} ({sweep.layers} layers, weights {sweep.fingerprint}), {len(runs)} runs "
            f"({modes}; {len(cfg.tasks)} tasks); probe pooling: {sweep.pooling} ({sweep.pooling_reason})")
