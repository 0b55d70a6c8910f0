"""``painters decoder run --dry-run``: what a sweep would run, and roughly how long, before it runs.

Nothing heavy happens: the model's depth and fingerprint come from its config or GGUF header
(``models.model_info``), the tasks' documents are read (they are small and their selection is part
of every record's key), and the store is asked which records exist. The time estimate uses this
store's own timings: for each task, the seconds a finished record of the same model took per
full-model-equivalent pass (``seconds_per_plan`` divided by the plan's executions / T), times the
pending work in the same unit. With no finished record of a task yet there is no estimate for
it, and the output says so rather than guess.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from glue_painters.results import ResultsStore

from .config import DecoderSweepConfig, PlanSpec, expand
from .evaluate import load_tasks
from .sweep import TRACK, _pick_device, _pick_dtype, key_fields


@dataclass
class DryRun:
    model: str
    num_layers: int
    rows: list[PlanSpec]
    tasks: dict[str, int]                      # task -> documents
    pending: dict[str, list[PlanSpec]]         # task -> rows without a record
    seconds_per_pass: dict[str, float | None]  # task -> measured seconds per full-model pass
    generation: list[str] = field(default_factory=list)  # how each generate_until task's plans are split

    @property
    def pending_count(self) -> int:
        return sum(len(v) for v in self.pending.values())

    def estimate_seconds(self) -> tuple[float, list[str]]:
        """(seconds for the pending tasks that have a timing, tasks without one)."""
        total, unknown = 0.0, []
        for task, rows in self.pending.items():
            rate = self.seconds_per_pass.get(task)
            if rows and rate is None:
                unknown.append(task)
            elif rows:
                total += rate * sum(r.plan.executions for r in rows) / self.num_layers
        return total, unknown


def dry_run(cfg: DecoderSweepConfig, *, results_dir=None, data_dir=None, device=None, dtype=None) -> DryRun:
    from glue_painters.models import model_info

    info = model_info(cfg.model)
    t = info["num_layers"]
    rows = expand(cfg, t)
    data = load_tasks(cfg.tasks, data_dir, cfg.limit, cfg.lm_eval_options())
    dtype = _pick_dtype(dtype or cfg.dtype, _pick_device(device or cfg.device))
    store = ResultsStore(results_dir)
    pending = {name: [r for r in rows if not store.has(TRACK, key_fields(info["fingerprint"], r, name, d.subset, dtype))]
               for name, d in data.items()}
    rates: dict[str, list[float]] = {}
    for rec in store.records(TRACK):
        timing, key = rec.get("timing") or {}, rec.get("key") or {}
        if key.get("model") == info["fingerprint"] and rec.get("task") in data and timing.get("seconds_per_plan"):
            full_passes = rec.get("executions", t) / t
            rates.setdefault(rec["task"], []).append(timing["seconds_per_plan"] / max(full_passes, 1e-9))
    split = generation_split(cfg, info, data, pending, dtype)
    return DryRun(cfg.model, t, rows, {n: len(d.items) for n, d in data.items()}, pending,
                  {n: statistics.median(rates[n]) if n in rates else None for n in data}, split)


def generation_split(cfg: DecoderSweepConfig, info: dict, data: dict, pending: dict, dtype: str,
                     batch_size: int | None = None) -> list[str]:
    """One line per generate_until task: how ``generation_engine.plan_groups`` will split its
    pending plans under ``generation_memory`` (prompts batched and tokenized as the engine does;
    K/V bytes per token from the config)."""
    from pathlib import Path

    from .generation_engine import decode_units, group_bytes, kv_bytes_from_config

    todo = {n: rows for n, rows in pending.items() if rows and data[n].task.kind == "generate_until"}
    if not todo:
        return []
    budget, batch_size = cfg.generation_memory, batch_size or cfg.batch_size
    where = info.get("converted") or (info["path"] if Path(info["path"]).is_dir() else None)
    try:
        from transformers import AutoConfig, AutoTokenizer

        config, tok = AutoConfig.from_pretrained(where), AutoTokenizer.from_pretrained(where)
    except Exception:  # a GGUF not converted yet, a hub name offline: say so rather than guess
        return [f"{n}: all {len(rows)} plans decode together"
                + (f"; the split under {budget / 2**30:.1f} GB is decided when the model loads" if budget else "")
                for n, rows in todo.items()]
    per_token = kv_bytes_from_config(config, 4 if dtype == "float32" else 2)
    lines = []
    for name, rows in todo.items():
        plans = list({r.plan.text: r.plan for r in rows}.values())
        by_setting: dict[tuple, list[int]] = {}
        for r in (r for it in data[name].items for r in it.requests):
            by_setting.setdefault((tuple(r.until), r.max_gen_toks), []).append(len(tok(r.context)["input_ids"]))
        shapes = []
        for (_, gen), lengths in by_setting.items():  # batched as Generator.prepare batches them
            lengths.sort(reverse=True)
            shapes += [(len(lengths[s:s + batch_size]), lengths[s], gen) for s in range(0, len(lengths), batch_size)]
        units = decode_units(shapes, plans, per_token, budget)
        chunks = len({chunk for chunk, _ in units})
        worst = max(group_bytes(g, sum(shapes[i][0] for i in c), max(shapes[i][1] + shapes[i][2] for i in c),
                                per_token) for c, g in units)
        bound = f"under {budget / 2**30:.1f} GB" if budget else "with no memory bound"
        lines.append(f"{name}: {len(plans)} plans {bound}: {len(units)} decoding unit(s) ({chunks} batch(es) of "
                     f"prompts x groups of plans sharing first layers), largest K/V {worst / 2**30:.2f} GB")
    return lines


def render(d: DryRun) -> str:
    lines = [f"{d.model}: {d.num_layers} layers; {len(d.rows)} plans x {len(d.tasks)} tasks "
             f"({', '.join(f'{t} {n} docs' for t, n in d.tasks.items())})", "",
             f"{'row':32} {'exec':>4}  {'pending tasks':<40} plan"]
    for r in d.rows:
        todo = [t for t, rows in d.pending.items() if r in rows]
        lines.append(f"{r.spec.text:32} {r.plan.executions:4d}  {(','.join(todo) or 'done'):<40} {r.plan.text}")
    seconds, unknown = d.estimate_seconds()
    timed = [t for t, rows in d.pending.items() if rows and t not in unknown]
    if not d.pending_count:
        cost = "nothing to do"
    elif not timed:
        cost = "no time estimate: no finished record of these tasks for this model in the store yet"
    else:
        cost = (f"about {seconds / 60:.1f} min for {', '.join(timed)} at this store's measured speed"
                + (f"; no timing yet for {', '.join(unknown)}" if unknown else ""))
    lines += ["", f"{d.pending_count} of {len(d.rows) * len(d.tasks)} records to compute; {cost}"]
    lines += [f"generation: {line}" for line in d.generation]
    return "\n".join(lines)
