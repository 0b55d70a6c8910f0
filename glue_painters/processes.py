"""The processes of a sweep launched by ``accelerate launch``, torchrun or mpirun: one type for
both tracks (``Processes``), how work is dealt among them (``share_work``), and the one line a
launch that did not make the processes it was asked for gets (``launch_problem``).

Why the index and count are read once, when the sweep starts, and the waits meet on torch's
process group rather than on accelerate's shared state: building a ``TrainingArguments`` resets
that state (on a CPU machine to a one-process view), so after a first fine-tune it would answer
"one process, the main one" on every process and its wait would not wait.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Mapping

_WORLD_SIZE_VARS = ["WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"]


def world_size() -> int:
    """How many processes the launcher started (1 for a plain run), from its environment (read as
    accelerate's ``get_int_from_env`` reads it; not imported here, every command asks this)."""
    for name in _WORLD_SIZE_VARS:
        value = os.environ.get(name, "")
        if value.strip().isdigit():
            return int(value)
    return 1


@dataclass(frozen=True)
class Processes:
    """This process among those launched: its index, the count, its index on this machine."""

    process_index: int = 0
    num_processes: int = 1
    local_process_index: int = 0

    @classmethod
    def of_launch(cls, cpu_group: bool = True) -> "Processes":
        """The processes the launcher started; a process group is made only when there are
        several (one process alone behaves as a plain run).

        ``cpu_group``: a gloo (or MPI) group whatever device the model is on. A sweep whose processes
        only wait for each other wants it: it needs no GPU of its own, so several processes may share
        one GPU. A sweep that trains with ``Trainer`` passes False, so that the group is the one its
        data-parallel training uses (NCCL on GPUs; gloo on a CPU machine)."""
        if world_size() <= 1:
            return cls()
        import torch
        from accelerate import PartialState

        # the timeout is long because the processes wait for the slowest one's share at the end;
        # if one process fails, the launcher stops the others
        state = PartialState(cpu=cpu_group or not torch.cuda.is_available(), timeout=timedelta(days=7))
        return cls(state.process_index, state.num_processes, state.local_process_index)

    @property
    def is_main_process(self) -> bool:
        return self.process_index == 0

    is_main = is_main_process

    @property
    def index(self) -> int:
        return self.process_index

    @property
    def count(self) -> int:
        return self.num_processes

    def wait_for_everyone(self) -> None:
        """All processes meet here."""
        if self.num_processes > 1:
            import torch.distributed as dist

            dist.barrier()

    wait = wait_for_everyone

    @contextlib.contextmanager
    def main_process_first(self):
        """The main process runs the block first (e.g. writes a cache), then the others."""
        if not self.is_main_process:
            self.wait_for_everyone()
        yield
        if self.is_main_process:
            self.wait_for_everyone()


def process_state(cpu_group: bool = True) -> Processes:
    """``Processes.of_launch`` (the name both tracks called it by)."""
    return Processes.of_launch(cpu_group)


def share_work(costs: Mapping[Any, float], num_processes: int) -> list[list]:
    """Deal work groups out to processes: largest first, each to the least loaded process (ties:
    the lower rank). Deterministic from ``costs`` alone, so every process computes the same
    split without talking to the others; every group lands on exactly one process."""
    shares: list[list] = [[] for _ in range(num_processes)]
    loads = [0.0] * num_processes
    for key in sorted(costs, key=lambda k: (-costs[k], repr(k))):
        rank = min(range(num_processes), key=lambda r: (loads[r], r))
        shares[rank].append(key)
        loads[rank] += costs[key]
    return shares


def launch_problem(parent_cmdline: list[str] | None = None) -> str | None:
    """One line when a launcher was asked for several processes and started one: ``accelerate
    launch --num_processes N`` without ``--multi_gpu`` on a machine with one GPU or none runs the
    script once, quietly. Read from the launcher's own command line (this process's parent);
    None when the launch is what it says, or when that cannot be known."""
    if world_size() > 1:
        return None
    if parent_cmdline is None:
        try:
            raw = Path(f"/proc/{os.getppid()}/cmdline").read_bytes()
        except OSError:
            return None
        parent_cmdline = [a for a in raw.decode(errors="replace").split("\0") if a]
    text = " ".join(parent_cmdline)
    if "accelerate" not in text or "launch" not in text:
        return None
    asked = _flag_value(parent_cmdline, "--num_processes") or _flag_value(parent_cmdline, "--num-processes")
    if asked is None or not asked.isdigit() or int(asked) <= 1:
        return None
    if any(f in parent_cmdline for f in ("--multi_gpu", "--multi-gpu")):
        return None
    return (f"accelerate launch --num_processes {asked} started one process: with one GPU or none add --multi_gpu "
            f"(or use torchrun --nproc_per_node {asked}); running as one process")


def _flag_value(argv: list[str], flag: str) -> str | None:
    for i, a in enumerate(argv):
        if a == flag and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None
