"""LoRA healing: train low-rank adapters on a text corpus under a plan, then evaluate again.

A skipped (or otherwise rewired) model loses accuracy partly because the kept layers no longer
see the inputs they were trained on; a few hundred steps of LoRA on plain text can recover much of
it. The pieces are stock: ``peft`` injects the adapters (into the *original* modules of the layers
the plan runs, so every plan entry that runs a layer trains the same adapter), ``transformers.Trainer``
trains (so ``accelerate launch -m painters.cli heal ...`` runs it data-parallel, with mixed
precision on a GPU), and the decoder track's ``evaluate_plans`` scores the plan before and after.
Both scores go into the results store (``healed`` false / true, the healing settings in the key,
the unhealed score also in the healed record), and the adapter folder records its base model,
plan and settings (``glue_painters.adapters``), so ``painters heal eval --adapter DIR`` scores it
again later and ``painters export --adapter DIR`` merges it into a shallower checkpoint.

Default corpus: WikiText-2 *train* in the data directory if present; the bundled copy here lacks
it, so the validation split is used instead and the note printed says so (it is not one of the
evaluation benchmarks). Any .txt (blank-line separated) or .jsonl (``text`` field) file works.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from glue_painters import adapters
from glue_painters.outputs import output_folder
from glue_painters.results import DEFAULT_ROOT, ResultsStore, record_key
from glue_painters.rewire import num_layers
from glue_painters.tracking import Tracker, run_config, run_group

from .evaluate import evaluate_plans, load_tasks
from .heal_pairs import plan_label
from .heal_train import (HEAL_VERSION, HealConfig, _corpus_name, corpus_blocks, corpus_documents,  # noqa: F401
                         default_corpus, heal_key, train_lora)
from .sweep import PlanSpec, TRACK, _pick_device, _pick_dtype, key_fields, model_fingerprint, save_result, versions

DEFAULT_TASKS = ["lambada_openai", "arc_easy", "arc_challenge", "hellaswag", "winogrande"]


def plan_spec(spec: str, num_layers_: int) -> PlanSpec:
    """A sweep row for a variant spec (``skip:n=8``) or plan text, as the sweep names them."""
    return PlanSpec.of(spec, num_layers_)


@dataclass
class _Scoring:
    """One plan on one model's weights, scored into the store unhealed or healed."""

    store: ResultsStore
    data: dict
    tokenizer: object
    spec: PlanSpec
    fingerprint: str
    dtype: str
    model_name: str
    batch_size: int
    config: dict  # the records' "config" (corpus, adapter)

    def key(self, task: str, heal: dict | None) -> dict:
        return key_fields(self.fingerprint, self.spec, task, self.data[task].subset, self.dtype, heal is not None, heal)

    def scores(self, model, heal: dict | None = None) -> dict:
        """{task: metrics}, from the store where it has them (a sweep's or an earlier heal's)."""
        todo = {n: d for n, d in self.data.items() if not self.store.has(TRACK, self.key(n, heal))}
        if todo:
            (results,) = evaluate_plans(model, self.tokenizer, [self.spec.plan], todo, batch_size=self.batch_size).values()
            for n, r in results.items():
                save_result(self.store, self.key(n, heal), self.spec, r, model_name=self.model_name,
                            config=dict(self.config, heal=heal), extra=self._unhealed(n) if heal else None)
        return {n: self.store.get(TRACK, self.key(n, heal))["metrics"] for n in self.data}

    def _unhealed(self, task: str) -> dict:
        """The twin a healed record points at, with its scores: the pair readable from one file."""
        twin = self.key(task, None)
        return {"unhealed": {"key_hash": record_key(twin), "metrics": (self.store.get(TRACK, twin) or {}).get("metrics")}}


def _checked_outputs(results_dir, out_dir) -> None:
    """Output folders checked before any model loads or trains (one line, exit 2)."""
    output_folder(results_dir or DEFAULT_ROOT, "--results")
    output_folder(out_dir or "runs/heal", "--out")


