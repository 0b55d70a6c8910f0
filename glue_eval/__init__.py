"""The GLUE track: the nine tasks, their official metrics, fine-tuning and head-only probing of a
rewired encoder, and sweeps over the paper's variants.

* ``tasks``      - task table (HF ``glue`` fields and label codes), loading and checking data
* ``glue_metric``- the official metrics as a local ``evaluate`` module (works offline)
* ``metrics``    - scoring, task score, the paper's GLUE average
* ``finetune``   - ``transformers.Trainer`` fine-tuning under a plan (``accelerate launch -m glue_eval.finetune_cli``)
* ``probe``      - frozen body, cached features, linear head
* ``sweep``      - YAML configs, results records, W&B runs, summary tables
* ``cli``        - ``painters glue run|summary``
"""
