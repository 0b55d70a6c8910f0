"""Load lm-eval tasks for a sweep: by name, from a user's YAML folders, and our six over local files.

Names resolve through lm-eval's ``TaskManager``: first over the sweep's ``task_paths`` (a user's
folders of task YAMLs, as lm-eval's ``--include_path``) and the YAMLs ``lm_eval_interop`` writes for
our six benchmarks over the local data folder; lm-eval's own task index (slow to build: every YAML
it ships) is read only when a name is found in neither. A group (``mmlu``) runs as its subtasks,
each its own task of the sweep. Few-shot count, seed, ``gen_kwargs`` and ``limit`` are applied as
``lm_eval.simple_evaluate`` applies them (a task whose YAML sets ``num_fewshot: 0`` keeps it).

The six built-in names (``tasks.TASKS``) keep their thin local-data mapping: their files are read
and checked by our loader first (one-line errors naming the file and item), and their record key
is the one they always had (split, data hash, limit, few-shot files), since the requests lm-eval
builds from those files are the ones the hand-written tasks built (tests check it document by
document). Any other task's key holds its name, version, a hash of its resolved config (a changed
YAML or ``!function`` is a new key), a hash of its local data files (or the datasets' own
fingerprints), the number of documents, the limit and the few-shot settings.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from glue_painters.errors import UserError

from .data import HUB, resolve_data_dir
from .lm_eval_tasks import LmEvalTask, LmEvalTaskData
from .tasks import TASKS

DEFAULT_FEWSHOT_SEED = 1234  # lm-eval's ``fewshot_random_seed``


@dataclass
class LmEvalOptions:
    """What a sweep config says about its lm-eval tasks, spelled as lm-eval spells it."""

    task_paths: list[str] = field(default_factory=list)
    num_fewshot: int | dict | None = None  # one number for every task, or {task: n}
    fewshot_seed: int = DEFAULT_FEWSHOT_SEED
    gen_kwargs: dict | None = None
    chance: dict = field(default_factory=dict)  # {task: chance level}, overriding the choices'

    def fewshot_for(self, name: str) -> int | None:
        return self.num_fewshot.get(name) if isinstance(self.num_fewshot, dict) else self.num_fewshot

    def cache_key(self, name: str) -> str:
        return json.dumps([self.fewshot_for(name), self.fewshot_seed, self.gen_kwargs, self.chance.get(name)],
                          sort_keys=True, default=str)


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _folders(paths: Sequence[str]) -> list[str]:
    for p in paths:
        if not Path(p).is_dir():
            raise UserError(f"task path {p} is not a folder of lm-eval task YAMLs")
    return [str(Path(p).resolve()) for p in paths]


_DEFAULT_INDEX: list = []


def _manager(paths: list[str], names: Sequence[str]):
    """A ``TaskManager`` over ``paths``; with lm-eval's own tasks too if a name is not in them."""
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=paths or None, include_defaults=False) if paths else None
    if manager is not None and all(n in manager.all_tasks for n in names):
        return manager
    if not paths and _DEFAULT_INDEX:
        return _DEFAULT_INDEX[0]
    manager = TaskManager(include_path=paths or None, include_defaults=True)
    if not paths:
        _DEFAULT_INDEX.append(manager)  # building lm-eval's index takes seconds: once per process
    return manager


def known_task(name: str, task_paths: Sequence[str] = ()) -> bool:
    """Whether lm-eval (with ``task_paths``) knows ``name`` as a task, group or tag."""
    return name in _manager(_folders(task_paths), [name]).all_tasks


# ---- keys ---------------------------------------------------------------------------------------
def _stable(obj):
    """``dump_config`` made hashable across runs: functions by name and source, not address."""
    if isinstance(obj, dict):
        return {str(k): _stable(v) for k, v in obj.items() if k != "data_files"}
    if isinstance(obj, (list, tuple)):
        return [_stable(v) for v in obj]
    if callable(obj):
        try:
            source = inspect.getsource(obj)
        except (OSError, TypeError):
            source = ""
        name = f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', type(obj).__name__)}"
        return f"{name}:{hashlib.sha256(source.encode()).hexdigest()[:16]}"
    if isinstance(obj, (int, float, bool, type(None))):
        return obj
    return re.sub(r" at 0x[0-9a-fA-F]+", "", str(obj))  # an object's repr: its address is not config


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def data_fingerprint(task) -> str:
    """A hash of the task's local data files (content, not path), else the datasets' fingerprints."""
    files = (task.config.dataset_kwargs or {}).get("data_files")
    flat = [files] if isinstance(files, str) else (list(files.values()) if isinstance(files, dict) else files or [])
    flat = [f for v in flat for f in ([v] if isinstance(v, str) else v)]
    if flat and all(Path(f).is_file() for f in flat):
        return _sha(b"".join(hashlib.sha256(Path(f).read_bytes()).digest() for f in flat))
    dataset = getattr(task, "dataset", None) or {}
    return "hub:" + _sha(json.dumps({k: getattr(v, "_fingerprint", None) for k, v in dataset.items()}).encode())


