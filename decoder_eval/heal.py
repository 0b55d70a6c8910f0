"""LoRA healing: train low-rank adapters on a text corpus under a plan, then evaluate again.

A skipped (or otherwise rewired) model loses accuracy partly because the kept layers no longer
see the inputs they were trained on; a few hundred steps of LoRA on plain text can recover much of
it. The pieces are stock: ``peft`` injects the adapters (into the *original* layer modules, so every
plan entry that runs a layer trains the same adapter, and a skipped layer's adapter gets no
gradient), ``transformers.Trainer`` trains (so ``accelerate launch -m decoder_eval.heal ...`` runs
it data-parallel, with mixed precision on a GPU), and the decoder track's ``evaluate_plans`` scores
the plan before and after. Both scores go into the results store (``healed`` false / true, the
healing settings in the key), and the adapter is saved with ``save_pretrained``.

Default corpus: WikiText-2 *train* in the data directory if present; the bundled copy here lacks
it, so the validation split is used instead and the note printed says so (it is not one of the
evaluation benchmarks). Any .txt (blank-line separated) or .jsonl (``text`` field) file works.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from glue_painters.errors import UserError
from glue_painters.fingerprints import file_sha16
from glue_painters.plans import Plan
from glue_painters.rewire import apply_plan, num_layers, remove_plan
from glue_painters.results import ResultsStore
from glue_painters.similarity import read_documents

from .data import resolve_data_dir
from .evaluate import evaluate_plans, load_tasks
from .sweep import PlanSpec, TRACK, _pick_device, _pick_dtype, key_fields, model_fingerprint, save_result

DEFAULT_TASKS = ["lambada_openai", "arc_easy", "arc_challenge", "hellaswag", "winogrande"]


@dataclass(frozen=True)
class HealConfig:
    steps: int = 100
    lr: float = 2e-4
    rank: int = 8
    alpha: int = 16
    seq_len: int = 256
    batch_size: int = 4
    seed: int = 0
    target_modules: str = "all-linear"


def plan_spec(spec: str, num_layers_: int) -> PlanSpec:
    """A sweep row for a variant spec (``skip:n=8``) or plan text, as the sweep names them."""
    return PlanSpec.of(spec, num_layers_)


def default_corpus(data_dir=None) -> tuple[Path, str]:
    """(path, note): WikiText-2 train if the data directory has it, else its validation split."""
    base = resolve_data_dir(data_dir) / "wikitext2"
    for name in ("train.txt", "validation.txt"):
        if (base / name).exists():
            note = "" if name == "train.txt" else "WikiText-2 train is not in the data directory; healing on its validation split"
            return base / name, note
    raise UserError(f"no healing corpus: {base}/train.txt is missing; name one with --corpus FILE (.txt or .jsonl)")


def _corpus_name(path: Path, data_dir=None) -> str:
    """The corpus as records show it: relative to the data directory when it lies there, so a
    record (and the report quoting it) does not carry one machine's absolute paths; the corpus's
    content is keyed by its hash anyway."""
    try:
        return f"data:{path.resolve().relative_to(resolve_data_dir(data_dir).resolve())}"
    except ValueError:
        return str(path)


def corpus_blocks(tokenizer, documents: list[str], seq_len: int):
    """Concatenate the documents (EOS between them) and cut into ``seq_len`` blocks, as HF's
    run_clm does: every token is trained on, no padding."""
    from datasets import Dataset

    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    ids: list[int] = []
    for doc in documents:
        ids.extend(tokenizer(doc, add_special_tokens=False)["input_ids"] + eos)
    n = len(ids) // seq_len
    if n == 0:
        raise UserError(f"the corpus has {len(ids)} tokens, fewer than one block of --seq-len {seq_len}")
    blocks = [ids[i * seq_len:(i + 1) * seq_len] for i in range(n)]
    return Dataset.from_dict({"input_ids": blocks, "labels": blocks})


def train_lora(model, tokenizer, plan: Plan, documents: list[str], cfg: HealConfig, out_dir: Path, device: str):
    """Inject LoRA into ``model``'s layers, train it under ``plan``; returns the PeftModel."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Trainer, TrainingArguments

    torch.manual_seed(cfg.seed)
    peft_model = get_peft_model(model, LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=0.0,
                                                  target_modules=cfg.target_modules, task_type="CAUSAL_LM"))
    base = peft_model.get_base_model()
    args = TrainingArguments(
        output_dir=str(out_dir / "trainer"), max_steps=cfg.steps, per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.lr, lr_scheduler_type="cosine", warmup_steps=max(1, cfg.steps // 10),
        logging_steps=max(1, cfg.steps // 10), save_strategy="no", report_to=[], seed=cfg.seed,
        use_cpu=not device.startswith("cuda"), bf16=device.startswith("cuda"), remove_unused_columns=False,
        disable_tqdm=False,
    )
    apply_plan(base, plan)
    try:
        peft_model.train()
        Trainer(model=peft_model, args=args, train_dataset=corpus_blocks(tokenizer, documents, cfg.seq_len)).train()
    finally:
        remove_plan(base)  # the adapter is saved with the model's own layer names
        peft_model.eval()
    return peft_model


def heal(model_name: str, spec: str, *, tasks=None, limit=None, corpus=None, data_dir=None, results_dir=None,
         out_dir=None, cfg: HealConfig = HealConfig(), device=None, dtype=None, batch_size: int = 16,
         max_docs: int | None = None, model=None, tokenizer=None) -> dict:
    """Evaluate ``spec`` on ``model_name``, heal it with LoRA, evaluate again; store both.

    Returns ``{"before": {task: metrics}, "after": {...}, "adapter": path, "note": str}``.
    A before-score already in the store (from a sweep with the same subset) is reused. Under
    ``accelerate launch`` every process trains (data parallel) and the main one scores and writes.
    ``model``/``tokenizer`` skip loading (tests).
    """
    from accelerate import PartialState

    from glue_painters.models import load_model

    state = PartialState()
    tasks = list(tasks or DEFAULT_TASKS)
    data = load_tasks(tasks, data_dir, limit)  # bad task/data fails before any training
    path, note = (Path(corpus), "") if corpus else default_corpus(data_dir)
    if not path.exists():
        raise UserError(f"corpus file not found: {path}")
    documents = read_documents(path, max_docs)
    device = _pick_device(device or (str(state.device) if state.num_processes > 1 else None))
    dtype = _pick_dtype(dtype, device)
    if model is None:
        model, tok = load_model(model_name, dtype=dtype, device=device)
    else:
        tok, dtype = tokenizer, str(next(model.parameters()).dtype).replace("torch.", "")
    pspec = plan_spec(spec, num_layers(model))
    fingerprint = model_fingerprint(model)
    store = ResultsStore(results_dir)
    heal_key = dict(asdict(cfg), corpus=file_sha16(path), max_docs=max_docs)

    def scores(healed: bool, m) -> dict:
        keys = {n: key_fields(fingerprint, pspec, n, d.subset, dtype, healed, heal_key if healed else None) for n, d in data.items()}
        todo = {n: d for n, d in data.items() if not store.has(TRACK, keys[n])}
        if todo:
            (results,) = evaluate_plans(m, tok, [pspec.plan], todo, batch_size=batch_size).values()
            for n, r in results.items():
                save_result(store, keys[n], pspec, r, model_name=model_name,
                            config={"heal": heal_key if healed else None, "corpus": _corpus_name(path, data_dir)})
        return {n: store.get(TRACK, keys[n])["metrics"] for n in data}

    before = scores(False, model) if state.is_main_process else None
    out = Path(out_dir or f"runs/heal/{Path(model_name).name}-{pspec.plan.hash}")
    start = time.perf_counter()
    peft_model = train_lora(model, tok, pspec.plan, documents, cfg, out, device)
    train_seconds = time.perf_counter() - start
    after = None
    if state.is_main_process:
        peft_model.save_pretrained(out / "adapter")
        after = scores(True, peft_model.get_base_model())
    state.wait_for_everyone()
    return {"before": before, "after": after, "adapter": str(out / "adapter"), "note": note,
            "plan": pspec.plan.text, "train_seconds": round(train_seconds, 1)}


# ---- command line -------------------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="smollm2", help="model alias, hub id or path (default smollm2)")
    p.add_argument("--plan", required=True, help="the plan to heal: a variant spec (skip:n=8) or plan text")
    p.add_argument("--tasks", nargs="+", default=None, help=f"benchmarks to score before and after (default: {' '.join(DEFAULT_TASKS)})")
    p.add_argument("--limit", type=int, default=None, help="score the first N items of each task (default: all)")
    p.add_argument("--corpus", default=None, help="healing text: .txt (blank-line separated) or .jsonl with 'text' "
                   "(default: WikiText-2 train from the data dir, else its validation split)")
    p.add_argument("--max-docs", type=int, default=None, help="use at most this many corpus paragraphs")
    p.add_argument("--steps", type=int, default=HealConfig.steps, help=f"training steps (default {HealConfig.steps})")
    p.add_argument("--lr", type=float, default=HealConfig.lr, help=f"learning rate (default {HealConfig.lr})")
    p.add_argument("--rank", type=int, default=HealConfig.rank, help=f"LoRA rank (default {HealConfig.rank})")
    p.add_argument("--alpha", type=int, default=HealConfig.alpha, help=f"LoRA alpha (default {HealConfig.alpha})")
    p.add_argument("--seq-len", type=int, default=HealConfig.seq_len, help=f"tokens per training block (default {HealConfig.seq_len})")
    p.add_argument("--train-batch-size", type=int, default=HealConfig.batch_size, help=f"blocks per step and device (default {HealConfig.batch_size})")
    p.add_argument("--seed", type=int, default=HealConfig.seed, help="training seed (default 0)")
    p.add_argument("--data-dir", default=None, help="benchmark data directory (default: ../shared/data layout or $PAINTERS_DATA)")
    p.add_argument("--results", default=None, help="results store folder (default ./results or $PAINTERS_RESULTS)")
    p.add_argument("--out", default=None, help="where the adapter goes (default runs/heal/<model>-<plan hash>)")
    p.add_argument("--device", default=None, help="cpu, cuda ... (default: cuda if available)")
    p.add_argument("--dtype", default=None, help="float32, bfloat16 ... (default: bfloat16 on CUDA, float32 on CPU)")
    p.add_argument("--batch-size", type=int, default=16, help="scoring batch size (default 16)")
    p.set_defaults(func=run_cli)


def add_subparsers(sub) -> None:
    p = sub.add_parser("heal", help="heal a rewired decoder with LoRA (peft) and score it before and after",
                       description=__doc__.split("\n\n")[0] + " Under `accelerate launch -m decoder_eval.heal` "
                       "the training runs on every process.")
    add_arguments(p)


def run_cli(args) -> int:
    cfg = HealConfig(steps=args.steps, lr=args.lr, rank=args.rank, alpha=args.alpha, seq_len=args.seq_len,
                     batch_size=args.train_batch_size, seed=args.seed)
    out = heal(args.model, args.plan, tasks=args.tasks, limit=args.limit, corpus=args.corpus, data_dir=args.data_dir,
               results_dir=args.results, out_dir=args.out, cfg=cfg, device=args.device, dtype=args.dtype,
               batch_size=args.batch_size, max_docs=args.max_docs)
    if out["note"]:
        print(f"note: {out['note']}")
    print(f"plan {out['plan']}: LoRA trained {cfg.steps} steps in {out['train_seconds']} s; adapter in {out['adapter']}")
    print(f"{'task':16s} {'metric':12s} {'before':>8s} {'after':>8s}")
    for task, before in out["before"].items():
        for metric, value in before.items():
            print(f"{task:16s} {metric:12s} {value:8.4f} {out['after'][task][metric]:8.4f}")
    return 0


def main(argv=None) -> int:
    from glue_painters.cli import main as cli_main

    return cli_main(["heal", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