def adapter_folder(model_name: str, plan_hash: str, identity: str, out_dir=None) -> Path:
    """Where a heal's adapter goes: ``out_dir``, else ``runs/heal/<model>-<plan hash>-<id>``, ``id``
    naming the healing settings too (steps, lr, rank, corpus, ... and the weights), so a heal with
    other settings gets a folder of its own instead of replacing an adapter already exported or
    scored (``identity``: the key of model, plan and settings, also the heal's W&B run id)."""
    return Path(out_dir) if out_dir else Path("runs/heal") / f"{Path(model_name).name}-{plan_hash}-{identity[:8]}"


def refuse_other_adapter(folder: Path, fingerprint: str, plan_hash: str, settings: dict, flag: str) -> None:
    """One line, before any training, when ``folder`` holds an adapter of other weights, another
    plan or other healing settings: a second heal must never silently replace the first. An
    adapter of the same ones is trained again (the same run) and replaced."""
    import json

    meta_path = folder / "adapter" / adapters.HEAL_FILE
    if not meta_path.is_file():
        return
    from glue_painters.errors import UserError

    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        theirs = {"weights": meta["base_model"]["fingerprint"], "plan": meta["plan"]["hash"], **meta["heal"]}
    except (ValueError, KeyError, TypeError):
        raise UserError(f"{flag} {folder} holds an adapter whose {meta_path.name} is unreadable; remove "
                        f"{folder / 'adapter'} or choose another --out") from None
    ours = {"weights": fingerprint, "plan": plan_hash, **settings}
    differ = [f"{k} {theirs.get(k)} there, {v} here" for k, v in ours.items() if theirs.get(k) != v]
    if differ:
        raise UserError(f"{flag} {folder} holds an adapter healed with other settings ({'; '.join(differ)}); "
                        f"choose another --out (or remove {folder / 'adapter'})")


def _source(model):
    from glue_painters.errors import UserError
    from glue_painters.models import source_of

    try:
        return source_of(model)
    except UserError:  # built in memory (tests)
        return None


def heal(model_name: str, spec: str, *, tasks=None, limit=None, corpus=None, data_dir=None, results_dir=None,
         out_dir=None, cfg: HealConfig = HealConfig(), device=None, dtype=None, batch_size: int = 16,
         max_docs: int | None = None, model=None, tokenizer=None, wandb: bool = False) -> dict:
    """Evaluate ``spec`` on ``model_name``, heal it with LoRA, evaluate again; store both.

    ``wandb``: the healing is one W&B run (id from the adapter's identity: model, plan, settings),
    with Trainer's loss curve while it trains and the before/after scores in its summary.

    Returns ``{"before": {task: metrics}, "after": {...}, "adapter": path, "note": str, ...}``.
    A before-score already in the store (from a sweep with the same subset) is reused. Under
    ``accelerate launch`` every process trains (data parallel) and the main one scores and writes.
    ``model``/``tokenizer`` skip loading (tests).
    """
    from accelerate import PartialState

    from glue_painters.models import load_model

    state = PartialState()
    data = load_tasks(list(tasks or DEFAULT_TASKS), data_dir, limit)  # bad task/data fails before any training
    path, note = (Path(corpus), "") if corpus else default_corpus(data_dir)
    documents = corpus_documents(path, max_docs)
    _checked_outputs(results_dir, out_dir)
    device = _pick_device(device or (str(state.device) if state.num_processes > 1 else None))
    dtype = _pick_dtype(dtype, device)
    if model is None:
        model, tok = load_model(model_name, dtype=dtype, device=device)
    else:
        tok, dtype = tokenizer, str(next(model.parameters()).dtype).replace("torch.", "")
    pspec = plan_spec(spec, num_layers(model))
    fingerprint, settings = model_fingerprint(model), heal_key(cfg, path, max_docs)
    identity = record_key({"heal": settings, "model": fingerprint, "plan": pspec.plan.hash})
    out = adapter_folder(model_name, pspec.plan.hash, identity, out_dir)
    refuse_other_adapter(out, fingerprint, pspec.plan.hash, settings, "--out" if out_dir else "the default folder")
    meta = adapters.adapter_meta(base_model=model_name, source=_source(model), fingerprint=fingerprint, spec=spec,
                                 plan=pspec.plan, num_layers=num_layers(model), heal=settings,
                                 corpus=_corpus_name(path, data_dir), dtype=dtype, documents=len(documents),
                                 versions=versions())
    scoring = _Scoring(ResultsStore(results_dir), data, tok, pspec, fingerprint, dtype, model_name, batch_size,
                       {"corpus": meta["corpus"], "adapter": str(out / "adapter")})
    before = scoring.scores(model) if state.is_main_process else None
    tracker = Tracker(wandb and state.is_main_process, Path(results_dir or DEFAULT_ROOT))
    run = tracker.start(identity,
                        name=f"heal {pspec.spec.text}", group=run_group(model_name, "heal", "heal", pspec.spec),
                        job_type="heal", config=run_config(track="decoder", model=model_name, spec=pspec.spec,
                                                           plan=pspec.plan, task="+".join(data), mode="heal",
                                                           **{f"heal/{k}": v for k, v in settings.items()}))
    start = time.perf_counter()
    peft_model = train_lora(model, tok, pspec.plan, documents, cfg, out, device, ["wandb"] if run else None)
    train_seconds = time.perf_counter() - start
    after = None
    if state.is_main_process:
        adapters.save_adapter(peft_model, out / "adapter", dict(meta, train_seconds=round(train_seconds, 1)))
        after = scoring.scores(peft_model.get_base_model(), settings)
    if run is not None:
        run.summary.update({f"{when}/{t}/{m}": v for when, scores in (("unhealed", before), ("healed", after))
                            for t, metrics in scores.items() for m, v in metrics.items() if isinstance(v, (int, float))})
        run.finish()
    state.wait_for_everyone()
    return {"before": before, "after": after, "adapter": str(out / "adapter"), "note": note, "wandb": tracker.finish(),
            "plan": pspec.plan.text, "label": plan_label(pspec.variant, pspec.param_dict, pspec.plan.text),
            "heal": settings, "documents": len(documents), "train_seconds": round(train_seconds, 1)}


