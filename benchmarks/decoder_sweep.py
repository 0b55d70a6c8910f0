"""Our decoder sweep vs. stock lm-evaluation-harness, plan by plan, on the same documents.

Times ``decoder_eval.evaluate_plans`` over a set of plans (one call: tokenize and batch once,
one row per multiple-choice item, shared layer prefixes, scored positions only) against stock
lm-eval evaluating the same plans one after another (``HFLM(pretrained=model)`` over the model
rewired by ``glue_painters.rewire``, task YAMLs that include the stock ones and read our local
files). lm-eval gets its leanest path: one ``TaskManager`` and one task load (its one-time
"setup", reported apart), then ``lm_eval.evaluator.evaluate`` per plan (no per-run environment
collection or task indexing, which ``simple_evaluate`` would add) - after applying, per plan, what
``simple_evaluate`` applies to the tasks first (default few-shot count, the few-shot seed:
``lm_eval_interop.seed_like_simple_evaluate``), so its prompts are stock lm-eval's. The run stops
if any stock prompt differs from ours (``prompt_mismatches``). Then compares every request's
loglikelihood and every metric.

Writes ``<out>.json`` and ``<out>.md`` (with the command that produced them). Loglikelihood tasks
only: generation (GSM8K) has its own benchmark, ``generation_sweep.py``.

    python benchmarks/decoder_sweep.py --limit 5 --n 8
"""

from __future__ import annotations

import argparse
import json
import os
import math
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no hub here: fail lookups fast instead of timing out

import torch  # noqa: E402

from decoder_eval.evaluate import evaluate_plans, load_tasks
from decoder_eval.lm_eval_interop import local_task_yamls, prompt_mismatches, seed_like_simple_evaluate
from glue_painters import variants
from glue_painters.models import load_model
from glue_painters.results import atomic_write_json, atomic_write_text
from glue_painters.rewire import num_layers, rewired

LL_TASKS = ["lambada_openai", "arc_easy", "arc_challenge", "hellaswag", "winogrande"]
SWEEP_VARIANTS = ["skip", "middle_repeat", "reverse", "random", "parallel", "looped_parallel"]


def plans_for(t: int, ns: list[int]):
    out = [("full", {}, variants.build("full", t))]
    for n in ns:
        for v in SWEEP_VARIANTS:
            params = {"n": n, **({"seed": 0} if v == "random" else {}), **({"k": 3} if v == "looped_parallel" else {})}
            out.append((v, params, variants.build(v, t, **params)))
    return out


def stock_lm_eval(model, tok, plans, tasks, limit, data_dir, batch_size):
    from lm_eval.evaluator import evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    with tempfile.TemporaryDirectory(prefix="painters-bench-") as tmp:
        start = time.perf_counter()
        names = local_task_yamls(tmp, data_dir, tasks)
        manager = TaskManager(include_path=tmp)
        task_dict = manager.load(list(names.values()))  # loads the documents once
        setup = time.perf_counter() - start
        per_plan, results = [], {}
        for _, _, plan in plans:
            start = time.perf_counter()
            seed_like_simple_evaluate(task_dict)  # as simple_evaluate does before each evaluate
            with rewired(model, plan):
                lm = HFLM(pretrained=model, tokenizer=tok, batch_size=batch_size)
                out = evaluate(lm=lm, task_dict=task_dict, limit=limit, log_samples=True, bootstrap_iters=0)
            per_plan.append(time.perf_counter() - start)
            back = {v: k for k, v in names.items()}
            results[plan.text] = {back[k]: {"results": out["results"][k], "samples": out["samples"][k]}
                                  for k in out["results"] if k in back}
    return setup, per_plan, results


