"""A GLUE sweep launched as several processes (``accelerate launch``, torchrun): who runs what.

The process state is the library's one type (``glue_painters.processes.Processes``, the decoder
track's too) and the work is dealt with its ``share_work``: fine-tuning runs use every process at
once (Trainer's data parallelism, on GPUs and on the CPU alike: ``finetune.training_args`` asks
for a gloo group on a machine without CUDA) and only the main process writes their records and
W&B runs; a task's probes go to one process (they share the task's features), tasks dealt
largest first.
"""

from __future__ import annotations

from glue_painters.processes import Processes, share_work  # noqa: F401 - Processes: the name this module had

from .runs import RunSpec


def _probe_owners(specs: list[RunSpec], procs: int) -> dict[str, int]:
    """The process that runs each task's probes: all of a task on one process, since its probes
    share the task's features; tasks dealt largest first (``share_work``). The same on every process."""
    counts: dict[str, int] = {}
    for s in specs:
        counts[s.task] = counts.get(s.task, 0) + (s.mode == "probe")
    return {task: rank for rank, share in enumerate(share_work(counts, procs)) for task in share}


def is_main_process() -> bool:
    """Rank 0 of the launch, or a plain run. Read from the launcher's environment, so it is right
    before any process group exists (a one-run fine-tune asks before Trainer makes its group) and
    after ``TrainingArguments`` has reset accelerate's shared state."""
    from accelerate.utils import get_int_from_env

    return get_int_from_env(["RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK"], 0) == 0
