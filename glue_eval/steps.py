"""The work of a sweep's runs: fine-tuning a plan, probing a task's plans, and one run alone.

Runs that build the same plan with the same seed (``reverse`` equals ``full`` when the middle is
one layer) are computed once; each of their labels gets its own record (``put``) and W&B run.
``finetune_run`` is the one fine-tuning step, for the sweep and the one-run command line alike.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Callable

from glue_painters.errors import UserError
from glue_painters.results import ResultsStore, atomic_write_json
from glue_painters.tracking import Tracker

from .data import TaskData, prepare_task
from .finetune import finetune
from .hparams import FinetuneHParams, ProbeHParams
from .probe import fill_feature_cache, probe
from .records import TRACK, KeyParts, make_record, relabel
from .runs import Run, RunSpec
from .saved_model import save_finetuned
from . import wandb_runs

Put = Callable[[Run, dict], None]


def same_computation(runs: list[Run]) -> list[list[Run]]:
    """``runs`` grouped by (plan, seed), in order: each group is computed once."""
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        groups.setdefault((run.plan.hash, run.spec.seed), []).append(run)
    return list(groups.values())


def finetune_run(model_name: str, spec: RunSpec, plan, td: TaskData, hp: FinetuneHParams, parts: KeyParts,
                 tracker: Tracker, model=None, tokenizer=None, output_dir=None, save_steps=None, resume=None,
                 progress: bool = False) -> dict:
    """Fine-tune and score one run; returns its record (not written). The model is loaded with the
    run's seed set (its head is initialised from it) unless given; checkpoints go to
    ``output_dir``, else to a temporary folder."""
    from transformers import set_seed

    from .modeling import load

    if model is None:
        set_seed(spec.seed)
        model, tokenizer = load(model_name, "sequence-classification", num_labels=td.task.num_labels)
    run = wandb_runs.start(tracker, spec, plan, parts, model_name)
    try:
        with _folder(output_dir) as out:
            res = finetune(model, plan, td.task, td.train, td.evals, hp, spec.seed, out, tokenizer=tokenizer,
                           report_to=["wandb"] if run is not None else "none", save_steps=save_steps,
                           resume=resume, progress=progress)
    except BaseException:
        tracker.finish_run(run, None, failed=True)
        raise
    rec = make_record(spec, plan, model_name, td.sizes, res,
                      {"train_loss": res["train_loss"], "steps": res["steps"], "train_time_s": res["train_time_s"],
                       "time_s": res["train_time_s"] + res["eval_time_s"], "processes": res.get("processes", 1)})
    tracker.finish_run(run, rec)
    return rec


def _folder(output_dir):
    if output_dir is not None:
        return contextlib.nullcontext(str(output_dir))
    return tempfile.TemporaryDirectory(prefix="painters-glue-")


def finetune_step(model_name: str, runs: list[Run], td: TaskData, hp: FinetuneHParams, parts: KeyParts,
                  tracker: Tracker, put: Put) -> None:
    """Fine-tune each distinct (plan, seed) of a task's pending runs once; every run gets a record."""
    for group in same_computation(runs):
        first = group[0]
        rec = finetune_run(model_name, first.spec, first.plan, td, hp, parts, tracker)
        put(first, rec)
        for run in group[1:]:
            twin = relabel(rec, run.spec)
            put(run, twin)
            wandb_runs.log_record(tracker, run.spec, run.plan, parts, model_name, twin)


def probe_step(model_name: str, encoder, runs: list[Run], td: TaskData, hp: ProbeHParams, pooling: str,
               parts: KeyParts, tracker: Tracker, put: Put) -> None:
    """Probe a task's pending runs: the features of all their plans in one pass (shared prefixes
    once, ``probe.fill_feature_cache``), then per plan every seed's head at once."""
    by_plan: dict[str, list[Run]] = {}
    for run in runs:
        by_plan.setdefault(run.plan.hash, []).append(run)
    cache: dict = {}
    fill_feature_cache(cache, encoder, [group[0].plan for group in by_plan.values()], td.task.name,
                       {"train": td.train, **td.evals}, pooling, hp.extract_batch_size)
    for group in by_plan.values():
        plan = group[0].plan
        seeds = list(dict.fromkeys(run.spec.seed for run in group))
        out = probe(encoder, plan, td.task, td.train, td.evals, hp, seeds, pooling, cache=cache,
                    cache_key=(plan.hash, td.task.name), progress=False)
        for run in group:
            res = out[run.spec.seed]
            wb_run = wandb_runs.start(tracker, run.spec, plan, parts, model_name)
            tracker.log_losses(wb_run, res["train_losses"])
            rec = make_record(run.spec, plan, model_name, td.sizes, res, {"time_s": res["time_s"], "pooling": pooling})
            put(run, rec)
            tracker.finish_run(wb_run, rec)


