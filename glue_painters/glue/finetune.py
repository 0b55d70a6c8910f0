"""Alias of ``glue_eval.finetune`` and of the one-run command line ``glue_eval.finetune_cli`` (the
GLUE track moved to the top-level package ``glue_eval``), so that the documented
``accelerate launch -m glue_painters.glue.finetune ...`` and old imports keep working."""

import sys

from glue_eval.finetune import *  # noqa: F401,F403
from glue_eval.finetune import PLAN_FILE, PlanTrainer, finetune, training_args  # noqa: F401
from glue_eval.finetune_cli import build_parser, main  # noqa: F401
from glue_eval.hparams import FinetuneHParams, add_hparam_options, hparams_from_dict as _hparams_from_dict  # noqa: F401

if __name__ == "__main__":
    sys.exit(main())
