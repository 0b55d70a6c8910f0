"""The sweep engine against this machine's limit: work accounting, roofline, wall time per phase.

For a sweep (the paper's seven variants at each N, ``decoder_sweep.plans_for``) on loglikelihood
tasks it prints and writes (``<out>.md`` and ``<out>.json``, with the command):

* required vs executed FLOPs per phase (``decoder_eval.work``) and their ratio;
* the machine's sustained matmul rate with torch at the engine's own shapes (every batch's
  ``rows x hidden`` against each linear of a layer, the scored rows against the vocabulary head),
  fp32 and bf16, with the thread count used, measured before and after the sweep;
* the sweep's wall time per phase (``LoglikelihoodScorer.timing``) over ``--repeats`` runs, the
  achieved rate (required FLOPs / wall) as a fraction of the matmul rate, and an op breakdown of
  one extra run under ``torch.profiler`` (matmul, attention kernel, elementwise, the rest =
  Python and dispatch);
* the machine load (``os.getloadavg``) at each measurement: the CPU is shared.

    OMP_NUM_THREADS=1 python benchmarks/engine_work.py --limit 2 --n 2 4 6 8 10 12 14
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from decoder_sweep import LL_TASKS, plans_for  # noqa: E402

from decoder_eval.evaluate import Evaluator, load_tasks  # noqa: E402
from decoder_eval.work import Shapes, sweep_work  # noqa: E402
from glue_painters.models import load_model  # noqa: E402
from glue_painters.rewire import num_layers, original_layers  # noqa: E402

LAYER_PHASES = ("prefix", "suffix")


def matmul_seconds(m: int, k: int, n: int, dtype, budget: float = 0.15) -> float:
    """Best seconds of ``linear(rows m x k, weight n x k)`` over three timed loops."""
    a, w = torch.randn(m, k, dtype=dtype), torch.randn(n, k, dtype=dtype)
    torch.nn.functional.linear(a, w)
    start = time.perf_counter()
    torch.nn.functional.linear(a, w)
    reps = max(2, int(budget / max(time.perf_counter() - start, 1e-6)))
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(reps):
            torch.nn.functional.linear(a, w)
        best = min(best, (time.perf_counter() - start) / reps)
    return best


def roofline(model, prepared, dtype) -> dict:
    """FLOP-weighted sustained matmul rate at the engine's shapes: the layers' linears at each
    batch's padded row count, the head at each batch's scored row count."""
    linears = [(m.in_features, m.out_features) for m in original_layers(model)[0].modules()
               if isinstance(m, torch.nn.Linear)]
    head = model.get_output_embeddings().weight.shape
    layer_rows = sorted({b.input_ids.numel() for p in prepared for b in p.batches})
    head_rows = sorted({len(b.rows) for p in prepared for b in p.batches})
    out = {}
    for name, shapes in (("layers", [(m, k, n) for m in layer_rows for k, n in linears]),
                         ("lm_head", [(m, head[1], head[0]) for m in head_rows])):
        flops = sum(2 * m * k * n for m, k, n in shapes)
        seconds = sum(matmul_seconds(m, k, n, dtype) for m, k, n in shapes)
        out[name] = flops / seconds
    return out


def stock_work(model, tok, shapes, plans, data, batch_size):
    """What stock lm-eval executes, counted the same way: every request its own right-padded row,
    batches of rows sorted by length, every plan from scratch, logits at every position (our
    scorer's layout with packing and sharing off). Stock's executed / our required is the best
    speed-up over stock the accounting allows."""
    from decoder_eval.loglikelihood import LoglikelihoodScorer

    plain = LoglikelihoodScorer(model, tok, batch_size, pack=False)
    return sweep_work(shapes, plans, [plain.prepare([it.requests for it in d.items]) for d in data.values()],
                      share=False)


def run(evaluator, data, plans, timing: bool) -> tuple[float, dict]:
    evaluator.scorer.timing = {} if timing else None
    start = time.perf_counter()
    for task_data in data.values():
        evaluator.run(task_data, plans)
    wall = time.perf_counter() - start
    phases = dict(evaluator.scorer.timing or {})
    evaluator.scorer.timing = None
    phases["other"] = wall - sum(phases.values())
    return wall, phases


def op_breakdown(evaluator, data, plans) -> dict:
    from torch.profiler import ProfilerActivity, profile

    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for task_data in data.values():
            evaluator.run(task_data, plans)
    wall = time.perf_counter() - start
    groups = {"matmul": ("aten::mm", "aten::addmm", "aten::bmm"),
              "attention kernel": ("aten::_scaled_dot_product_flash_attention_for_cpu",
                                   "aten::_scaled_dot_product_attention_math")}
    out = {k: 0.0 for k in (*groups, "other aten ops")}
    for event in prof.key_averages():
        seconds = event.self_cpu_time_total / 1e6
        key = next((g for g, names in groups.items() if event.key in names), "other aten ops")
        out[key] += seconds
    out["python, dispatch, profiler"] = wall - sum(out.values())
    return {"wall": wall, **out}


def measure(args) -> dict:
    torch.set_num_threads(args.threads)
    model, tok = load_model(args.model)
    plans = [p for _, _, p in plans_for(num_layers(model), args.n)]
    data = load_tasks(args.tasks, args.data_dir, args.limit)
    evaluator = Evaluator(model, tok, args.batch_size)
    prepared = [evaluator.prepare(d) for d in data.values()]
    shapes = Shapes.of(model)
    evaluator.scorer._sharing(prepared[0].batches[-1].input_ids[0, :8].tolist())  # the one-time check, untimed
    work = sweep_work(shapes, plans, prepared, evaluator.scorer.share_prefix)
    stock = stock_work(model, tok, shapes, plans, data, args.batch_size)
    loads, rates = [os.getloadavg()[0]], {}
    rates["before"] = {str(dt): roofline(model, prepared, dt) for dt in (torch.float32, torch.bfloat16)}
    runs = []
    for _ in range(args.repeats):
        loads.append(os.getloadavg()[0])
        runs.append(run(evaluator, data, plans, timing=True))
    rates["after"] = {str(dt): roofline(model, prepared, dt) for dt in (torch.float32, torch.bfloat16)}
    loads.append(os.getloadavg()[0])
    ops = op_breakdown(evaluator, data, plans) if args.profile else None
    return {"model": model, "plans": plans, "data": data, "work": work, "stock": stock, "rates": rates, "runs": runs,
            "loads": loads, "ops": ops, "prepared": prepared, "shapes": shapes}


def summarize(m: dict) -> dict:
    """Achieved rates per phase against the fp32 matmul rate (mean of before and after)."""
    work, runs = m["work"], m["runs"]
    rate = {k: statistics.mean(m["rates"][w]["torch.float32"][k] for w in ("before", "after"))
            for k in ("layers", "lm_head")}
    phases = {}
    for name in ("prefix", "suffix", "lm_head"):
        walls = [r[1].get(name, 0.0) for r in runs]
        p = work.phases[name]
        extra = _attention_share(work, name) if name in LAYER_PHASES else (0.0, 0.0)
        required, executed = p.required + extra[0], p.executed + extra[1]
        best = min(walls)
        roof = rate["layers" if name in LAYER_PHASES else "lm_head"]
        phases[name] = {"wall_s": [round(w, 2) for w in walls], "required_gflop": required / 1e9,
                        "executed_gflop": executed / 1e9, "ratio": executed / required if required else None,
                        "achieved_gflops": required / best / 1e9 if best else None,
                        "executed_gflops": executed / best / 1e9 if best else None,
                        "fraction_of_matmul_rate": required / best / roof if best else None,
                        "kernel_s_at_roofline": executed / roof, "overhead_s": best - executed / roof}
    walls = [r[0] for r in runs]
    layer_req = sum(work.phases[n].required for n in ("prefix", "suffix", "attention"))
    layer_wall = min(sum(r[1].get(n, 0.0) for n in LAYER_PHASES) for r in runs)
    return {"matmul_gflops": {k: v / 1e9 for k, v in rate.items()}, "phases": phases,
            "wall_s": [round(w, 2) for w in walls], "other_s": [round(r[1]["other"], 2) for r in runs],
            "layer_phases_fraction_of_matmul_rate": layer_req / layer_wall / rate["layers"],
            "total_fraction": work.required / min(walls) / rate["layers"]}


def _attention_share(work, name: str) -> tuple[float, float]:
    """Attention FLOPs belong to the layer phases for rates: split by the phases' layer FLOPs."""
    a = work.phases["attention"]
    total_req = sum(work.phases[n].required for n in LAYER_PHASES)
    total_exe = sum(work.phases[n].executed for n in LAYER_PHASES)
    return (a.required * work.phases[name].required / total_req, a.executed * work.phases[name].executed / total_exe)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--limit", type=int, default=2)
    ap.add_argument("--n", type=int, nargs="+", default=[2, 4, 6, 8, 10, 12, 14])
    ap.add_argument("--tasks", nargs="+", default=LL_TASKS)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--no-profile", dest="profile", action="store_false")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", default="reports/engine_work_smollm2")
    args = ap.parse_args(argv)
    m = measure(args)
    s = summarize(m)
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])])
    from engine_work_report import write

    report = write(Path(args.out), command, args, m, s)
    print(json.dumps({k: report[k] for k in ("work", "summary")}, indent=1, default=str)[:4000])


if __name__ == "__main__":
    main()