def heal_eval(adapter, *, tasks=None, limit=None, data_dir=None, results_dir=None, model_name=None, device=None,
              dtype=None, batch_size: int = 16, model=None, tokenizer=None) -> dict:
    """Score a saved adapter (``painters heal``'s folder) on ``tasks``, beside the unhealed plan.

    The base model, plan and healing settings come from the adapter folder; ``model_name``
    points at the same weights elsewhere (checked by fingerprint). The records have the keys
    ``heal`` gave them, so scores ``heal`` already stored are reused, new tasks are added.
    """
    from glue_painters.models import load_model, resolve_model

    info = adapters.read_adapter(adapter)
    data = load_tasks(list(tasks or DEFAULT_TASKS), data_dir, limit)
    output_folder(results_dir or DEFAULT_ROOT, "--results")
    name = model_name or info.base_name_or_path
    device = _pick_device(device)
    if model is None:
        adapters.check_base(info, name, resolve_model(name).fingerprint)  # before the weights load
        model, tok = load_model(name, dtype=_pick_dtype(dtype, device), device=device)
    else:
        tok = tokenizer
    adapters.check_base(info, name, model_fingerprint(model))
    pspec = plan_spec(info.spec, num_layers(model))
    adapters.check_plan(info, pspec.plan)
    dtype = str(next(model.parameters()).dtype).replace("torch.", "")
    scoring = _Scoring(ResultsStore(results_dir), data, tok, pspec, info.fingerprint, dtype, info.base_model,
                       batch_size, {"corpus": info.meta.get("corpus"), "adapter": str(info.folder)})
    before = scoring.scores(model)
    peft_model = adapters.load_adapter(model, info)
    after = scoring.scores(peft_model.get_base_model(), info.heal)
    return {"before": before, "after": after, "adapter": str(info.folder), "plan": pspec.plan.text,
            "label": plan_label(pspec.variant, pspec.param_dict, pspec.plan.text), "heal": info.heal}
