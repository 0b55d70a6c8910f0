"""Alias of ``glue_eval.finetune`` (the GLUE track moved to the top-level package ``glue_eval``);
``python -m glue_painters.glue.finetune`` / ``accelerate launch -m glue_painters.glue.finetune``
still run one fine-tuning run."""

import sys

import glue_eval.finetune

if __name__ == "__main__":
    sys.exit(glue_eval.finetune.main())
sys.modules[__name__] = glue_eval.finetune
