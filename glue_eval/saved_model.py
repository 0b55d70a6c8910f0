"""The fine-tuned model of a one-run command, kept in its ``--output-dir`` as users of
transformers' ``run_glue.py`` expect: ``from_pretrained(output_dir)`` (model and tokenizer) loads it.

A rewired model has to carry its plan, and which form does depends on the plan:

* **Sequential plans** (skip, reorder, repeat, full; e.g. ``skip:n=1``, ``middle_repeat``,
  ``reverse``, ``random``): the folder holds the *materialized* model
  (``glue_painters.rewire.export_plan``): an ordinary checkpoint whose layer list is the plan's
  (a skipped layer absent, a repeated one copied), the plan's text in ``config.painters_plan``.
  Plain ``AutoModelForSequenceClassification.from_pretrained`` gives exactly the fine-tuned run,
  with no glue-painters installed - what a ``run_glue.py`` user, a pipeline or the hub expects.
* **Plans with a parallel group** (``parallel``, ``looped_parallel``) have no such form (an
  averaged group is not a stack of layers). The folder then holds the model as trained - all T
  original layers once, as Trainer's checkpoints do (``finetune.PlanTrainer``) - plus
  ``painters_plan.json``, the plan to put on after loading. ``load_finetuned`` does that; plain
  ``from_pretrained`` would run every layer once instead, so the command says so when it saves.

So ``painters_plan.json`` in a folder always means "put this plan on after loading" (checkpoints
and parallel runs), and ``config.painters_plan`` means "these layers were already arranged by
this plan" (exports).
"""

from __future__ import annotations

import json
from pathlib import Path

from glue_painters.plans import Plan
from glue_painters.rewire import apply_plan, current_plan, export_plan, remove_plan

from .finetune import PLAN_FILE


def save_finetuned(model, plan: Plan, out_dir, tokenizer=None) -> str:
    """Save ``model`` (fine-tuned under ``plan``, plan on) and ``tokenizer`` into ``out_dir``;
    returns one line saying what was saved and how it reloads."""
    out = Path(out_dir)
    if plan.is_sequential:
        export_plan(model, plan, out, tokenizer=tokenizer)
        (out / PLAN_FILE).unlink(missing_ok=True)  # left by an earlier run of a parallel plan here
        return (f"fine-tuned model and tokenizer in {out} ({plan.executions} layers, arranged by plan "
                f"'{plan.text}'): AutoModelForSequenceClassification.from_pretrained({str(out)!r}) loads it")
    on = current_plan(model)
    if on is not None:
        remove_plan(model)
    try:
        model.save_pretrained(out)
    finally:
        if on is not None:
            apply_plan(model, on)
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    (out / PLAN_FILE).write_text(json.dumps(plan.to_json(), indent=1) + "\n")
    return (f"fine-tuned model and tokenizer in {out} (all layers, plan '{plan.text}' in {PLAN_FILE}: "
            f"a parallel group has no plain-checkpoint form): glue_eval.saved_model.load_finetuned({str(out)!r}) "
            "loads it with its plan on")


def load_finetuned(folder, **kwargs):
    """``(model, tokenizer)`` of a run's folder (or a checkpoint of it), its plan on when the
    folder holds ``painters_plan.json``. ``kwargs`` go to ``from_pretrained``."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = Path(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(folder) if (folder / "tokenizer_config.json").exists() else None
    if (folder / PLAN_FILE).exists():
        apply_plan(model, Plan.from_json((folder / PLAN_FILE).read_text()))
    return model, tokenizer
