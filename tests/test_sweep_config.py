"""The sweep grammar both tracks share (``glue_painters.sweep_config``) and the ``VariantSpec``
every sweep row, healed adapter, searched plan and report line is named by."""

import pytest

from decoder_eval.config import DecoderSweepConfig
from glue_painters.errors import UserError
from glue_painters.plans import Plan, PlanError
from glue_painters.variants import VariantSpec, build


@pytest.mark.parametrize("text,canonical", [
    ("skip:n=8", "skip:n=8"), ("random:n=2", "random:n=2,seed=0"), ("looped_parallel:k=2,n=4", "looped_parallel:n=4,k=2"),
    ("full", "full"), ("skip_one:i=3", "skip_one:i=3"), (" 0-7, [8-23]x3 ,24-31", "0-7,[8-23]x3,24-31"),
])
def test_variant_spec_text_round_trips_and_builds_the_variant(text, canonical):
    spec = VariantSpec.parse(text)
    assert spec.text == canonical and VariantSpec.parse(spec.text) == spec and hash(spec) == hash(VariantSpec.parse(canonical))
    if spec.variant == "custom":
        assert spec.plan(32) == Plan.parse(canonical)
    else:
        assert spec.plan(32) == build(spec.variant, 32, **spec.param_dict)


@pytest.mark.parametrize("text,needle", [
    ("skp:n=1", "unknown variant 'skp'"), ("skip", "needs n="), ("skip:n=1,k=3", "takes n, not k"),
    ("skip:n=one", "expected key=integer"), ("skip:n=1,n=2", "given twice"), ("0-3,[", "bad plan text"),
])
def test_variant_spec_refuses_bad_text_in_one_line(text, needle):
    with pytest.raises(PlanError, match=needle):
        VariantSpec.parse(text)


def test_one_grid_grammar_expands_in_config_order_each_row_once():
    cfg = DecoderSweepConfig.from_mapping({
        "model": "m", "variants": ["skip", "random", "looped_parallel", "skip_one"], "n": {"from": 1, "to": 3, "step": 2},
        "k": [1, 3], "permutation_seeds": [4, 5], "i": [0], "plans": ["skip:n=1", "0-3"], "tasks": ["arc_easy"]})
    texts = [s.text for s in cfg.specs(8)]
    assert texts == ["skip:n=1", "skip:n=3", "random:n=1,seed=4", "random:n=1,seed=5", "random:n=3,seed=4",
                     "random:n=3,seed=5", "looped_parallel:n=1,k=1", "looped_parallel:n=1,k=3",
                     "looped_parallel:n=3,k=1", "looped_parallel:n=3,k=3", "skip_one:i=0", "0-3"]
    assert [s.text for s in cfg.specs(8, permutation_seeds=[9]) if s.variant == "random"] == ["random:n=1,seed=9", "random:n=3,seed=9"]


@pytest.mark.parametrize("over,needle", [
    ({"n": {"min": 0, "max": 3}}, "{min, max} is written {from: A, to: B} now"),
    ({"n": {"from": 0}}, "{from: A, to: B, step: C}"),
    ({"n": {"from": 0, "to": 3, "step": 0}}, "step must be at least 1"),
    ({"n": [-1]}, "at least 0"),
    ({"permutation_seeds": [-1]}, "non-negative"),
    ({"permutation_seeds": [1, 1]}, "distinct"),
    ({"permutation_seeds": 0}, "at least 1"),
    ({"seeds": 3}, "'seeds' is now spelled 'permutation_seeds'"),
    ({"plans": ["skip:n=1", "nope:n=1"]}, "'plans': unknown variant 'nope'"),
    ({"limit": {"arc_easy": 3, "hellaswag": 2}, "tasks": ["arc_easy"]}, "not in 'tasks': hellaswag"),
    ({"limit": True}, "positive integer"),
    ({"k": True}, "an integer or a list"),
    ({"model": ""}, "'model' must be a non-empty string"),
    ({"dtype": "fp8"}, "'dtype' must be one of"),
])
def test_bad_grid_values_are_one_line_naming_file_and_key(over, needle):
    with pytest.raises(UserError, match="^config sweep.yaml: ") as err:
        DecoderSweepConfig.from_mapping({"model": "m", **over}, "sweep.yaml")
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_n_out_of_range_for_the_model_is_refused_before_any_work():
    cfg = DecoderSweepConfig.from_mapping({"model": "m", "variants": ["skip"], "n": [4]}, "s.yaml")
    with pytest.raises(UserError, match=r"config s.yaml: N=4 is out of range for m \(8 layers\): valid N are 0..3"):
        cfg.specs(8)


# ---- the same grammar in the GLUE track ----------------------------------------------------------
from glue_eval.config import GlueSweepConfig  # noqa: E402
from glue_eval.runs import expand as glue_expand  # noqa: E402


