"""Markdown and JSON for ``engine_work.py`` (kept apart so the measuring script stays short)."""

from __future__ import annotations

import platform

import torch

from glue_painters.results import atomic_write_json, atomic_write_text


def _g(x) -> str:
    return "-" if x is None else f"{x:,.1f}"


def write(out, command: str, args, m: dict, s: dict) -> dict:
    work = m["work"]
    report = {
        "command": command, "model": args.model, "limit": args.limit, "n": args.n, "tasks": args.tasks,
        "plans": [p.text for p in m["plans"]], "batch_size": args.batch_size, "threads": torch.get_num_threads(),
        "loadavg_1min": [round(x, 2) for x in m["loads"]],
        "work": work.to_json(), "stock_work": m["stock"].to_json(),
        "best_speedup_over_stock": m["stock"].executed / work.required, "matmul_gflops": {w: {dt: {k: v / 1e9 for k, v in r.items()} for dt, r in d.items()}
                                                  for w, d in m["rates"].items()},
        "summary": s, "ops": m["ops"],
        "environment": {"torch": torch.__version__, "python": platform.python_version(), "cpu": platform.processor(),
                        "dtype": str(next(m["model"].parameters()).dtype)},
    }
    atomic_write_json(out.with_suffix(".json"), report)
    p = work.phases
    rows = "\n".join(f"| {name} | {p[name].required / 1e9:,.1f} | {p[name].executed / 1e9:,.1f} | "
                     f"{p[name].ratio:.3f} |" for name in ("prefix", "suffix", "attention", "lm_head") if p[name].required)
    timing = "\n".join(
        f"| {name} | {', '.join(f'{w:.1f}' for w in v['wall_s'])} | {_g(v['achieved_gflops'])} | "
        f"{_g(v['executed_gflops'])} | {100 * v['fraction_of_matmul_rate']:.0f}% | {v['kernel_s_at_roofline']:.1f} | "
        f"{v['overhead_s']:.1f} |" for name, v in s["phases"].items())
    rates = "\n".join(f"| {w} | {dt} | {r['layers'] / 1e9:.1f} | {r['lm_head'] / 1e9:.1f} |"
                      for w, d in m["rates"].items() for dt, r in d.items())
    ops = ""
    if m["ops"]:
        ops = "\n".join(f"| {k} | {v:.1f} | {100 * v / m['ops']['wall']:.0f}% |" for k, v in m["ops"].items() if k != "wall")
        ops = f"""
## Where the time goes (one more run under torch.profiler, {m['ops']['wall']:.1f} s wall)

| | seconds | share |
|---|---:|---:|
{ops}
"""
    text = f"""# The sweep engine against this machine's limit ({args.model}, CPU)

Command:

```bash
{command}
```

{len(m['plans'])} plans (the paper's variants at N = {', '.join(map(str, args.n))} plus the full model) x
{len(args.tasks)} loglikelihood tasks ({', '.join(args.tasks)}), first {args.limit} documents each, batch size
{args.batch_size}, {report['environment']['dtype']}, {report['threads']} thread(s). Machine load (1-min loadavg on
this shared 2-core box) at the measurements: {', '.join(map(str, report['loadavg_1min']))}.

## Work: required vs executed (decoder_eval/work.py)

{work.tokens_required:,} distinct tokens ({work.tokens_executed:,} with padding);
{work.executions_required / max(work.tokens_required, 1):.1f} distinct layer executions per token needed by the
sweep, {work.executions_executed / max(work.tokens_executed, 1):.1f} run by the engine (sum over plans run alone:
{sum(p.executions for p in m['plans'])}).

| phase | required GFLOP | executed GFLOP | executed / required |
|---|---:|---:|---:|
{rows}
| **total** | **{work.required / 1e9:,.1f}** | **{work.executed / 1e9:,.1f}** | **{work.ratio:.3f}** |

Stock lm-eval's layout counted the same way (one right-padded row per request, every plan from scratch, logits
at every position): {m['stock'].executed / 1e9:,.1f} GFLOP executed, so the best speed-up over stock the
accounting allows is stock executed / our required = **{report['best_speedup_over_stock']:.2f}x** (ours executes
{work.executed / 1e9:,.1f}: {m['stock'].executed / work.executed:.2f}x less than stock).

## Roofline: sustained matmul rate at the engine's shapes (GFLOP/s, {report['threads']} thread(s))

| when | dtype | layer linears | LM head |
|---|---|---:|---:|
{rates}

## Achieved rate per phase (fp32 matmul rate = mean of before/after: layers {s['matmul_gflops']['layers']:.1f},
head {s['matmul_gflops']['lm_head']:.1f} GFLOP/s)

Wall per run, {args.repeats} runs; rates from the fastest. Layer phases include their attention. "kernel s" is the
executed FLOPs at the matmul rate; "overhead" is wall minus that.

| phase | wall s | required GFLOP/s | executed GFLOP/s | required / matmul rate | kernel s | overhead s |
|---|---|---:|---:|---:|---:|---:|
{timing}

Whole sweep: wall {', '.join(map(str, s['wall_s']))} s (outside the phases: {', '.join(map(str, s['other_s']))} s);
layer phases at **{100 * s['layer_phases_fraction_of_matmul_rate']:.0f}%** of the fp32 matmul rate, the whole sweep
(required FLOPs / wall) at {100 * s['total_fraction']:.0f}%.
{ops}"""
    atomic_write_text(out.with_suffix(".md"), text)
    return report
