"""The GLUE track: the nine tasks, their official metrics, fine-tuning and head-only probing of a
rewired encoder, and sweeps over the paper's variants. A sibling of ``decoder_eval``: it uses the
library (``glue_painters``: plans, rewiring, models, results store); the application
(``painters``: the command line, reports) is built on it.

A sweep, in the order it runs (``painters glue run CONFIG``):

* ``config``     - the YAML config, checked before anything runs
* ``runs``       - the runs it asks for (label x task x mode x seed)
* ``records``    - record keys and bodies, one record per label; finding a run's record
* ``processes``  - several processes (accelerate launch, torchrun): who runs what
* ``pipeline``   - ``run_sweep``: pending runs -> share -> fine-tunes -> probes -> records
* ``steps``      - the work of the runs: fine-tuning a plan, probing a task's plans, one run alone
* ``summary``    - the summary table

What the steps use:

* ``tasks``        - task table (HF ``glue`` fields and label codes), loading and checking data
* ``data``         - a task's rows subset and tokenized, and the data files' hashes for keys
* ``glue_metric``  - the official metrics as a local ``evaluate`` module (works offline)
* ``metrics``      - scoring, task score, the paper's GLUE average
* ``hparams``      - fine-tuning and probing hyperparameters
* ``modeling``     - loading encoders, their weights' fingerprint, the probe's pooling
* ``finetune``     - ``transformers.Trainer`` fine-tuning under a plan
* ``trainer_args`` - every ``TrainingArguments`` field on that command line and in configs; which are keyed
* ``saved_model``  - the fine-tuned model and tokenizer left in a one-run ``--output-dir``, and reloading it
* ``probe``        - frozen body, cached features, linear heads
* ``wandb_runs``   - one W&B run per record
"""