@pytest.mark.parametrize("track", [DecoderSweepConfig, GlueSweepConfig])
def test_both_tracks_read_the_grid_keys_the_same_way(track):
    tasks = ["arc_easy"] if track is DecoderSweepConfig else ["rte"]
    cfg = track.from_mapping({"model": "m", "variants": ["skip", "looped_parallel", "skip_one"],
                              "n": {"from": 0, "to": 2, "step": 2}, "k": [2, 3], "i": [1],
                              "plans": ["0-3", "switch:i=0"], "tasks": tasks, "limit": 4})
    assert [s.text for s in cfg.specs(8)] == ["skip:n=0", "skip:n=2", "looped_parallel:n=0,k=2",
                                              "looped_parallel:n=0,k=3", "looped_parallel:n=2,k=2",
                                              "looped_parallel:n=2,k=3", "skip_one:i=1", "0-3", "switch:i=0"]
    assert cfg.limit == {tasks[0]: 4}
    for bad, needle in [({"n": {"min": 0, "max": 2}}, "{min, max} is written {from: A, to: B} now"),
                        ({"variants": ["skipp"]}, "unknown variant 'skipp'")]:
        with pytest.raises(UserError, match="^config c.yaml: ") as err:
            track.from_mapping({"model": "m", "tasks": tasks, **bad}, "c.yaml")
        assert needle in str(err.value)


def test_glue_random_follows_the_training_seed_unless_permutation_seeds_are_given():
    base = {"model": "m", "variants": ["random"], "n": [1], "tasks": ["rte"], "modes": ["probe"], "seeds": [0, 1]}
    runs = glue_expand(GlueSweepConfig.from_mapping(base), 6)
    full = [("full", 0), ("full", 1)]  # every sweep has its baseline, as the decoder track's always had
    assert [(r.label, r.seed) for r in runs] == full + [("random:n=1,seed=0", 0), ("random:n=1,seed=1", 1)]
    runs = glue_expand(GlueSweepConfig.from_mapping(dict(base, permutation_seeds=[5, 6])), 6)
    assert [(r.label, r.seed) for r in runs] == full + [("random:n=1,seed=5", 0), ("random:n=1,seed=5", 1),
                                                        ("random:n=1,seed=6", 0), ("random:n=1,seed=6", 1)]


@pytest.mark.parametrize("over,needle", [
    ({"limit_eval": 8}, "'limit_eval' is gone: 'sample: N' is a fixed random subset"),
    ({"probe": {"limit_eval": 8}}, "'limit_eval' is gone: 'sample: N' is a fixed random subset"),
    ({"seeds": 3}, "write the seeds as a list ([3] is seed 3) or 'seed_count: 3'"),
    ({"seeds": [0], "seed_count": 2}, "not both"),
    ({"limit": 4, "sample": 8}, "'limit' (the first N rows) and 'sample' (a fixed random subset)"),
    ({"seeds": [-1]}, "non-negative"),
    ({"modes": ["train"]}, "unknown mode 'train'"),
    ({"wandb": {"projekt": "x"}}, "unknown setting(s) projekt"),
    ({"finetune": {"limit": {"sst2": 3}}}, "not in 'tasks': sst2"),
])
def test_glue_track_keys_are_checked_in_one_line(over, needle):
    with pytest.raises(UserError) as err:
        GlueSweepConfig.from_mapping({"model": "m", "tasks": ["rte"], **over}, "g.yaml")
    assert needle in str(err.value) and str(err.value).startswith("config g.yaml: ")


def test_a_mode_section_overrides_seeds_and_limits_per_task():
    cfg = GlueSweepConfig.from_mapping({"model": "m", "tasks": ["rte", "mrpc"], "limit": {"default": 8, "mrpc": 4},
                                        "sample_train": 32, "seed_count": 2,
                                        "finetune": {"seeds": [0], "limit": 16, "epochs": 1}})
    assert cfg.setting("probe", "limit", "mrpc") == 4 and cfg.setting("probe", "limit", "rte") == 8
    assert cfg.setting("finetune", "limit", "mrpc") == 16 and cfg.setting("finetune", "seeds") == [0]
    assert cfg.setting("probe", "seeds") == [0, 1] and cfg.finetune_hp.epochs == 1


def test_pick_tasks_narrows_per_task_limits_in_both_tracks():
    """``--tasks`` picks some of a config's tasks; the other tasks' limits (top level and a GLUE
    mode's section) go with them instead of failing the config's check."""
    from painters.options import pick_tasks
    from glue_eval.config import GlueSweepConfig

    raw = {"model": "minilm", "variants": ["full"], "tasks": ["rte", "mrpc"], "modes": ["probe"],
           "limit": {"default": 50, "rte": 8, "mrpc": 4}, "probe": {"limit": {"mrpc": 2}}}
    picked = pick_tasks(raw, ["rte"])
    assert picked["limit"] == {"default": 50, "rte": 8} and "limit" not in picked["probe"]
    assert raw["limit"]["mrpc"] == 4 and raw["probe"]["limit"] == {"mrpc": 2}  # the config itself is untouched
    cfg = GlueSweepConfig.from_mapping(picked, "<test>")
    assert cfg.tasks == ["rte"] and cfg.limit == {"rte": 8}
    with pytest.raises(UserError, match="not in 'tasks': mrpc"):
        GlueSweepConfig.from_mapping(dict(raw, tasks=["rte"]), "<test>")


