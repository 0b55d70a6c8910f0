"""The training half of LoRA healing: the settings, the corpus, and the ``Trainer`` run under a plan.

Kept apart from ``heal.py`` (which scores, stores and offers the command) so each reads alone:
this module knows nothing of benchmarks or the results store, only how a plan's model is given
low-rank adapters and trained on plain text.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from glue_painters.adapters import lora_targets
from glue_painters.errors import UserError
from glue_painters.fingerprints import file_sha16
from glue_painters.plans import Plan
from glue_painters.rewire import apply_plan, remove_plan
from glue_painters.similarity import read_documents

from .data import resolve_data_dir

# Part of every healed record's key. 2: adapters on the executed layers only (which changes the
# random initialisation of the others) and WikiText-2's " " lines split documents; a version-1
# record (all layers, the whole file one document) is another training run, so it is kept and
# readable but not reused for these settings.
HEAL_VERSION = 2


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


def heal_key(cfg: HealConfig, corpus: Path, max_docs: int | None) -> dict:
    """The healed records' ``heal`` key field: everything that changes the trained adapter."""
    return dict(asdict(cfg), corpus=file_sha16(corpus), max_docs=max_docs, version=HEAL_VERSION)


def default_corpus(data_dir=None) -> tuple[Path, str]:
    """(path, note): WikiText-2 train if the data directory has it, else its validation split."""
    base = resolve_data_dir(data_dir) / "wikitext2"
    for name in ("train.txt", "validation.txt"):
        if (base / name).exists():
            note = "" if name == "train.txt" else "WikiText-2 train is not in the data directory; healing on its validation split"
            return base / name, note
    raise UserError(f"no healing corpus: {base}/train.txt is missing; name one with --corpus FILE (.txt or .jsonl)")


def corpus_documents(path: Path, max_docs: int | None) -> list[str]:
    """The corpus's documents (paragraphs), at most ``max_docs`` of them."""
    if max_docs is not None and max_docs < 1:
        raise UserError(f"--max-docs must be at least 1, got {max_docs}")
    if not path.exists():
        raise UserError(f"corpus file not found: {path}")
    return read_documents(path, max_docs)


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


def train_lora(model, tokenizer, plan: Plan, documents: list[str], cfg: HealConfig, out_dir: Path, device: str,
               report_to: list[str] | None = None):
    """Inject LoRA into the layers ``plan`` runs, train it under ``plan``; returns the PeftModel.

    The adapters go into the *original* layer modules (so a layer the plan runs twice trains one
    adapter) and only into executed ones (``adapters.lora_targets``)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Trainer, TrainingArguments

    torch.manual_seed(cfg.seed)
    peft_model = get_peft_model(model, LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=0.0, task_type="CAUSAL_LM",
                                                  **lora_targets(model, plan, cfg.target_modules)))
    base = peft_model.get_base_model()
    args = TrainingArguments(
        output_dir=str(out_dir / "trainer"), max_steps=cfg.steps, per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.lr, lr_scheduler_type="cosine", warmup_steps=max(1, cfg.steps // 10),
        logging_steps=max(1, cfg.steps // 10), save_strategy="no", report_to=report_to or [], seed=cfg.seed,
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
