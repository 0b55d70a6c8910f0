"""``painters speculative``: prompt sets, the command and its report.

Self-speculative decoding (a rewired plan of the model drafts, the full model verifies) and how
its counts are taken are described, and measured, in ``glue_painters.speculative``; this module
only picks the prompts, runs one measurement per plan and writes the table.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch

from painters.options import add_data_dir, add_device, add_model
from glue_painters.errors import UserError
from glue_painters.jsonl import jsonl_records
from glue_painters.speculative import SpecResult, greedy_outputs, speculative_run  # noqa: F401

from decoder_eval.data import resolve_data_dir

PROMPT_SOURCES = ("gsm8k", "wikitext")


def load_prompts(spec: str, data_dir=None) -> list[str]:
    """Prompts from ``gsm8k:N`` (the first N test questions as lm-eval's gsm8k prompt ends,
    ``Question: ...\\nAnswer:``) and/or ``wikitext:N`` (openings: the first 200 characters of the
    first N WikiText-2 test paragraphs), comma separated."""
    folder = resolve_data_dir(data_dir)
    if folder == "hub":
        raise UserError("speculative prompts are read from a local data folder (--data-dir), not the hub")
    prompts: list[str] = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, count = part.partition(":")
        if name not in PROMPT_SOURCES or not count.isdigit() or int(count) < 1:
            raise UserError(f"prompt set '{part}': write SOURCE:N with SOURCE one of {', '.join(PROMPT_SOURCES)}, N >= 1")
        n = int(count)
        if name == "gsm8k":
            path = Path(folder) / "gsm8k" / "test.jsonl"
            if not path.exists():
                raise UserError(f"{path} not found (set --data-dir or PAINTERS_DATA)")
            rows = [row for _, row in zip(range(n), (r for _, r in jsonl_records(path)))]
            prompts += [f"Question: {row['question']}\nAnswer:" for row in rows]
        else:
            path = Path(folder) / "wikitext2" / "test.txt"
            if not path.exists():
                raise UserError(f"{path} not found (set --data-dir or PAINTERS_DATA)")
            # one paragraph a line; the lines between them hold a space, headings are " = Title = "
            paras = [p.strip() for p in path.read_text(encoding="utf-8").splitlines()
                     if len(p.strip()) > 200 and not p.strip().startswith("=")]
            prompts += [p[:200] for p in paras[:n]]
    if not prompts:
        raise UserError(f"no prompts in '{spec}'")
    return prompts


def markdown(results: list[SpecResult], header: str) -> str:
    lines = [header, "", "| plan | draft tokens | acceptance | tokens / verification | ms / token | "
             "greedy ms / token | speed-up | exact |", "|---|---:|---:|---:|---:|---:|---:|:-:|"]
    for r in sorted(results, key=lambda r: -r.speedup):
        mark = "—" if r.exact is None else ("✓" if r.exact else "✗")
        lines.append(f"| `{r.plan}` | {r.draft_tokens}{' (adaptive)' if r.adaptive else ''} | {r.acceptance:.3f} | "
                     f"{r.tokens_per_verification:.2f} | {r.ms_per_token:.1f} | {r.baseline_ms_per_token:.1f} | "
                     f"{r.speedup:.2f}x | {mark} |")
    return "\n".join(lines) + "\n"


def write_report(results: list[SpecResult], out: Path, header: str, meta: dict) -> None:
    """``out``.json (every field, the command) and ``out``.md (the table), written whole."""
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {**meta, "results": [asdict(r) for r in results]}
    tmp_json, tmp_md = out.with_suffix(".json.tmp"), out.with_suffix(".md.tmp")
    tmp_json.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    tmp_md.write_text(markdown(results, header), encoding="utf-8")
    tmp_json.replace(out.with_suffix(".json"))
    tmp_md.replace(out.with_suffix(".md"))


# ---- command line -----------------------------------------------------------------------------------
def _run_cli(args) -> int:
    import sys

    from glue_painters.models import load_model
    from glue_painters.rewire import num_layers
    from glue_painters.variants import resolve

    if args.max_new_tokens < 1:
        raise UserError(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")
    if args.draft_tokens < 1:
        raise UserError(f"--draft-tokens must be >= 1, got {args.draft_tokens}")
    out = Path(args.out) if args.out else None
    if out is not None and (out.with_suffix(".md").is_dir() or (out.parent.exists() and not out.parent.is_dir())):
        raise UserError(f"--out {out}: not a file path one can write (a folder of that name, or its parent is a file)")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {args.device}: CUDA is not available on this machine")
    prompts = load_prompts(args.prompts, args.data_dir)
    model, tok = load_model(args.model, device=args.device)
    t = num_layers(model)
    plans = [resolve(spec, t) for spec in args.plans]
    sample = dict(temperature=args.temperature, top_k=args.top_k) if args.sample else None
    print(f"{len(prompts)} prompts, {args.max_new_tokens} new tokens each; plain greedy decoding first ...",
          file=sys.stderr)
    greedy_outputs(model, tok, prompts[:1], 4)  # warm-up: first-call costs stay out of the timings
    baseline = greedy_outputs(model, tok, prompts, args.max_new_tokens)
    results = []
    for plan in plans:
        r = speculative_run(model, tok, plan, prompts, args.max_new_tokens, args.draft_tokens, args.adaptive,
                            args.parallel, sample, args.seed, baseline)
        results.append(r)
        mark = "—" if r.exact is None else ("exact" if r.exact else "NOT EXACT")
        print(f"{r.plan:32s} acceptance {r.acceptance:.3f}  {r.tokens_per_verification:.2f} tok/verify  "
              f"{r.ms_per_token:.1f} ms/tok (greedy {r.baseline_ms_per_token:.1f})  {r.speedup:.2f}x  {mark}")
    if out is not None:
        command = _command(args)
        header = (f"# Self-speculative decoding: {args.model}\n\nA plan of the model drafts {args.draft_tokens} "
                  f"tokens{' (adaptive)' if args.adaptive else ''}, the full model verifies "
                  f"({'sampling' if sample else 'greedy'}); {len(prompts)} prompts ({args.prompts}), "
                  f"{args.max_new_tokens} new tokens each, torch threads {torch.get_num_threads()}, device "
                  f"{args.device}.\nSpeed-up = plain greedy ms/token of the full model (timed in the same run) ÷ "
                  f"speculative ms/token. Exact = output equal to plain greedy token for token.\n\n"
                  f"Command: `{command}`")
        write_report(results, out, header, {"model": args.model, "command": command, "prompts": args.prompts,
                                            "max_new_tokens": args.max_new_tokens, "threads": torch.get_num_threads()})
        print(f"wrote {out.with_suffix('.md')} and {out.with_suffix('.json')}")
    return 0 if all(r.exact is not False for r in results) else 1


def _command(args) -> str:
    """The command that reproduces this run, from the parsed options (not ``sys.argv``: a script
    such as benchmarks/speculative.py may be what called us)."""
    import shlex

    parts = ["painters speculative", "--model", args.model, "--plans", *args.plans, "--prompts", args.prompts,
             "--max-new-tokens", str(args.max_new_tokens), "--draft-tokens", str(args.draft_tokens)]
    if args.adaptive:
        parts.append("--adaptive")
    if args.parallel != "loop":
        parts += ["--parallel", args.parallel]
    if args.sample:
        parts += ["--sample", "--temperature", str(args.temperature), "--top-k", str(args.top_k), "--seed", str(args.seed)]
    if args.device != "cpu":
        parts += ["--device", args.device]
    if args.out:
        parts += ["--out", args.out]
    return " ".join(parts[:1] + [shlex.quote(p) for p in parts[1:]])


def add_subparsers(sub) -> None:
    p = sub.add_parser(
        "speculative", help="self-speculative decoding: a rewired plan drafts, the full model verifies",
        description="Self-speculative decoding: a rewired plan of the model drafts (sharing every weight), the full "
        "model verifies, so the output is the full model's. Reports acceptance, tokens per verification, ms per "
        "token and the speed-up over plain greedy decoding timed in the same run, and checks greedy output is "
        "exact (exit 1 if not).")
    add_model(p)
    p.add_argument("--plans", nargs="+", required=True, metavar="PLAN",
                   help="draft plans: variant specs (skip:n=8, parallel:n=10, looped_parallel:n=10,k=3) or plan text")
    p.add_argument("--prompts", default="gsm8k:8,wikitext:8", help="prompt sets, SOURCE:N comma separated "
                   f"(sources: {', '.join(PROMPT_SOURCES)}; default gsm8k:8,wikitext:8)")
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--draft-tokens", type=int, default=4, help="tokens the draft proposes per verification")
    p.add_argument("--adaptive", action="store_true",
                   help="adapt the draft length per prompt (+2 after a fully accepted round, -1 otherwise)")
    p.add_argument("--parallel", choices=["loop", "batched"], default="loop", help="how the draft runs parallel groups")
    p.add_argument("--sample", action="store_true", help="sampling with the speculative acceptance rule (not greedy)")
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--top-k", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    add_device(p, "cpu")
    add_data_dir(p)
    p.add_argument("--out", metavar="PATH", help="write PATH.md and PATH.json (e.g. reports/speculative_smollm2_cpu)")
    p.set_defaults(func=_run_cli)
