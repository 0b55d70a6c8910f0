"""``painters decoder run --dry-run``: what a sweep would run, and roughly how long, before it runs.

Nothing heavy happens: the model's depth and fingerprint come from its config or GGUF header
(``models.model_info``), the tasks' documents are read (they are small and their selection is part
of every record's key), and the store is asked which records exist. The time estimate uses this
store's own timings: for each task, the seconds a finished record of the same model took per
full-model-equivalent pass (``seconds_per_plan`` divided by the plan's executions / T), times the
pending work in the same unit, per document (a record of 200 documents times the pending part's
count). Executions are counted as they are, so a duplicated block (``duplicate``: T + (j-i)(times-1)
executions) costs more than the full model. With no finished record of a task yet there is no
estimate for it, and the output says so rather than guess.

With ``holdout:`` the rows are counted on each task's scan part; the held-out round (the full model
and the scan's winners on the held-out part) is known only once the scan is done: when the store
already holds the whole scan it is listed as it will run, otherwise as its upper bound (the full
model and two winners per task, each at the dearest row's cost).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from glue_painters.results import ResultsStore

from .config import DecoderSweepConfig, PlanSpec, expand
from .evaluate import load_tasks
from .holdout import choose, split_tasks
from .sweep import TRACK, _pick_device, _pick_dtype, key_fields


@dataclass
class DryRun:
    model: str
    num_layers: int
    rows: list[PlanSpec]
    tasks: dict[str, int]                      # task -> documents
    pending: dict[str, list[PlanSpec]]         # task -> rows without a record (on the scan part, with a holdout)
    seconds_per_doc: dict[str, float | None]   # task -> measured seconds per document per full-model pass
    generation: list[str] = field(default_factory=list)  # how each generate_until task's plans are split
    holdout: dict | None = None                # {fraction, seed}
    held_docs: dict[str, int] = field(default_factory=dict)            # task -> held-out documents
    held_pending: dict[str, list[PlanSpec]] = field(default_factory=dict)  # known held-out rows without a record
    held_bound: dict[str, int] = field(default_factory=dict)  # task -> executions of the upper bound (scan not done)

    @property
    def pending_count(self) -> int:
        return sum(len(v) for v in self.pending.values())

    @property
    def scan_docs(self) -> dict[str, int]:
        return {t: n - self.held_docs.get(t, 0) for t, n in self.tasks.items()}

    def work(self) -> dict[str, int]:
        """Task -> pending documents x layer executions (the held-out round's bound included)."""
        out = {}
        for t in self.tasks:
            scan = self.scan_docs[t] * sum(r.plan.executions for r in self.pending.get(t, []))
            held = sum(r.plan.executions for r in self.held_pending.get(t, [])) or self.held_bound.get(t, 0)
            out[t] = scan + self.held_docs.get(t, 0) * held
        return out

    def estimate_seconds(self) -> tuple[float, list[str]]:
        """(seconds for the pending tasks that have a timing, tasks without one)."""
        total, unknown = 0.0, []
        for task, work in self.work().items():
            rate = self.seconds_per_doc.get(task)
            if work and rate is None:
                unknown.append(task)
            elif work:
                total += rate * work / self.num_layers
        return total, unknown


def dry_run(cfg: DecoderSweepConfig, *, results_dir=None, data_dir=None, device=None, dtype=None) -> DryRun:
    from glue_painters.models import model_info

    info = model_info(cfg.model)
    t = info["num_layers"]
    rows = expand(cfg, t)
    data = load_tasks(cfg.tasks, data_dir, cfg.limit, cfg.lm_eval_options())
    dtype = _pick_dtype(dtype or cfg.dtype, _pick_device(device or cfg.device))
    store = ResultsStore(results_dir)
    scan, held = split_tasks(data, cfg.holdout, f"config {cfg.source}: ") if cfg.holdout else (data, {})
    fp = info["fingerprint"]
    pending = {name: [r for r in rows if not store.has(TRACK, key_fields(fp, r, name, d.subset, dtype))]
               for name, d in scan.items()}
    rates: dict[str, list[float]] = {}
    for rec in store.records(TRACK):
        timing, key = rec.get("timing") or {}, rec.get("key") or {}
        if key.get("model") == fp and rec.get("task") in data and timing.get("seconds_per_plan") and rec.get("n"):
            full_passes = rec.get("executions", t) / t
            rates.setdefault(rec["task"], []).append(timing["seconds_per_plan"] / max(full_passes, 1e-9) / rec["n"])
    held_pending, held_bound = {}, {}
    if held:
        if not any(pending.values()):  # the scan is in the store: the held-out round is known
            choice = choose([store.get(TRACK, key_fields(fp, r, n, d.subset, dtype)) for n, d in scan.items()
                             for r in rows])
            first = {}
            for r in rows:
                first.setdefault(r.plan.text, r)
            full = next(r for r in rows if r.variant == "full").plan.text
            held_pending = {n: [first[p] for p in dict.fromkeys([full, *choice.plans_for(n)])
                                if not store.has(TRACK, key_fields(fp, first[p], n, d.subset, dtype))]
                            for n, d in held.items()}
        else:
            dearest = max(r.plan.executions for r in rows)
            held_bound = {n: t + 2 * dearest for n in held}
    split = generation_split(cfg, info, scan, pending, dtype)
    return DryRun(cfg.model, t, rows, {n: len(d.items) for n, d in data.items()}, pending,
                  {n: statistics.median(rates[n]) if n in rates else None for n in data}, split,
                  cfg.holdout, {n: len(d.items) for n, d in held.items()}, held_pending, held_bound)


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
    docs = (", ".join(f"{t} {n} docs" for t, n in d.tasks.items()) if not d.holdout else
            ", ".join(f"{t} {d.scan_docs[t]} scan + {d.held_docs[t]} held-out docs" for t in d.tasks))
    lines = [f"{d.model}: {d.num_layers} layers; {len(d.rows)} plans x {len(d.tasks)} tasks ({docs})"
             + (f"; {sum(r.plan.executions for r in d.rows)} layer executions per token over the plans, "
                f"{sum(r.plan.executions for r in d.rows) / d.num_layers:.1f} full-model passes" if d.rows else ""), "",
             f"{'row':32} {'exec':>4}  {'pending tasks':<40} plan"]
    for r in d.rows:
        todo = [t for t, rows in d.pending.items() if r in rows]
        lines.append(f"{r.spec.text:32} {r.plan.executions:4d}  {(','.join(todo) or 'done'):<40} {r.plan.text}")
    seconds, unknown = d.estimate_seconds()
    timed = [t for t, work in d.work().items() if work and t not in unknown]
    if not any(d.work().values()):
        cost = "nothing to do"
    elif not timed:
        cost = "no time estimate: no finished record of these tasks for this model in the store yet"
    else:
        cost = (f"about {seconds / 60:.1f} min for {', '.join(timed)} at this store's measured speed"
                + (f"; no timing yet for {', '.join(unknown)}" if unknown else ""))
    lines += ["", f"{d.pending_count} of {len(d.rows) * len(d.tasks)} records to compute; {cost}"]
    if d.holdout:
        rule = f"held-out split: fraction {d.holdout['fraction']:g}, seed {d.holdout['seed']}, chosen before the scan"
        if d.held_bound:
            lines.append(f"{rule}; then the full model and the scan's winners (at most 2 per task) on the held-out "
                         f"documents: at most {3 * len(d.held_bound)} records, counted at the dearest row's cost "
                         f"(winners are known when the scan is done)")
        else:
            todo = sum(len(v) for v in d.held_pending.values())
            lines.append(f"{rule}; held-out round: {todo} records to compute ("
                         + "; ".join(f"{t}: {', '.join(r.spec.text for r in rows) or 'done'}"
                                     for t, rows in d.held_pending.items()) + ")")
    lines += [f"generation: {line}" for line in d.generation]
    return "\n".join(lines)
