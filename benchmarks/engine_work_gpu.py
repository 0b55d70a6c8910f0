"""GPU readiness without a GPU: the work accounting on Llama-2-7B and BERT-Large shapes, and the
time a GPU at a stated FLOP rate and bandwidth would need (``decoder_eval.work.predict_seconds``).

Shapes come from the configs alone (models built on the meta device: no weights, no memory). The
token structure is real: the decoder sweep's loglikelihood tasks prepared exactly as the engine
prepares them (packed trie rows, batches), tokenized with SmolLM2's tokenizer as a stand-in for
Llama-2's (not installed here; lengths differ by some percent); the encoder's is GLUE SST-2
validation sentences, tokenized with MiniLM's BERT word pieces, one padded row per sentence, a
two-label classifier on the first token. Plans: the paper's variants at each N (``plans_for``).

    python benchmarks/engine_work_gpu.py --limit 100
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from decoder_sweep import LL_TASKS, plans_for  # noqa: E402

from decoder_eval.loglikelihood import LoglikelihoodScorer, Prepared  # noqa: E402
from decoder_eval.packing import Row, Target, make_batches  # noqa: E402
from decoder_eval.work import Shapes, predict_seconds, sweep_work  # noqa: E402
from glue_painters.results import atomic_write_json, atomic_write_text  # noqa: E402

GPU = {"name": "A100-80GB (dense fp16/bf16)", "flops": 312e12, "bandwidth": 2.0e12, "efficiency": 0.6}


def llama2_7b():
    from transformers import LlamaConfig

    return LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                       num_key_value_heads=32, vocab_size=32000, max_position_embeddings=4096)


def bert_large():
    from transformers import BertConfig

    return BertConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                      vocab_size=30522)


def decoder_prepared(limit: int, batch_size: int):
    from decoder_eval.evaluate import load_tasks
    from glue_painters.models import load_model

    model, tok = load_model("smollm2")
    scorer = LoglikelihoodScorer(model, tok, batch_size)
    data = load_tasks(LL_TASKS, None, limit)
    return [scorer.prepare([it.requests for it in d.items]) for d in data.values()]


def encoder_prepared(limit: int, batch_size: int):
    from glue_painters.datadir import data_root
    from glue_painters.models import load_model

    _, tok = load_model("minilm", kind="encoder")
    path = Path(data_root()) / "glue" / "sst2" / "validation.jsonl"
    sentences = [json.loads(line)["sentence"] for line in path.read_text().splitlines()[:limit]]
    rows = []
    for i, s in enumerate(sentences):
        row = Row()
        row.add(tok(s)["input_ids"])
        row.targets.append(Target(i, [0], [0]))
        rows.append(row)
    return [Prepared(make_batches(rows, batch_size, tok.pad_token_id or 0), len(rows), False)]


def predict(name: str, shapes: Shapes, plans, prepared, gpu: dict) -> dict:
    work = sweep_work(shapes, plans, prepared)
    phases: dict[str, float] = {}
    for p in prepared:
        for k, v in predict_seconds(shapes, plans, p, gpu["flops"], gpu["bandwidth"]).items():
            phases[k] = phases.get(k, 0.0) + v
    roof = sum(phases.values())
    return {"model": name, "plans": len(plans), "tokens_required": work.tokens_required,
            "tokens_executed": work.tokens_executed, "required_tflop": work.required / 1e12,
            "executed_tflop": work.executed / 1e12, "ratio": work.ratio,
            "seconds_at_roofline": roof, "seconds_at_efficiency": roof / gpu["efficiency"],
            "seconds_by_phase": phases, "required_seconds_at_peak": work.required / gpu["flops"]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=100, help="documents per task (sentences for the encoder)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--out", default="reports/engine_work_gpu")
    args = ap.parse_args(argv)
    ns_dec, ns_enc = [2, 4, 6, 8, 10, 12, 14], [2, 4, 6, 8, 10]
    rows = [predict("Llama-2-7B", Shapes.from_config(llama2_7b()), [p for *_, p in plans_for(32, ns_dec)],
                    decoder_prepared(args.limit, args.batch_size), GPU),
            predict("BERT-Large", Shapes.from_config(bert_large(), causal=False, head_rows=2),
                    [p for *_, p in plans_for(24, ns_enc)], encoder_prepared(args.limit * 5, 32), GPU)]
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])])
    out = Path(args.out)
    atomic_write_json(out.with_suffix(".json"), {"command": command, "gpu": GPU, "limit": args.limit, "rows": rows})
    table = "\n".join(
        f"| {r['model']} | {r['plans']} | {r['tokens_required']:,} / {r['tokens_executed']:,} | {r['required_tflop']:.1f} | "
        f"{r['executed_tflop']:.1f} | {r['ratio']:.3f} | {r['seconds_at_roofline']:.1f} | {r['seconds_at_efficiency']:.1f} | "
        + ", ".join(f"{k} {v:.1f}" for k, v in r["seconds_by_phase"].items()) + " |" for r in rows)
    atomic_write_text(out.with_suffix(".md"), f"""# GPU readiness: predicted sweep time on Llama-2-7B and BERT-Large shapes

Command:

```bash
{command}
```

Assumed GPU: {GPU['name']}: {GPU['flops'] / 1e12:.0f} TFLOP/s, {GPU['bandwidth'] / 1e12:.1f} TB/s, fp16 weights
and activations (2 bytes). Each layer execution on a batch takes the longer of its FLOPs at that rate and its
traffic (weights once, every linear's activations in and out); attention and the head likewise
(``decoder_eval.work.predict_seconds``). "at {GPU['efficiency']:.0%}" divides by the fraction of the roofline a
well-tuned PyTorch run reaches; the first GPU run should meet that number.

Decoder: the paper's sweep (full + 6 variants at N = {', '.join(map(str, ns_dec))}) on {', '.join(LL_TASKS)}, first
{args.limit} documents each, prepared as the engine prepares them (SmolLM2's tokenizer standing in for Llama-2's).
Encoder: the same variants at N = {', '.join(map(str, ns_enc))} on the first {args.limit * 5} SST-2 validation
sentences (MiniLM's BERT word pieces), batches of 32, a 2-label head on the first token.

| model | plans | tokens required / executed | required TFLOP | executed TFLOP | executed / required | s at roofline | s at {GPU['efficiency']:.0%} | s by phase (roofline) |
|---|---:|---:|---:|---:|---:|---:|---:|---|
{table}
""")
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
