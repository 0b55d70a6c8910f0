"""Fine-tuning and probing a tiny random BERT under rewiring plans (CPU, seconds)."""

import random

import pytest
import torch
from datasets import Dataset
from transformers import BertConfig, BertForSequenceClassification, BertModel

from glue_eval.finetune import FinetuneHParams, finetune
from glue_eval.probe import (ProbeHParams, extract_features, extract_plan_features, fill_feature_cache,
                                      probe, train_head, train_heads)
from glue_eval.tasks import get_task
from glue_painters.plans import Plan
from glue_painters.rewire import current_plan, num_layers
from glue_painters.variants import build

from tiny import _COMMON, LAYERS, make


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: on a shared 2-core machine, two OpenMP threads spin against other
    processes and make tiny steps ~30x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_config(**kw):
    return BertConfig(**_COMMON, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, **kw)


def tiny_classifier(seed=0, num_labels=2):
    torch.manual_seed(seed)
    return BertForSequenceClassification(tiny_config(num_labels=num_labels))


def toy_dataset(n=64, seed=0, regression=False, pad_to=None):
    """Separable toy task: class 1 rows draw their tokens mostly from 10..52, class 0 from 53..96.
    Lengths vary (so padding matters) unless ``pad_to`` pads every row (then Trainer's default
    collator can batch them)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        length = rng.randint(4, 14)
        label = i % 2
        lo, hi = (10, 52) if label else (53, 96)
        ids = [rng.randint(lo, hi) if rng.random() < 0.8 else rng.randint(10, 96) for _ in range(length)]
        ids = [2] + ids + [3]
        mask = [1] * len(ids)
        if pad_to:
            mask += [0] * (pad_to - len(ids))
            ids += [0] * (pad_to - len(ids))
        rows.append({"input_ids": ids, "attention_mask": mask, "token_type_ids": [0] * len(ids),
                     "labels": float(label * 5) if regression else label})
    return Dataset.from_list(rows)


def _run(model, plan, ds, out_dir, **kw):
    hp = FinetuneHParams(learning_rate=kw.pop("lr", 3e-3), batch_size=16, epochs=kw.pop("epochs", 6), max_length=32)
    # no tokenizer: rows are pre-padded and Trainer's default collator batches them
    return finetune(model, plan, "rte", ds, {"validation": ds}, hp, seed=0, output_dir=out_dir,
                    tokenizer=None, progress=False, logging_steps=1, **kw)


@pytest.mark.parametrize("spec", ["skip:n=1", "parallel:n=1", "looped_parallel:n=1,k=3"])
def test_finetune_under_plan_lowers_the_loss(tmp_path, spec):
    from glue_painters.variants import resolve
    model = tiny_classifier()
    plan = resolve(spec, LAYERS)
    res = _run(model, plan, toy_dataset(pad_to=16), tmp_path)
    losses = [h["loss"] for h in res["log_history"] if "loss" in h]
    assert len(losses) == res["steps"] == 24
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.7 * first, (spec, losses)
    assert current_plan(model) == plan  # the plan stays on
    assert res["metrics"]["accuracy"] > 0.8


def test_checkpoint_under_plan_is_the_plain_model_and_resume_is_exact(tmp_path):
    plan = build("looped_parallel", LAYERS, n=2, k=3)  # shared weights (x3) and parallel wrappers
    ds = toy_dataset(64, pad_to=16)
    # uninterrupted: 2 epochs x 4 steps
    a = tiny_classifier(seed=1)
    _run(a, plan, ds, tmp_path / "a", epochs=2)
    # the same run with checkpoints every 2 steps; then resume a fresh model from step 4
    b = tiny_classifier(seed=1)
    _run(b, plan, ds, tmp_path / "b", epochs=2, save_steps=2)
    ckpt = tmp_path / "b" / "checkpoint-4"
    assert (ckpt / "model.safetensors").exists() and (ckpt / "painters_plan.json").exists()
    assert Plan.from_json((ckpt / "painters_plan.json").read_text()) == plan
    plain = BertForSequenceClassification.from_pretrained(ckpt)  # an ordinary checkpoint: all T layers
    assert num_layers(plain) == LAYERS and plain.config.num_hidden_layers == LAYERS and current_plan(plain) is None
    c = tiny_classifier(seed=99)  # different head init: resume must overwrite it
    res = _run(c, plan, ds, tmp_path / "b", epochs=2, save_steps=2, resume=str(ckpt))
    assert res["steps"] == 8
    for (na, pa), (nc, pc) in zip(a.state_dict().items(), c.state_dict().items()):
        assert na == nc
        torch.testing.assert_close(pa, pc, rtol=1e-5, atol=1e-6, msg=na)
    # layers the plan never ran (0..2 kept, 3..4 looped, 5..7 kept: all used here) keep their weights
    # and a skip plan's dropped layers are saved untouched
    d = tiny_classifier(seed=2)
    before = d.bert.encoder.layer[4].output.dense.weight.detach().clone()
    _run(d, build("skip", LAYERS, n=2), ds, tmp_path / "d", epochs=1, save_steps=4)
    saved = BertForSequenceClassification.from_pretrained(tmp_path / "d" / "checkpoint-4")
    torch.testing.assert_close(saved.bert.encoder.layer[4].output.dense.weight, before)


def test_resume_refuses_a_checkpoint_of_another_plan(tmp_path):
    from glue_painters.errors import UserError
    ds = toy_dataset(32, pad_to=16)
    _run(tiny_classifier(), build("skip", LAYERS, n=1), ds, tmp_path, epochs=1, save_steps=2)
    with pytest.raises(UserError, match="trained under plan"):
        _run(tiny_classifier(), build("reverse", LAYERS, n=1), ds, tmp_path, epochs=2, save_steps=2,
             resume=str(tmp_path / "checkpoint-2"))


def test_cached_probe_equals_the_naive_probe():
    torch.manual_seed(0)
    body = BertModel(tiny_config()).eval()
    train, ev = toy_dataset(80, seed=1), toy_dataset(40, seed=2)
    plan = build("looped_parallel", LAYERS, n=1, k=2)
    hp = ProbeHParams(learning_rate=3e-2, batch_size=16, epochs=3, extract_batch_size=32)
    cached = probe(body, plan, "rte", train, {"validation": ev}, hp, seeds=[0, 1], pooling="mean")
    naive = probe(body, plan, "rte", train, {"validation": ev}, hp, seeds=[0, 1], pooling="mean", naive=True)
    for seed in (0, 1):
        torch.testing.assert_close(cached[seed]["head"].weight, naive[seed]["head"].weight, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(cached[seed]["head"].bias, naive[seed]["head"].bias, rtol=1e-4, atol=1e-5)
        assert cached[seed]["metrics"] == pytest.approx(naive[seed]["metrics"])
    assert cached[0]["head"].weight.ne(cached[1]["head"].weight).any()  # seeds differ
    assert current_plan(body) is None  # the probe leaves the model as it found it


@pytest.mark.parametrize("pooling", ["mean", "cls", "pooler"])
def test_features_are_per_example_outputs_in_dataset_order(pooling):
    torch.manual_seed(0)
    body = BertModel(tiny_config()).eval()
    ds = toy_dataset(20, seed=3)
    plan = build("reverse", LAYERS, n=1)
    feats = extract_features(body, ds, plan, pooling, batch_size=8)  # sorted by length inside
    from glue_painters.rewire import rewired
    with rewired(body, plan), torch.no_grad():
        for i in (0, 7, 19):
            ids = torch.tensor([ds[i]["input_ids"]])
            out = body(input_ids=ids, attention_mask=torch.ones_like(ids))
            want = {"mean": out.last_hidden_state.mean(1)[0], "cls": out.last_hidden_state[0, 0],
                    "pooler": out.pooler_output[0]}[pooling]
            torch.testing.assert_close(feats[i], want, rtol=1e-4, atol=1e-5)


def test_regression_head_for_stsb():
    torch.manual_seed(0)
    body = BertModel(tiny_config()).eval()
    ds = toy_dataset(48, regression=True)
    out = probe(body, Plan.parse(f"0-{LAYERS - 1}"), get_task("stsb"), ds, {"validation": ds},
                ProbeHParams(epochs=5, batch_size=16, learning_rate=3e-2), seeds=[0], pooling="mean")
    assert out[0]["head"].out_features == 1
    assert set(out[0]["metrics"]) == {"pearson", "spearmanr"}


# every paper variant at N=0 and N=1 (random with two permutation seeds): the plans share their
# first layers, and the trie branches inside and after parallel groups and repeats
SWEEP_PLANS = [build("full", LAYERS)] + [
    build(v, LAYERS, n=n, **kw) for n in (0, 1) for v, kw in
    [("skip", {}), ("middle_repeat", {}), ("reverse", {}), ("random", {"seed": 0}), ("random", {"seed": 1}),
     ("parallel", {}), ("looped_parallel", {"k": 3})]]


@pytest.mark.parametrize("arch,pooling", [("bert", "mean"), ("bert", "pooler"), ("roberta", "cls"), ("mpnet", "mean")])
def test_shared_prefix_features_equal_each_plan_from_scratch(arch, pooling):
    body = make(arch)
    splits = {"train": toy_dataset(37, seed=4), "validation": toy_dataset(11, seed=5)}
    shared = extract_plan_features(body, splits, SWEEP_PLANS, pooling, batch_size=8, share=True)
    alone = extract_plan_features(body, splits, SWEEP_PLANS, pooling, batch_size=8, share=False)
    from glue_painters.prefix_share import PlanTrie
    assert PlanTrie(SWEEP_PLANS).layer_executions() < sum(p.executions for p in SWEEP_PLANS)  # it shares
    for plan in SWEEP_PLANS:
        for split, ds in splits.items():
            assert torch.equal(shared[plan.text][split], alone[plan.text][split]), (plan.text, split)
            # and each split's features are its rows' own, whatever the rows batched with them
            one = extract_features(body, ds, plan, pooling, batch_size=8)
            torch.testing.assert_close(shared[plan.text][split], one, rtol=0, atol=1e-6)
    assert current_plan(body) is None


def test_feature_cache_shared_across_plans_gives_the_probe_of_each_plan_alone():
    torch.manual_seed(0)
    body = BertModel(tiny_config()).eval()
    train, ev = toy_dataset(40, seed=1), toy_dataset(16, seed=2)
    hp = ProbeHParams(batch_size=16, epochs=2, extract_batch_size=16)
    cache = {}
    fill_feature_cache(cache, body, SWEEP_PLANS[:6], "rte", {"train": train, "validation": ev}, "mean", 16)
    for plan in SWEEP_PLANS[:6]:
        assert cache[(plan.hash, "rte", "_time_s")] > 0
        got = probe(body, plan, "rte", train, {"validation": ev}, hp, [0, 1], "mean", cache=cache,
                    cache_key=(plan.hash, "rte"))
        want = probe(body, plan, "rte", train, {"validation": ev}, hp, [0, 1], "mean")
        for seed in (0, 1):
            torch.testing.assert_close(got[seed]["head"].weight, want[seed]["head"].weight, rtol=0, atol=1e-6)
            assert got[seed]["metrics"] == want[seed]["metrics"]


@pytest.mark.parametrize("task", ["rte", "mnli", "stsb"])
def test_batched_seed_heads_equal_training_each_seed_alone(task):
    task = get_task(task)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(70, 24, generator=g)  # 70 rows: the last batch of each epoch is short
    y = torch.rand(70, generator=g) * 5 if task.is_regression else torch.randint(task.num_labels, (70,), generator=g)
    hp = ProbeHParams(learning_rate=3e-2, batch_size=16, epochs=3)
    seeds = [0, 1, 7]
    heads = train_heads(lambda idx: x[idx], y, 24, task, hp, seeds)
    for seed, head in zip(seeds, heads):
        alone = train_head(lambda idx: x[idx], y, 24, task, hp, seed)
        torch.testing.assert_close(head.weight, alone.weight, rtol=0, atol=1e-6)
        torch.testing.assert_close(head.bias, alone.bias, rtol=0, atol=1e-6)
    assert not torch.equal(heads[0].weight, heads[1].weight)
