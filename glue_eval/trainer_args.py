"""transformers' own ``TrainingArguments`` for GLUE fine-tuning: every field of it can be given, on
the one-run command line (``--gradient_accumulation_steps 4``, parsed by transformers'
``HfArgumentParser``, so spellings, types and choices are exactly ``run_glue.py``'s) and in a sweep
config's ``finetune:`` section (``gradient_accumulation_steps: 4``).

Why not hand-written flags: ``TrainingArguments`` has over a hundred fields, grows with every
release, and its users know them by name; taking them from the dataclass itself keeps the command
line in step with whichever transformers release is installed.

Which fields change a result decides the record key. Our own hyperparameters
(``FinetuneHParams``) are keyed as they always were; a ``TrainingArguments`` field *beyond* them is
keyed only when it is given with a value other than its default, so a run without such fields has
the same key as before and old records still match. Fields that cannot change a finished run's
scores (``NEUTRAL``: logging, saving, evaluation during training, reporting, hub settings) are never
keyed: turning on eval curves must not re-run a sweep. The list is of fields known to be neutral,
not of fields known to matter, so a field added by a later release is keyed (at worst a needless
re-run, never a stale record reused).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from enum import Enum
from functools import lru_cache

from glue_painters.errors import UserError

# TrainingArguments fields that are our own hyperparameters under another name (FinetuneHParams).
OWN = {"learning_rate": "learning_rate", "per_device_train_batch_size": "batch_size",
       "num_train_epochs": "epochs", "weight_decay": "weight_decay", "warmup_steps": "warmup_steps",
       "per_device_eval_batch_size": "eval_batch_size", "bf16": "bf16", "fp16": "fp16"}
# Set by the run itself: the run's seed, its folder, and W&B (--wandb/--no-wandb, a config's wandb:).
RESERVED = {"output_dir": "the run's folder (--output-dir)", "seed": "the run's seed (--seed, or a sweep's seeds)",
            "report_to": "W&B is the run's own: --wandb/--no-wandb, or a wandb: section in the config"}
NEUTRAL = frozenset("""
    output_dir logging_strategy logging_steps logging_first_step log_on_each_node logging_nan_inf_filter
    include_num_input_tokens_seen log_level log_level_replica disable_tqdm report_to run_name project
    trackio_space_id trackio_bucket_id trackio_static_space_id logging_dir
    eval_strategy eval_steps eval_delay eval_on_start eval_do_concat_batches eval_use_gather_object
    eval_accumulation_steps batch_eval_metrics include_for_metrics prediction_loss_only
    save_only_model save_strategy save_steps save_on_each_node save_total_limit save_safetensors
    enable_jit_checkpoint push_to_hub hub_token hub_private_repo hub_model_id hub_strategy
    hub_always_push hub_revision skip_memory_metrics do_train do_eval do_predict resume_from_checkpoint
    local_rank ddp_timeout dataloader_num_workers dataloader_pin_memory dataloader_persistent_workers
    dataloader_prefetch_factor dataloader_multiprocessing_context torch_empty_cache_steps
    restore_callback_states_from_checkpoint
""".split())
GROUP = "transformers TrainingArguments (any field; the paper's defaults above win over transformers')"


def _training_arguments():
    from transformers import TrainingArguments
    return TrainingArguments


@lru_cache(maxsize=1)
def field_names() -> frozenset[str]:
    return frozenset(f.name for f in fields(_training_arguments()) if f.init)


class _Raise(argparse.ArgumentParser):
    """An HfArgumentParser-built parser whose errors are one-line ``UserError``s (config values)."""

    def error(self, message):
        raise UserError(message)


@lru_cache(maxsize=1)
def _value_parser():
    """transformers' own parser of every field, without defaults: only what is given comes back."""
    from transformers import HfArgumentParser
    hf = HfArgumentParser(_training_arguments(), add_help=False)
    return _without_defaults(_Raise(add_help=False, parents=[hf], allow_abbrev=False))


def parent_parser() -> argparse.ArgumentParser:
    """Every ``TrainingArguments`` field as a command-line option (transformers' spellings, both
    ``--a_b`` and ``--a-b``), under one help heading, with no defaults: a value is there only when
    given. For ``argparse.ArgumentParser(parents=[...], conflict_handler="resolve")``."""
    from transformers import HfArgumentParser

    class Grouped(_training_arguments()):  # noqa: D401 - only names the help section
        _argument_group_name = GROUP

    return _without_defaults(HfArgumentParser(Grouped, add_help=False))


def _without_defaults(parser):
    """Every option's default removed (not ``set_defaults``, which would put the marker itself in
    the result), so parsing returns only the fields given."""
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    return parser


def _tokens(value) -> list[str]:
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    if isinstance(value, dict):
        return [json.dumps(value)]
    return [str(value)]


def read(settings: dict, where: str) -> dict:
    """``{field: value}`` of TrainingArguments fields, each value read as the command line reads it
    (so ``2e-5`` written in YAML is a number, ``cosine`` a scheduler). One-line error naming the field."""
    names = field_names()
    out = {}
    for name, value in settings.items():
        if name in RESERVED:
            raise UserError(f"{where}: {name} is set by the run itself: {RESERVED[name]}")
        if name not in names:
            raise UserError(f"{where}: unknown setting {name}")
        try:
            ns = _value_parser().parse_args([f"--{name}", *_tokens(value)])
        except UserError as e:
            raise UserError(f"{where}: {name}: {e}") from None
        out[name] = getattr(ns, name)
    return out


def _plain(value):
    return value.value if isinstance(value, Enum) else value


def keyed(settings: dict) -> dict:
    """The settings that decide a result: not ``NEUTRAL`` and not at their default."""
    defaults = {f.name: f.default for f in fields(_training_arguments())}
    return {k: _plain(v) for k, v in sorted(settings.items())
            if k not in NEUTRAL and _plain(v) != _plain(defaults.get(k))}


def build(**kwargs):
    """``TrainingArguments(**kwargs)``; its refusal (a bad combination) as one line."""
    try:
        return _training_arguments()(**kwargs)
    except (ValueError, TypeError) as e:
        raise UserError(f"TrainingArguments: {str(e).strip().splitlines()[0]}") from None