def compare(ours, stock, plans, tasks):
    worst_ll, worst_metric, mismatched_greedy, n_requests = 0.0, 0.0, 0, 0
    for _, _, plan in plans:
        for task in tasks:
            mine, theirs = ours[plan.text][task], stock[plan.text][task]
            for sample in theirs["samples"]:
                got = mine.samples[sample["doc_id"]]["results"]
                for ours_r, resp in zip(got, sample["resps"], strict=True):
                    ll, greedy = resp[0]
                    worst_ll = max(worst_ll, abs(ours_r["loglikelihood"] - float(ll)))
                    mismatched_greedy += ours_r["greedy"] != bool(greedy)
                    n_requests += 1
            for metric, value in mine.metrics.items():
                other = theirs["results"][f"{metric},none"]
                delta = abs(math.log(value) - math.log(other)) if metric == "perplexity" else abs(value - other)
                worst_metric = max(worst_metric, delta)
    return {"max_abs_delta_loglikelihood": worst_ll, "max_abs_delta_metric": worst_metric,
            "greedy_mismatches": mismatched_greedy, "requests_compared": n_requests}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--limit", type=int, default=5, help="first N documents of each task")
    ap.add_argument("--n", type=int, nargs="+", default=[8], help="N values; each gets the paper's six variants")
    ap.add_argument("--tasks", nargs="+", default=LL_TASKS)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", default="reports/decoder_sweep_bench")
    args = ap.parse_args(argv)

    model, tok = load_model(args.model)
    plans = plans_for(num_layers(model), args.n)
    start = time.perf_counter()
    data = load_tasks(args.tasks, args.data_dir, args.limit)
    ours = evaluate_plans(model, tok, [p for _, _, p in plans], data, batch_size=args.batch_size, log_samples=True)
    ours_seconds = time.perf_counter() - start
    setup, per_plan, stock = stock_lm_eval(model, tok, plans, args.tasks, args.limit, args.data_dir, args.batch_size)
    for _, _, plan in plans:
        differ = prompt_mismatches(data, {t: stock[plan.text][t]["samples"] for t in args.tasks})
        if differ:
            raise SystemExit(f"stock lm-eval's prompts are not ours under {plan.text}: {differ[0]} "
                             f"({len(differ)} documents): the comparison would be meaningless")
    stock_seconds = setup + sum(per_plan)
    diff = compare(ours, stock, plans, args.tasks)
    report = {
        "command": "".join(f"{v}={os.environ[v]} " for v in ("OMP_NUM_THREADS",) if v in os.environ)
                   + "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])]),
        "model": args.model, "limit": args.limit, "tasks": args.tasks, "batch_size": args.batch_size,
        "plans": [{"variant": v, "params": p, "plan": plan.text} for v, p, plan in plans],
        "ours_seconds": round(ours_seconds, 2), "stock_seconds": round(stock_seconds, 2),
        "stock_setup_seconds": round(setup, 2), "stock_seconds_per_plan": [round(s, 2) for s in per_plan],
        "speedup": round(stock_seconds / ours_seconds, 2),
        "speedup_without_stock_setup": round(sum(per_plan) / ours_seconds, 2), **diff,
        "metrics": {plan.text: {t: ours[plan.text][t].metrics for t in args.tasks} for _, _, plan in plans},
        "environment": {"torch": torch.__version__, "threads": torch.get_num_threads(), "python": platform.python_version(),
                        "device": "cpu", "dtype": str(next(model.parameters()).dtype)},
    }
    import lm_eval

    report["environment"]["lm_eval"] = lm_eval.__version__
    out = Path(args.out)
    atomic_write_json(out.with_suffix(".json"), report)
    rows = "\n".join(f"| {v} | {p} | `{plan.text}` | {s:.1f} |" for (v, p, plan), s in zip(plans, per_plan))
    atomic_write_text(out.with_suffix(".md"), f"""# Decoder sweep vs. stock lm-eval ({args.model}, CPU)

Command:

```bash
{report['command']}
```

{len(plans)} plans x {len(args.tasks)} loglikelihood tasks ({', '.join(args.tasks)}), first {args.limit} documents each,
batch size {args.batch_size}, {report['environment']['dtype']} on CPU ({report['environment']['threads']} threads),
lm-eval {report['environment']['lm_eval']}.

| | wall time |
|---|---:|
| ours: `evaluate_plans` over all plans (one call) | {ours_seconds:.1f} s |
| stock lm-eval, plan by plan (incl. {setup:.1f} s building the tasks once) | {stock_seconds:.1f} s |
| **speed-up** | **{report['speedup']:.2f}x** ({report['speedup_without_stock_setup']:.2f}x without lm-eval's one-time setup) |

Agreement over {diff['requests_compared']} requests: max |Δ loglikelihood| = {diff['max_abs_delta_loglikelihood']:.2e},
max |Δ metric| = {diff['max_abs_delta_metric']:.2e} (acc, acc_norm; log perplexity), greedy flags that differ:
{diff['greedy_mismatches']}.

Stock lm-eval per plan:

| variant | params | plan | seconds |
|---|---|---|---:|
{rows}

The machine is a shared 2-core CPU; absolute times move with the other jobs on it, the ratio less so.
""")
    print(json.dumps({k: report[k] for k in ("ours_seconds", "stock_seconds", "speedup", "speedup_without_stock_setup", "max_abs_delta_loglikelihood",
                                             "max_abs_delta_metric", "greedy_mismatches")}, indent=1))


if __name__ == "__main__":
    main()
