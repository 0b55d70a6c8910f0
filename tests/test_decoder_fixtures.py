"""Shared helpers for the decoder tests (no tests here): a byte-level tokenizer built in memory,
tiny random decoders of every architecture that speak it, and a small benchmark folder laid out
like shared/data with hand-made documents.

Why a byte-level tokenizer: it needs no files or network, encodes any text, and its ids fit a
tiny model (256 bytes + EOS); the engine's tokenization rules are then exercised for real.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import tiny

EOS = "<|endoftext|>"


def byte_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    vocab[EOS] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=EOS)
    fast.model_max_length = 512
    return fast


VOCAB = 257


def tiny_lm(arch: str = "llama", seed: int = 0):
    """A tiny random decoder (tests/tiny.py) with its vocabulary widened to the byte tokenizer."""
    model = tiny.make(arch, seed, attn=None)  # the default attention (sdpa where there is one)
    torch.manual_seed(seed + 1)
    model.resize_token_embeddings(VOCAB, mean_resizing=False)
    model.config.pad_token_id = VOCAB - 1
    model.config.max_position_embeddings = 2048  # rotary: any length works; GSM8K prompts need room
    model.eval()
    return model


def crash_after(n: int):
    """An ``on_record`` callback that kills a sweep (KeyboardInterrupt) as its n-th record is written."""
    seen = []

    def crash(record):
        seen.append(record)
        if len(seen) == n:
            raise KeyboardInterrupt("killed")

    return crash


def write_jsonl(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def make_data_dir(root: Path) -> Path:
    """Every benchmark file, a few hand-made documents each, in shared/data's layout and formats."""
    write_jsonl(root / "lambada_openai/test.jsonl", [
        {"text": "the cat sat on the mat"}, {"text": "one two three four"}, {"text": "a b c d e f g"}])
    arc = [
        {"id": "q1", "question": {"stem": "What is 2+2?", "choices": [
            {"text": "4", "label": "A"}, {"text": "five", "label": "B"}, {"text": "22", "label": "C"}]},
         "answerKey": "A"},
        {"id": "q2", "question": {"stem": "Sky colour?", "choices": [
            {"text": "blue", "label": "1"}, {"text": "green", "label": "2"}, {"text": "red", "label": "3"},
            {"text": "a very long answer", "label": "4"}]}, "answerKey": "4"},
    ]
    write_jsonl(root / "arc_easy/test.jsonl", arc)
    write_jsonl(root / "arc_challenge/test.jsonl", arc[::-1])
    write_jsonl(root / "hellaswag/validation_preprocessed.jsonl", [
        {"val_row": 0, "activity_label": "Cooking", "ctx": "A man cuts onions. he", "label": 1,
         "endings": ["sings.", "puts them in a pan.", "flies away.", "[title] reads."],
         "query": "Cooking: A man cuts onions. he"},
        {"val_row": 1, "activity_label": "Running", "ctx": "She ties her shoes. she", "label": 0,
         "endings": ["starts to run.", "eats.", "sleeps.", "jumps."],
         "query": "Running: She ties her shoes. she"}])
    write_jsonl(root / "winogrande/dev.jsonl", [
        {"qID": "w1", "sentence": "Tom lent Bob money because _ was rich.", "option1": "Tom", "option2": "Bob",
         "answer": "1"},
        {"qID": "w2", "sentence": "The ball broke the window because _ was fragile.", "option1": "the ball",
         "option2": "the window", "answer": "2"}])
    gsm = [{"question": f"What is {i} plus {i}?", "answer": f"{i} + {i} = {2 * i}\n#### {2 * i}"} for i in range(8)]
    write_jsonl(root / "gsm8k/test.jsonl", gsm[:2])
    write_jsonl(root / "gsm8k/train.jsonl", gsm[2:])
    return root


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models on a shared 2-core box: one intra-op thread is ~40x faster than two fighting
    other processes for the cores (OpenMP spin-waits). Imported by every decoder test module."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def data_dir(tmp_path):
    return make_data_dir(tmp_path / "data")