def run_finetune_one(spec: RunSpec, hp: FinetuneHParams, data_dir=None, sample_train=None, sample=None,
                     output_dir=None, save_steps=None, resume=False, results=None, wandb_on=False,
                     subset_seed=0, wandb_settings=None, save_model: bool = True, limit=None,
                     progress: bool = True) -> dict | None:
    """One fine-tuning run (``python -m painters.commands.finetune``): ``finetune_run`` on one model
    (data-parallel over the processes of a launch, on GPUs or the CPU; the main process alone
    writes the record and the W&B run and returns the record, the others return None);
    the fine-tuned model and tokenizer (``saved_model.save_finetuned``) and its record
    (``metrics.json``) in ``output_dir``; the record also in the results store ``results``, else
    ``$PAINTERS_RESULTS`` when set. ``resume``: True (the last checkpoint in ``output_dir``) or a
    checkpoint folder. ``limit``/``sample``: the first N evaluation rows, or a fixed random subset
    of N (keyed as a sweep keys them). The folders are checked before the model loads."""
    from transformers import set_seed

    from glue_painters.outputs import output_folder
    from glue_painters.processes import world_size
    from glue_painters.rewire import num_layers

    from .modeling import load, weights_fingerprint
    from .processes import is_main_process
    from .tasks import get_task

    results = results if results is not None else (os.environ.get("PAINTERS_RESULTS") or None)
    output_folder(output_dir, "--output-dir")
    if results:
        output_folder(results, "--results")
    task = get_task(spec.task)
    set_seed(spec.seed)
    model, tok = load(spec.model, "sequence-classification", num_labels=task.num_labels)
    plan = spec.plan(num_layers(model))
    if limit is not None and sample is not None:
        raise UserError("--limit (the first N rows) and --sample (a fixed random subset) both choose the evaluation "
                        "rows; give one")
    td = prepare_task(task.name, tok, hp.max_length, data_dir, sample_train, sample, subset_seed, first_eval=limit)
    subset = {"train": sample_train, "eval": sample, "seed": subset_seed} | ({"eval_first": limit} if limit else {})
    parts = KeyParts(weights_fingerprint(model.base_model), hp.key_dict(world_size()), subset, td.sources)
    ckpt = _checkpoint(output_dir, resume)
    tracker = Tracker(wandb_on and is_main_process(), Path(results or output_dir), dict(wandb_settings or {}))
    rec = finetune_run(spec.model, spec, plan, td, hp, parts, tracker, model=model, tokenizer=tok, output_dir=output_dir,
                       save_steps=save_steps, resume=ckpt, progress=progress)
    if is_main_process():
        if save_model:  # before metrics.json: a folder with metrics.json holds its model
            print(save_finetuned(model, plan, output_dir, tok), file=sys.stderr)
        atomic_write_json(Path(output_dir) / "metrics.json", rec)
        if results:
            ResultsStore(results).put(TRACK, parts.key(spec, plan), rec)
    where = tracker.finish()
    if where:
        print(where, file=sys.stderr)
    return rec if is_main_process() else None  # one record, printed once, whatever the process count


def _checkpoint(output_dir, resume) -> str | None:
    """The checkpoint to resume from: ``resume`` itself when it names one, the last in
    ``output_dir`` when it is True, else None."""
    from transformers.trainer_utils import get_last_checkpoint

    if isinstance(resume, (str, Path)):
        if not Path(resume).is_dir():
            raise UserError(f"--resume_from_checkpoint {resume}: no such checkpoint folder")
        return str(resume)
    ckpt = get_last_checkpoint(output_dir) if resume and Path(output_dir).is_dir() else None
    if resume and ckpt is None:
        print(f"no checkpoint in {output_dir}: starting from scratch", file=sys.stderr)
    return ckpt
