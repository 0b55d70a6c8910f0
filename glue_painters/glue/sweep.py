"""Alias of the GLUE sweep's old module: its names now live in the ``glue_eval`` modules below
(config, runs, data, records, wandb_runs, processes, steps, pipeline, summary)."""

from glue_eval.config import MODES, N_VARIANTS, SWEEP_VARIANTS, SweepConfig, load_config  # noqa: F401
from glue_eval.data import TaskData, _file_sha, prepare_task, task_sources  # noqa: F401
from glue_eval.pipeline import run_sweep  # noqa: F401
from glue_eval.processes import _probe_owners, is_main_process  # noqa: F401
from glue_eval.records import (SCORING_VERSION, TRACK, code_version, key_fields,  # noqa: F401
                               make_record, plan_key)
from glue_eval.runs import RunSpec, expand  # noqa: F401
from glue_eval.steps import run_finetune_one  # noqa: F401
from glue_eval.summary import summary_table, write_report  # noqa: F401
from glue_eval.wandb_runs import WandbRuns as _Wandb, wandb_config  # noqa: F401
