"""Request building and scoring of the five benchmarks on hand-made documents with known answers,
lm-eval's tokenization rules on a byte-level tokenizer, and data-file errors. No model runs here."""

from __future__ import annotations

import math

import pytest

from decoder_eval import metrics as M
from decoder_eval.data import DataError, Split, load_split, read_jsonl
from decoder_eval.encoding import Encoder
from decoder_eval.tasks import (GSM8K, GSM8K_FLEXIBLE, GSM8K_STRICT, LoglikelihoodRequest, get_task,
                                hellaswag_preprocess)
from glue_painters.errors import UserError
from test_decoder_fixtures import byte_tokenizer, data_dir, one_thread, make_data_dir, write_jsonl  # noqa: F401


def test_lambada_splits_off_the_last_space_separated_word():
    task = get_task("lambada_openai")
    doc = task.prepare({"text": "he said  hello world"}, "t")
    assert task.requests(doc) == [LoglikelihoodRequest("he said  hello", " world")]
    assert task.score(doc, [(-2.5, True)]) == {"acc": 1.0, "perplexity": -2.5}
    values, errors = task.aggregate([{"acc": 1.0, "perplexity": -1.0}, {"acc": 0.0, "perplexity": -3.0}])
    assert values["acc"] == 0.5 and math.isclose(values["perplexity"], math.exp(2.0))
    assert errors["perplexity"] is None and math.isclose(errors["acc"], 0.5)  # sample std 0.707 / sqrt 2


def test_arc_prompt_choices_and_both_accuracies():
    task = get_task("arc_easy")
    local = {"id": "x", "answerKey": "2", "question": {"stem": "Pick one?", "choices": [
        {"text": "ab", "label": "1"}, {"text": "abcdefgh", "label": "2"}, {"text": "c", "label": "3"}]}}
    hub = {"id": "x", "answerKey": "2", "question": "Pick one?",
           "choices": {"text": ["ab", "abcdefgh", "c"], "label": ["1", "2", "3"]}}
    doc = task.prepare(local, "t")
    assert doc == task.prepare(hub, "t") and doc["gold"] == 1
    assert task.requests(doc) == [LoglikelihoodRequest("Question: Pick one?\nAnswer:", c) for c in (" ab", " abcdefgh", " c")]
    # raw: choice 0 wins (-2 > -4); per character: choice 1 wins (-4/8 = -0.5 > -2/2 = -1 > -3/1)
    assert task.score(doc, [(-2.0, False), (-4.0, False), (-3.0, True)]) == {"acc": 0.0, "acc_norm": 1.0}
    assert task.chance(doc) == pytest.approx(1 / 3)


def test_arc_rejects_an_answer_key_that_is_not_a_label():
    with pytest.raises(DataError, match="answerKey 'E'"):
        get_task("arc_challenge").prepare({"answerKey": "E", "question": {"stem": "q", "choices": [
            {"text": "a", "label": "A"}]}}, "file item 3")


def test_hellaswag_preprocess_and_hub_capitalization():
    task = get_task("hellaswag")
    assert hellaswag_preprocess(" A [header] b [title] c  d ") == "A b. c d"
    hub = {"activity_label": "Baking", "ctx_a": "She mixes flour.", "ctx_b": "then she", "label": "2",
           "endings": ["a", "b", "c [step] d"]}
    doc = task.prepare(hub, "t")
    assert doc["query"] == "Baking: She mixes flour. Then she" and doc["gold"] == 2
    assert doc["choices"][2] == "c d"
    local = task.prepare({"query": "Baking: x", "endings": ["aa", "b"], "label": 0}, "t")
    assert task.requests(local) == [LoglikelihoodRequest("Baking: x", " aa"), LoglikelihoodRequest("Baking: x", " b")]
    assert task.score(local, [(-3.0, False), (-2.0, False)]) == {"acc": 0.0, "acc_norm": 1.0}


def test_winogrande_partial_scoring_shares_the_continuation():
    task = get_task("winogrande")
    doc = task.prepare({"sentence": "Tom helped Bob because _ was kind.", "option1": "Tom", "option2": "Bob",
                        "answer": "2"}, "t")
    assert task.requests(doc) == [LoglikelihoodRequest("Tom helped Bob because Tom", " was kind."),
                                  LoglikelihoodRequest("Tom helped Bob because Bob", " was kind.")]
    assert task.score(doc, [(-5.0, False), (-4.0, False)]) == {"acc": 1.0}
    assert task.score(doc, [(-4.0, False), (-4.0, False)]) == {"acc": 0.0}  # tie: first wins, as np.argmax
    with pytest.raises(DataError, match="no blank"):
        task.prepare({"sentence": "no blank", "option1": "a", "option2": "b", "answer": "1"}, "t")