def generic_subset(name: str, task, n: int, limit: int | None, seed: int) -> dict:
    config = json.dumps(_stable(task.dump_config()), sort_keys=True)
    return {"lm_eval_task": name, "version": task.VERSION, "config": _sha(config.encode()),
            "data": data_fingerprint(task), "n": n, "limit": limit if limit is not None and limit < len(task.eval_docs)
            else None, "num_fewshot": task.get_config("num_fewshot"), "fewshot_seed": seed}


# ---- loading ------------------------------------------------------------------------------------
def _load(manager, lm_name: str, name: str) -> dict:
    """The leaf tasks lm-eval loads for one name (one task, or a group's subtasks)."""
    if lm_name not in manager.all_tasks:
        raise UserError(f"unknown task '{name}': neither one of {', '.join(TASKS)} nor an lm-eval task "
                        f"(nor in the config's task_paths)")
    try:
        return dict(manager.load([lm_name])["tasks"])
    except UserError:
        raise
    except Exception as e:  # no network for a hub dataset, a broken YAML: one line, naming the task
        raise UserError(f"lm-eval could not load task '{name}': {_first_line(e)}") from None


def _configure(task, fewshot: int | None, options: LmEvalOptions, max_gen_toks: int | None) -> None:
    """num_fewshot, seed and gen_kwargs as ``simple_evaluate`` applies them."""
    if fewshot is not None and task.get_config("num_fewshot") != 0:
        task.set_config(key="num_fewshot", value=fewshot)
    elif task.get_config("num_fewshot") is None:
        task.set_config(key="num_fewshot", value=0)
    task.set_fewshot_seed(seed=options.fewshot_seed)
    if task.get_config("output_type") == "generate_until":
        kwargs = dict(options.gen_kwargs or {})
        if max_gen_toks is not None:
            kwargs.setdefault("max_gen_toks", max_gen_toks)
        if kwargs:
            task.set_config(key="generation_kwargs", value=kwargs, update=True)


def _build(name: str, task, limit: int | None, options: LmEvalOptions, builtin) -> LmEvalTaskData:
    from lm_eval.evaluator_utils import get_sample_size

    hand = builtin.task if builtin is not None else None
    _configure(task, options.fewshot_for(name), options, getattr(hand, "max_gen_toks", None))
    task.build_all_requests(limit=get_sample_size(task, limit), rank=0, world_size=1)
    lm = LmEvalTask(name, task, primary=hand.primary if hand else None, chance=options.chance.get(name))
    items = lm.items(task.instances)
    if builtin is None:
        subset = generic_subset(name, task, len(items), limit, options.fewshot_seed)
    else:
        subset = dict(builtin.subset)
        if options.fewshot_for(name) is not None and task.get_config("num_fewshot") != hand.num_fewshot:
            subset.update(num_fewshot=task.get_config("num_fewshot"), fewshot_seed=options.fewshot_seed)
        if options.gen_kwargs and lm.kind == "generate_until":
            subset["gen_kwargs"] = options.gen_kwargs
    return LmEvalTaskData(lm, items, subset)


_CACHE: dict[tuple, LmEvalTaskData] = {}


def load(names: Sequence[str], data_dir=None, limits: Mapping[str, int | None] | None = None,
         options: LmEvalOptions | None = None) -> dict[str, LmEvalTaskData]:
    """Every named task's items, lm-eval building the requests; a group gives one entry per subtask."""
    options = options or LmEvalOptions()
    limits = limits or {}
    where = resolve_data_dir(data_dir)
    # the six: our files read and checked first (errors name file and item), their keys as before
    builtin = {n: TASKS[n].load(where, limits.get(n)) for n in names if n in TASKS}
    found: dict[str, dict[str, LmEvalTaskData]] = {}
    todo = []
    for name in names:
        key = (name, json.dumps(builtin[name].subset, sort_keys=True), options.cache_key(name)) if name in builtin else None
        if key is not None and key in _CACHE:  # tests and searches load the same files many times
            found[name] = {name: _CACHE[key]}
        else:
            todo.append((name, key))
    if todo:
        found.update(_load_all(todo, where, builtin, limits, options))
    return {ours: data for name in names for ours, data in found[name].items()}


def _load_all(todo, where, builtin, limits, options) -> dict[str, dict[str, LmEvalTaskData]]:
    from .lm_eval_interop import local_task_yamls

    found: dict[str, dict[str, LmEvalTaskData]] = {}
    with tempfile.TemporaryDirectory(prefix="painters-tasks-") as tmp:
        local = [n for n, _ in todo if n in builtin] if where != HUB else []
        mapping = local_task_yamls(tmp, where, local) if local else {}
        paths = ([tmp] if mapping else []) + _folders(options.task_paths)
        manager = _manager(paths, [mapping.get(n, n) for n, _ in todo])
        for name, key in todo:
            lm_name = mapping.get(name, name)
            found[name] = {}
            for leaf, task in _load(manager, lm_name, name).items():
                ours = name if leaf == lm_name else leaf
                found[name][ours] = _build(ours, task, limits.get(name), options, builtin.get(name))
                if key is not None:
                    _CACHE[key] = found[name][ours]
    return found
