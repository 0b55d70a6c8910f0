"""A GLUE sweep launched as several processes (``accelerate launch``, torchrun): who runs what.

As in the decoder track, the facts come from ``glue_painters.results.process_state`` and the work
is dealt with ``share_work``: fine-tuning runs use every process at once (Trainer's own data
parallelism on GPUs; on the CPU, where Trainer runs each process alone, every process trains the
same run) and only the main process writes their records; a task's probes go to one process
(they share the task's features), tasks dealt largest first.

One difference: the process index and count are read once, when the sweep starts, and the waits
meet on torch's process group. Building a ``TrainingArguments`` resets accelerate's shared state
(on a CPU machine to a one-process view), so after the first fine-tune that state would answer
"one process, the main one" on every process and its wait would not wait.
"""

from __future__ import annotations

from dataclasses import dataclass

from glue_painters.results import process_state, share_work

from .runs import RunSpec


@dataclass(frozen=True)
class Processes:
    index: int = 0
    count: int = 1

    @classmethod
    def of_launch(cls) -> "Processes":
        """This process among those launched (one process alone makes no process group)."""
        state = process_state(cpu_group=False)  # Trainer's data parallelism uses this group (NCCL on GPUs)
        return cls(state.process_index, state.num_processes)

    @property
    def is_main(self) -> bool:
        return self.index == 0

    def wait(self) -> None:
        """All processes meet here."""
        if self.count > 1:
            import torch.distributed as dist

            dist.barrier()


def _probe_owners(specs: list[RunSpec], procs: int) -> dict[str, int]:
    """The process that runs each task's probes: all of a task on one process, since its probes
    share the task's features; tasks dealt largest first (``share_work``). The same on every process."""
    counts: dict[str, int] = {}
    for s in specs:
        counts[s.task] = counts.get(s.task, 0) + (s.mode == "probe")
    return {task: rank for rank, share in enumerate(share_work(counts, procs)) for task in share}


def is_main_process() -> bool:
    """Rank 0 of the process group, or a plain run (asks the group itself, see the module doc)."""
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0