def test_glue_seeds_flag_replaces_every_modes_seeds(tmp_path):
    """``--seeds`` sets the training seeds of every mode, a mode section's own included (the
    replication adds seed 1 to some fine-tuned rows with ``--seeds 0 1``: seed 0 is done, so only
    seed 1 runs). ``--seeds`` lists the seed values, as ``seeds:`` does in a config: ``--seeds 2``
    is seed 2 (it was a count, seeds 0 and 1); a count is ``--seed-count``."""
    import yaml

    from painters.commands.glue import _config
    from painters.cli import build_parser

    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"model": "minilm", "variants": ["full"], "tasks": ["rte"], "seeds": [0, 1, 2],
                                    "finetune": {"seeds": [0]}}))

    def seeds(*flags):
        cfg = _config(build_parser().parse_args(["glue", "run", str(path), *flags]))
        return cfg.setting("finetune", "seeds"), cfg.setting("probe", "seeds")

    assert seeds() == ([0], [0, 1, 2])
    assert seeds("--seeds", "2") == ([2], [2])
    assert seeds("--seeds", "1,3") == ([1, 3], [1, 3]) == seeds("--seeds", "1", "3")
    assert seeds("--seed-count", "2") == ([0, 1], [0, 1])
    for bad in (["--seeds", "x"], ["--seeds", "-1"], ["--seeds", ","], ["--seeds", "1", "1"],
                ["--seeds", "1", "--seed-count", "2"], ["--seed-count", "0"]):
        with pytest.raises(UserError, match="--seed"):
            seeds(*bad)


def test_glue_limit_is_the_first_rows_and_sample_a_random_subset(tmp_path):
    """``limit`` means the first N evaluation rows in both tracks (it was a random subset in
    GLUE); ``sample`` is the random subset, keyed exactly as the old ``limit`` records were, so a
    store written before is still found and a first-N record is never taken for a sample's."""
    import yaml

    from glue_eval import tasks as T
    from glue_eval.data import eval_rows
    from glue_eval.pipeline import Sweep
    from painters.cli import build_parser
    from painters.commands.glue import _config

    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"model": "minilm", "variants": ["full"], "tasks": ["rte", "mrpc"], "sample": 8,
                                    "probe": {"limit": {"rte": 3}}}))

    def cfg(*flags):
        return _config(build_parser().parse_args(["glue", "run", str(path), *flags]))

    def subset(c, mode, task):
        return Sweep(c, None, None, None, None, 6, "fp", "cls", "").subset(mode, task)

    c = cfg()
    assert subset(c, "finetune", "rte") == {"train": None, "eval": 8, "seed": 0}  # the old records' key
    assert subset(c, "probe", "rte") == {"train": None, "eval": None, "seed": 0, "eval_first": 3}
    assert subset(c, "probe", "mrpc") == {"train": None, "eval": None, "seed": 0}  # the mode's own rows win
    c = cfg("--limit", "5", "--limit", "mrpc=2")  # the command line decides the rows: the config's sample goes
    assert [subset(c, "finetune", t) for t in ("rte", "mrpc")] == [
        {"train": None, "eval": None, "seed": 0, "eval_first": 5}, {"train": None, "eval": None, "seed": 0, "eval_first": 2}]
    c = cfg("--sample", "4")
    assert subset(c, "probe", "rte") == {"train": None, "eval": 4, "seed": 0}
    rows = [{"i": i} for i in range(20)]
    assert eval_rows(rows, {"eval_first": 5}) == rows[:5]
    assert eval_rows(rows, {"eval": 5, "seed": 0}) == T.subset(rows, 5, 0) != rows[:5]
    with pytest.raises(UserError, match="--limit takes a positive number or TASK=NUMBER"):
        cfg("--limit", "0")


@pytest.mark.parametrize("argv, needle", [
    (["glue", "run", "c.yaml", "--limit-eval", "5"], "--limit-eval is gone: --sample N"),
    (["glue", "run", "c.yaml", "--limit-train", "5"], "--limit-train is gone: --sample-train N"),
])
def test_old_spellings_name_what_replaced_them(argv, needle, capsys):
    from painters.cli import main

    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and needle in capsys.readouterr().err


@pytest.mark.parametrize("where", ["top", "finetune"])
def test_limit_train_is_refused_naming_sample_train(where):
    """``limit`` means the first N in both tracks; a random subset of training rows is
    ``sample_train`` (what ``limit_train`` was), and the old key says so in one line."""
    from glue_eval.config import GlueSweepConfig

    raw = {"model": "minilm", "tasks": ["rte"]}
    if where == "top":
        raw["limit_train"] = 8
    else:
        raw["finetune"] = {"limit_train": 8}
    with pytest.raises(UserError, match="'limit_train' is gone: 'sample_train: N'"):
        GlueSweepConfig.from_mapping(raw)
    ok = dict(raw)
    ok.pop("limit_train", None)
    ok.pop("finetune", None)
    assert GlueSweepConfig.from_mapping(dict(ok, sample_train=8)).sample_train == 8
