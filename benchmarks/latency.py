"""Latency of rewired models: prefill over a batch x length grid, per-token decode with the KV cache.

Why: the paper's variants trade accuracy for compute (a skip runs fewer layers; a parallel group
could run its members at once). This measures what each plan costs in time and memory, so
accuracy can be read against latency (``painters report`` joins this JSON with the decoder
results into an accuracy-vs-latency frontier).

Models: an alias or path that ``glue_painters.models.load_model`` loads (``smollm2``, ``minilm``),
or random weights of a named shape built with ``from_config`` (``llama2-7b``, ``mistral-7b``,
``bert-large``, ``smollm2-135m``, ``small-llama``, ``tiny-llama``): timings do not depend on weight values.

Plans (default): full, skip N, parallel N, looped_parallel N k=3 (the paper's index convention,
``glue_painters.variants``; N defaults to T//4). Plans with a parallel group run under every mode
of ``--parallel`` (``loop``: members one after another; ``batched``: one vmapped call).

Repeats are interleaved: each round times every plan once before the next round starts, so a
change of load on a shared machine hits all plans alike (``--no-interleave``, and ``--compile``,
measure plan after plan). Per plan: prefill latency (median over repeats after warm-up; causal LMs compute logits of the last
position only, as generation does) and throughput; decode ms/token (a prefill of
``--decode-context`` tokens, then ``--decode-tokens`` single-token steps with the cache, each
timed; median over all steps of all repeats) at each ``--decode-batch``; peak memory
(``torch.cuda.max_memory_allocated`` on GPU, the growth of resident memory on CPU). On GPU also the
memory-bandwidth bound of a decode step: bytes the step must read (the weights of every executed
layer, once per execution, plus the head, plus the KV cache) / HBM bandwidth (``--bandwidth-tbs``,
default H100 SXM 3.35 TB/s), and the measured ms/token over it.

``--compile`` wraps the model in ``torch.compile``; ``--cuda-graphs`` compiles in
"reduce-overhead" mode (CUDA graphs) with a static KV cache. bf16 + SDPA by default on GPU, fp32
on CPU.

Writes ``reports/latency_<model>_<device>.json`` and ``.md`` with the command that produced them.

    OMP_NUM_THREADS=2 python benchmarks/latency.py --model smollm2 --batch 1 --length 64,256 --decode-batch 1,4
    python benchmarks/latency.py --model llama2-7b --device cuda              # on a GPU machine
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no hub here: fail lookups fast instead of timing out

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from glue_painters import variants  # noqa: E402
from glue_painters.plans import Parallel, Repeat  # noqa: E402
from glue_painters.rewire import apply_plan, num_layers, parallel_mode, remove_plan  # noqa: E402

# name -> (model_type, config kwargs): published shapes, random weights
SHAPES = {
    "llama2-7b": ("llama", dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                                num_attention_heads=32, num_key_value_heads=32, vocab_size=32000,
                                max_position_embeddings=4096)),
    "mistral-7b": ("mistral", dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                                   num_attention_heads=32, num_key_value_heads=8, vocab_size=32000,
                                   max_position_embeddings=32768, sliding_window=4096)),
    "smollm2-135m": ("llama", dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                                   num_attention_heads=9, num_key_value_heads=3, vocab_size=49152,
                                   max_position_embeddings=8192, tie_word_embeddings=True)),
    "bert-large": ("bert", dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                                num_attention_heads=16, vocab_size=30522, max_position_embeddings=512)),
    "small-llama": ("llama", dict(hidden_size=256, intermediate_size=768, num_hidden_layers=12,
                                  num_attention_heads=8, num_key_value_heads=4, vocab_size=8192,
                                  max_position_embeddings=2048)),
    "tiny-llama": ("llama", dict(hidden_size=32, intermediate_size=48, num_hidden_layers=8,
                                 num_attention_heads=4, num_key_value_heads=2, vocab_size=97,
                                 max_position_embeddings=256)),
}
ENCODER_TYPES = {"bert", "roberta", "mpnet"}
DEFAULT_VARIANTS = ["full", "skip", "parallel", "looped_parallel"]


# ---- model ------------------------------------------------------------------------------------------
def build_model(name: str, device: str, dtype: torch.dtype, attn: str):
    """(model, is_decoder): a named random shape, or whatever load_model loads."""
    if name in SHAPES:
        from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

        model_type, kw = SHAPES[name]
        cfg = AutoConfig.for_model(model_type, **kw)
        decoder = model_type not in ENCODER_TYPES
        cls = AutoModelForCausalLM if decoder else AutoModel
        torch.manual_seed(0)
        with torch.device(device):
            model = cls.from_config(cfg, dtype=dtype, attn_implementation=attn)
        return model.eval(), decoder
    from glue_painters.models import ALIASES, load_model

    alias = ALIASES.get(name)
    kind = "encoder" if alias is not None and alias.kind == "encoder" else "causal-lm"
    model, _ = load_model(name, kind=kind, dtype=dtype, device=device)
    try:
        model.set_attn_implementation(attn)
    except Exception:  # noqa: BLE001 - keep what it loaded with (reported below)
        pass
    return model.eval(), kind == "causal-lm"


def plans_for(t: int, n: int, specs: list[str] | None):
    if specs:
        return [(s, variants.resolve(s, t)) for s in specs]
    out = []
    for v in DEFAULT_VARIANTS:
        params = {} if v == "full" else {"n": n, **({"k": 3} if v == "looped_parallel" else {})}
        spec = v + (":" + ",".join(f"{k}={x}" for k, x in params.items()) if params else "")
        out.append((spec, variants.build(v, t, **params)))
    return out


def executions_per_layer(plan) -> dict[int, int]:
    counts: dict[int, int] = {}
    for step in plan.steps:
        unit, k = (step.step, step.times) if isinstance(step, Repeat) else (step, 1)
        for i in (unit.members if isinstance(unit, Parallel) else (unit.index,)):
            counts[i] = counts.get(i, 0) + k
    return counts


def step_bytes(model, plan) -> int:
    """Bytes of weights one decode step reads: each executed layer once per execution, plus every
    parameter outside the layer list except the input embedding (one row is read) unless it is
    tied to the output head."""
    from glue_painters.rewire import original_layers

    layers = original_layers(model)
    layer_ids = {id(p) for l in layers for p in l.parameters()}
    emb = model.get_input_embeddings()
    out_emb = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    tied = out_emb is not None and out_emb.weight is emb.weight
    other = sum(p.numel() * p.element_size() for p in model.parameters()
                if id(p) not in layer_ids and (tied or p is not emb.weight))
    per_layer = [sum(p.numel() * p.element_size() for p in l.parameters()) for l in layers]
    return other + sum(per_layer[i] * k for i, k in executions_per_layer(plan).items())


def kv_bytes(model, plan, batch: int, context: int, dtype: torch.dtype) -> int:
    cfg = model.config
    heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    return 2 * plan.executions * batch * heads * head_dim * context * torch.tensor([], dtype=dtype).element_size()


# ---- timing -----------------------------------------------------------------------------------------
def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def _rss() -> int:
    try:
        import psutil

        return psutil.Process().memory_info().rss
    except Exception:  # noqa: BLE001
        return 0


class Memory:
    """Peak memory of a measurement: CUDA's allocator peak, or the growth of resident memory on CPU
    (sampled after each call: a lower bound of the true peak)."""

    def __init__(self, device):
        self.device = device

    def __enter__(self):
        gc.collect()
        if self.device == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            self.start = torch.cuda.memory_allocated()
        else:
            self.start = self.peak = _rss()
        return self

    def sample(self):
        if self.device != "cuda":
            self.peak = max(self.peak, _rss())

    def __exit__(self, *exc):
        if self.device == "cuda":
            self.result = {"peak_bytes": torch.cuda.max_memory_allocated(),
                           "peak_over_start_bytes": torch.cuda.max_memory_allocated() - self.start}
        else:
            self.result = {"rss_growth_bytes": self.peak - self.start}


def _ids(batch, length, vocab, device, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, vocab, (batch, length), generator=g).to(device)


def prefill_once(runner, decoder, ids, device) -> tuple[float, dict]:
    """Seconds of one prefill (no cache; causal LMs: logits of the last position only), memory."""
    kw = dict(use_cache=False, **({"logits_to_keep": 1} if decoder else {}))
    with torch.inference_mode(), Memory(device) as mem:
        _sync(device)
        t0 = time.perf_counter()
        runner(input_ids=ids, **kw)
        _sync(device)
        dt = time.perf_counter() - t0
        mem.sample()
    return dt, mem.result


def decode_once(model, runner, prompt, steps, device, static_cache) -> tuple[list[float], dict]:
    """Seconds of each of ``steps`` single-token steps with the KV cache after a prefill of ``prompt``."""
    from transformers import DynamicCache, StaticCache

    times = []
    with torch.inference_mode(), Memory(device) as mem:
        if static_cache:
            cache = StaticCache(config=model.config, max_cache_len=prompt.shape[1] + steps + 1)
        else:
            cache = DynamicCache(config=model.config)
        out = model(input_ids=prompt, past_key_values=cache, use_cache=True, logits_to_keep=1)
        nxt = out.logits[:, -1:].argmax(-1)
        for _ in range(steps):
            _sync(device)
            t0 = time.perf_counter()
            out = runner(input_ids=nxt, past_key_values=cache, use_cache=True)
            nxt = out.logits[:, -1:].argmax(-1)
            _sync(device)
            times.append(time.perf_counter() - t0)
        mem.sample()
        del cache, out
    return times, mem.result


def _merge_mem(a: dict | None, b: dict) -> dict:
    return dict(b) if a is None else {k: max(a.get(k, 0), v) for k, v in b.items()}


def measure(model, plans, modes, args, decoder, device, interleave: bool, runners) -> list[dict]:
    """Every (plan, parallel mode) over warm-up + repeats rounds. Interleaved (the default without
    compilation): round r measures every plan before round r+1 starts, so a change of load on a
    shared machine hits all plans alike instead of whichever plan ran at that moment."""
    vocab = model.config.vocab_size
    prefill_runner, decode_runner = runners
    grid = [(b, length) for b in _ints(args.batch) for length in _ints(args.length)]
    prefill_ids = {(b, length): _ids(b, length, vocab, device, b * 1000 + length) for b, length in grid}
    dbatches = _ints(args.decode_batch) if decoder else []
    prompts = {b: _ids(b, args.decode_context, vocab, device, b * 7 + args.decode_context) for b in dbatches}
    cases = [(spec, plan, mode) for spec, plan in plans for mode in (modes if not plan.is_sequential else ["loop"])]
    state = {i: {"pre": {g: [] for g in grid}, "pre_mem": {g: None for g in grid},
                 "dec": {b: [] for b in dbatches}, "dec_mem": {b: None for b in dbatches}, "mode": None}
             for i in range(len(cases))}
    rounds = args.warmup + args.repeats
    order = ([(r, i) for r in range(rounds) for i in range(len(cases))] if interleave
             else [(r, i) for i in range(len(cases)) for r in range(rounds)])
    current = None
    for r, i in order:
        spec, plan, mode = cases[i]
        st = state[i]
        if current != i:  # (re)apply the plan; compiled runners recompile for a new layer list
            apply_plan(model, plan, parallel=mode)
            st["mode"] = parallel_mode(model)
            if args.compile or args.cuda_graphs:
                torch._dynamo.reset()
            current = i
        for g in grid:
            dt, mem = prefill_once(prefill_runner, decoder, prefill_ids[g], device)
            if r >= args.warmup:
                st["pre"][g].append(dt)
            st["pre_mem"][g] = _merge_mem(st["pre_mem"][g], mem)
        for b in dbatches:
            times, mem = decode_once(model, decode_runner, prompts[b], args.decode_tokens, device, bool(args.cuda_graphs))
            if r >= args.warmup:
                st["dec"][b].append(times)
            st["dec_mem"][b] = _merge_mem(st["dec_mem"][b], mem)
        if r == rounds - 1:
            print(f"measured {spec} ({st['mode']})", flush=True)
    remove_plan(model)
    rows = []
    for i, (spec, plan, mode) in enumerate(cases):
        st = state[i]
        row = {"spec": spec, "plan": plan.text, "parallel": st["mode"], "requested_parallel": mode,
               "executions": plan.executions, "prefill": [], "decode": []}
        for (b, length) in grid:
            times = st["pre"][(b, length)]
            ms = statistics.median(times) * 1e3
            row["prefill"].append({"batch": b, "length": length, "ms": ms, "tokens_per_s": b * length / ms * 1e3,
                                   "ms_all": [t * 1e3 for t in times], **st["pre_mem"][(b, length)]})
        for b in dbatches:
            per_repeat = st["dec"][b]
            ms = statistics.median([t for rep in per_repeat for t in rep]) * 1e3
            d = {"batch": b, "context": args.decode_context, "steps": args.decode_tokens, "ms_per_token": ms,
                 "tokens_per_s": b / ms * 1e3,
                 "ms_median_by_repeat": [statistics.median(rep) * 1e3 for rep in per_repeat], **st["dec_mem"][b]}
            if device == "cuda":
                wb = step_bytes(model, plan)
                kb = kv_bytes(model, plan, b, args.decode_context + args.decode_tokens // 2, model.dtype)
                bound = (wb + kb) / (args.bandwidth_tbs * 1e12) * 1e3
                d.update(weight_bytes=wb, kv_bytes=kb, bound_ms=bound, ratio_to_bound=ms / bound)
            row["decode"].append(d)
        row["decode_ms_per_token"] = row["decode"][0]["ms_per_token"] if row["decode"] else None
        rows.append(row)
        print(_row_line(row), flush=True)
    return rows


# ---- main -------------------------------------------------------------------------------------------
def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2", help=f"alias/path for load_model, or a shape: {', '.join(SHAPES)}")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default=None, help="default: bfloat16 on GPU, float32 on CPU")
    p.add_argument("--attn", default="sdpa", help="attention implementation (sdpa, eager, ...)")
    p.add_argument("--n", type=int, default=None, help="N of the default plans (default T//4)")
    p.add_argument("--plans", default=None, help="';'-separated variant specs or plan texts instead of the defaults")
    p.add_argument("--parallel", default="loop,batched", help="modes for plans with a parallel group")
    p.add_argument("--batch", default="1,8", help="prefill batch sizes")
    p.add_argument("--length", default="128,512,2048", help="prefill lengths")
    p.add_argument("--decode-batch", default="1,16")
    p.add_argument("--decode-context", type=int, default=512)
    p.add_argument("--decode-tokens", type=int, default=32)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--no-interleave", action="store_true",
                   help="measure plan after plan (default: round-robin over plans, repeat by repeat)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (measures plan after plan)")
    p.add_argument("--cuda-graphs", action="store_true",
                   help="torch.compile mode='reduce-overhead' (CUDA graphs) for decode, static KV cache")
    p.add_argument("--bandwidth-tbs", type=float, default=3.35, help="HBM bandwidth, TB/s (H100 SXM: 3.35)")
    p.add_argument("--tag", default=None, help="device tag in the file names (default: cpu or the GPU's name)")
    p.add_argument("--out", default="reports")
    return p.parse_args(argv)


def _device_tag(device: str) -> str:
    if device != "cuda":
        return "cpu"
    name = torch.cuda.get_device_name().lower()
    for key in ("h200", "h100", "a100", "l40s", "a10g", "l4", "t4"):
        if key in name:
            return key
    return "cuda"


def main(argv=None) -> dict:
    args = parse_args(argv)
    device = args.device
    dtype = getattr(torch, args.dtype) if args.dtype else (torch.bfloat16 if device == "cuda" else torch.float32)
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    model, decoder = build_model(args.model, device, dtype, args.attn)
    t = num_layers(model)
    n = args.n if args.n is not None else t // 4
    plans = plans_for(t, n, args.plans.split(";") if args.plans else None)
    modes = [m.strip() for m in args.parallel.split(",") if m.strip()]
    compiled = bool(args.compile or args.cuda_graphs)
    prefill_runner = torch.compile(model) if compiled else model
    decode_runner = (torch.compile(model, mode="reduce-overhead", fullgraph=False) if args.cuda_graphs
                     else prefill_runner)
    interleave = not compiled and not args.no_interleave
    rows = measure(model, plans, modes, args, decoder, device, interleave, (prefill_runner, decode_runner))
    result = {
        "model": args.model, "device": device, "device_tag": args.tag or _device_tag(device),
        "device_name": torch.cuda.get_device_name() if device == "cuda" else platform.processor() or platform.machine(),
        "dtype": str(dtype).replace("torch.", ""), "attn_implementation": getattr(model.config, "_attn_implementation", None),
        "threads": torch.get_num_threads(), "torch": torch.__version__,
        "transformers": __import__("transformers").__version__, "num_layers": t, "n": n,
        "parameters": sum(p.numel() for p in model.parameters()), "decoder": decoder,
        "compile": bool(args.compile), "cuda_graphs": bool(args.cuda_graphs),
        "bandwidth_tbs": args.bandwidth_tbs if device == "cuda" else None,
        "warmup": args.warmup, "repeats": args.repeats, "interleaved": interleave,
        "command": "python benchmarks/latency.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])),
        "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS",) if k in os.environ},
        # other work on the machine makes CPU timings noisy: the 1-minute load average, before and after
        "loadavg": [load_before[0] if load_before else None, os.getloadavg()[0] if load_before else None],
        "cpus": os.cpu_count(),
        "rows": rows,
    }
    write(result, Path(args.out))
    return result


def _row_line(row) -> str:
    pre = ", ".join(f"{p['batch']}x{p['length']}: {p['ms']:.1f} ms" for p in row["prefill"])
    dec = ", ".join(f"b{d['batch']}: {d['ms_per_token']:.2f} ms/tok" for d in row["decode"])
    return f"{row['spec']:<28} {row['parallel']:<8} prefill {pre} | decode {dec}"


def _mb(x) -> str:
    return f"{x / 2**20:.0f}" if x is not None else "-"


def markdown(r: dict) -> str:
    env = " ".join(f"{k}={v}" for k, v in r["env"].items())
    lines = [f"# Latency: {r['model']} on {r['device_tag']} ({r['device_name']})", "", "Command:", "", "```bash",
             (env + " " if env else "") + r["command"], "```", "",
             f"{r['num_layers']} layers, {r['parameters'] / 1e6:.1f} M parameters, {r['dtype']}, attention "
             f"{r['attn_implementation']}, torch {r['torch']}, transformers {r['transformers']}, "
             f"{r['threads']} thread(s); warm-up {r['warmup']}, median of {r['repeats']} repeats"
             + (" (interleaved: each round times every plan)" if r.get("interleaved") else "")
             + (f"; load average {r['loadavg'][0]:.1f} before, {r['loadavg'][1]:.1f} after on {r['cpus']} CPUs"
                if r.get("loadavg") and r["loadavg"][0] is not None else "")
             + ("; torch.compile" if r["compile"] else "") + ("; CUDA graphs" if r["cuda_graphs"] else "") + ".", ""]
    rows = r["rows"]
    if rows and rows[0]["prefill"]:
        grid = [(p["batch"], p["length"]) for p in rows[0]["prefill"]]
        mem_key = "peak_bytes" if r["device"] == "cuda" else "rss_growth_bytes"
        lines += ["## Prefill (ms; tokens/s)", "",
                  "| plan | parallel | executions | " + " | ".join(f"{b}x{l}" for b, l in grid) + " | peak MiB |",
                  "|---|---|---:|" + "---:|" * len(grid) + "---:|"]
        for row in rows:
            cells = [f"{p['ms']:.1f} ({p['tokens_per_s']:.0f})" for p in row["prefill"]]
            peak = max((p.get(mem_key) or 0) for p in row["prefill"])
            lines.append(f"| `{row['spec']}` `{row['plan']}` | {row['parallel']} | {row['executions']} | "
                         + " | ".join(cells) + f" | {_mb(peak)} |")
        lines.append("")
    if rows and rows[0]["decode"]:
        batches = [d["batch"] for d in rows[0]["decode"]]
        ctx = rows[0]["decode"][0]["context"]
        gpu = r["device"] == "cuda"
        head = "| plan | parallel | " + " | ".join(f"b{b} ms/token (tok/s)" for b in batches)
        head += " | " + " | ".join(f"b{b} bound ms, ratio" for b in batches) if gpu else ""
        lines += [f"## Decode with the KV cache (context {ctx}, {rows[0]['decode'][0]['steps']} steps)", "",
                  head + " | peak MiB |", "|---|---|" + "---:|" * (len(batches) * (2 if gpu else 1) + 1)]
        mem_key = "peak_bytes" if gpu else "rss_growth_bytes"
        for row in rows:
            cells = [f"{d['ms_per_token']:.2f} ({d['tokens_per_s']:.0f})" for d in row["decode"]]
            if gpu:
                cells += [f"{d['bound_ms']:.2f}, {d['ratio_to_bound']:.2f}x" for d in row["decode"]]
            peak = max((d.get(mem_key) or 0) for d in row["decode"])
            lines.append(f"| `{row['spec']}` | {row['parallel']} | " + " | ".join(cells) + f" | {_mb(peak)} |")
        lines.append("")
        if gpu:
            lines += [f"Bound: bytes a decode step reads (weights of every executed layer per execution, the "
                      f"head, the KV cache) / {r['bandwidth_tbs']} TB/s.", ""]
    if r["device"] != "cuda":
        lines += ["Peak memory on CPU: growth of resident memory during the measurement (sampled between calls; "
                  "0 when the allocator reused freed memory).", ""]
    return "\n".join(lines)


def write(result: dict, out_dir: Path) -> tuple[Path, Path]:
    from glue_painters.results import atomic_write_json, atomic_write_text

    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"latency_{Path(result['model']).name}_{result['device_tag']}"
    js, md = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    atomic_write_json(js, result)
    atomic_write_text(md, markdown(result) + "\n")
    return js, md


if __name__ == "__main__":
    main()