def test_gsm8k_filters_and_exact_match():
    assert M.strict_match("so 3 + 4 = 7\n#### 7\n#### 8") == "7"
    assert M.strict_match("the answer is 7") == M.INVALID
    assert M.flexible_extract("I get 12 apples, then $1,000.") == "$1,000."
    assert M.flexible_extract("answer: 5") == "5"
    assert M.flexible_extract("no digits") == M.INVALID
    ref = "Janet sells 9 eggs.\n#### 1,000"
    assert M.exact_match("$1,000.", ref) == 1.0 and M.exact_match("1000", ref) == 1.0
    assert M.exact_match("100", ref) == 0.0
    task = get_task("gsm8k")
    doc = task.prepare({"question": "q", "answer": "x\n#### 18"}, "t")
    assert task.score(doc, ["We get 18 eggs.\n#### 18"]) == {GSM8K_STRICT: 1.0, GSM8K_FLEXIBLE: 1.0}
    assert task.score(doc, ["It is 18, not 19"]) == {GSM8K_STRICT: 0.0, GSM8K_FLEXIBLE: 0.0}
    assert task.score(doc, ["so 18"]) == {GSM8K_STRICT: 0.0, GSM8K_FLEXIBLE: 1.0}


def test_gsm8k_five_shot_prompt_and_stable_shots(data_dir):
    task = GSM8K()
    full = task.load(data_dir)
    one = task.load(data_dir, limit=1)
    # shots come from one Random(1234) in document order: a limit never changes earlier prompts
    assert one.items[0].requests == full.items[0].requests
    (req,) = full.items[1].requests
    assert req.until == ("Question:", "</s>", "<|im_end|>") and req.max_gen_toks == 256
    blocks = req.context.split("\n\n")
    assert len(blocks) == 6 and blocks[-1] == "Question: What is 1 plus 1?\nAnswer:"
    for block in blocks[:5]:
        q, a = block.split("\nAnswer: ")
        assert q.startswith("Question: What is ") and "#### " in a
    assert full.subset["num_fewshot"] == 5 and full.subset["max_gen_toks"] == 256


def test_encoder_moves_trailing_space_and_splits_on_token_boundaries():
    enc = Encoder(byte_tokenizer())
    pair = enc.pair("Question: x\nAnswer: ", "yes")
    assert enc.tokenizer.decode(list(pair.context)) == "Question: x\nAnswer:"
    assert enc.tokenizer.decode(list(pair.continuation)) == " yes"
    empty = enc.pair("", "ab")
    assert empty.context == (enc.prefix_token_id,) and len(empty.continuation) == 2
    enc.max_length = 4
    assert enc.model_input(enc.pair("abcdef", "gh")) == list(enc.tokenizer.encode("abcdefgh"))[-5:-1]


def test_data_errors_name_the_file_and_line(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_jsonl(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a b"}\n{"text": oops}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: not valid JSON"):
        read_jsonl(bad)
    write_jsonl(tmp_path / "lambada_openai/test.jsonl", [{"text": "a b"}, {"words": "c d"}])
    with pytest.raises(DataError, match="item 1: missing field\\(s\\) 'text'"):
        get_task("lambada_openai").load(tmp_path)
    with pytest.raises(UserError, match="unknown task 'lambda'"):
        get_task("lambda")


def test_limit_keeps_the_first_documents_in_file_order(data_dir):
    split = Split("lambada_openai/test.jsonl", "-", None, "test")
    docs = load_split(split, data_dir, limit=2)
    assert [d["text"] for d in docs.docs] == ["the cat sat on the mat", "one two three four"]
    assert docs.total == 3 and docs.fingerprint == load_split(split, data_dir).fingerprint
    with pytest.raises(UserError, match="positive"):
        load_split(split, data_dir, limit=0)


def test_every_task_loads_the_shared_layout(tmp_path):
    root = make_data_dir(tmp_path)
    for name in ("lambada_openai", "arc_easy", "arc_challenge", "hellaswag", "winogrande", "gsm8k"):
        data = get_task(name).load(root)
        assert data.items and all(it.requests for it in data.items)
        assert data.subset["data"] and data.subset["n"] == len(data.items)
