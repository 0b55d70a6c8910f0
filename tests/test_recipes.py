"""Summaries that cannot mislead: a cell pools records that differ in the seed alone, and tables
of other recipes are titled by what tells them apart (issue 24, "What a new user met" 1 and 7).

The store is the one a new user made: fine-tunes of seeds 0, 1, 2, 5 with one recipe (1 epoch,
length 64, batch 16) and seeds 3, 4 with another (3 epochs, length 128, batch 32), the full model
only in the second. ``painters glue summary`` once printed one cell "skip 50.3 ± 1.8 over seeds
[0-5]"; the report titled three such tables alike.
"""

from __future__ import annotations

from glue_painters import recipes
from glue_painters.results import ResultsStore
from painters.cli import main

T = 6


def put_glue(store: ResultsStore, label: str, seed: int, hparams: dict, score: float, task: str = "rte",
             subset: dict | None = None, model: str = "tinybert") -> dict:
    from glue_eval.records import key_fields, make_record
    from glue_eval.runs import RunSpec

    spec = RunSpec.of(model, label, task, "finetune", seed)
    plan = spec.plan(T)
    rec = make_record(spec, plan, model, {"train": 64, "validation": 64},
                      {"metrics": {"accuracy": score / 100}, "score": score}, {})
    key = key_fields("fp:one", plan, spec, hparams, subset or {"train": 64, "eval": 64, "seed": 0}, {"train": "sha"})
    store.put("glue", key, rec)
    return rec


SHORT = {"learning_rate": 2e-5, "batch_size": 16, "epochs": 1.0, "max_length": 64}
LONG = {"learning_rate": 2e-5, "batch_size": 32, "epochs": 3.0, "max_length": 128}


def new_users_store(root) -> ResultsStore:
    store = ResultsStore(root)
    for seed, score in zip((0, 1, 2, 5), (50.0, 52.0, 51.0, 53.0)):
        put_glue(store, "skip:n=1", seed, SHORT, score)
    for seed, score in zip((3, 4), (48.0, 49.0)):
        put_glue(store, "skip:n=1", seed, LONG, score)
        put_glue(store, "full", seed, LONG, 60.0 + seed)
    return store


def test_glue_summary_pools_only_records_of_one_recipe(tmp_path, capsys):
    new_users_store(tmp_path / "results")
    assert main(["glue", "summary", "--results", str(tmp_path / "results")]) == 0
    out = capsys.readouterr().out
    tables = [t for t in out.split("### ")[1:]]
    assert len(tables) == 2, out
    short, long_ = sorted(tables, key=lambda t: "epochs 3" in t.splitlines()[0])
    # titled by what sets them apart, and each states its whole recipe
    assert short.startswith("tinybert — finetune, batch 16, epochs 1, max length 64 (")
    assert long_.startswith("tinybert — finetune, batch 32, epochs 3, max length 128 (")
    assert "over seeds [0, 1, 2, 5]" in short and "over seeds [3, 4]" in long_
    assert "Recipe: batch 16, epochs 1, lr 2e-05, max length 64, eval rows 64, subset seed 0, train rows 64" in short
    # the cells: each recipe's seeds only; the full model only where it ran
    assert "| skip:n=1 | `0,1,5` |  | 51.5 ± 1.3 |" in short and "| full |" not in short
    assert "| skip:n=1 | `0,1,5` |  | 48.5 ± 0.7 |" in long_ and "| full | `0-5` |  | 63.5 ± 0.7 |" in long_


def test_a_row_with_fewer_seeds_than_its_table_names_them():
    from glue_eval.summary import summary_table

    recs = []

    class Keep:
        def put(self, track, key, rec):
            from glue_painters.results import record_key
            recs.append(dict(rec, key=key, key_hash=record_key(key), track=track))

    for seed in (0, 1, 2):
        put_glue(Keep(), "skip:n=1", seed, LONG, 50.0 + seed)
    put_glue(Keep(), "full", 0, LONG, 60.0)
    table = summary_table(recs)
    assert "| full | `0-5` | [0] | 60.0 |" in table and "| skip:n=1 | `0,1,5` |  | 51.0 ± 1.0 |" in table


def test_report_tables_of_one_model_and_mode_are_titled_apart(tmp_path):
    """Three tables "minilm — GLUE finetune (train 64, eval 64)" differed in settings their titles
    did not show: each title now names the settings that differ, and slugs differ too."""
    from painters.report.data import load_groups

    store = new_users_store(tmp_path / "results")
    third = dict(LONG, learning_rate=5e-5)
    put_glue(store, "full", 0, third, 61.0)
    groups = load_groups(tmp_path / "results", "glue")
    titles = sorted(g.title for g in groups)
    assert len(titles) == len(set(titles)) == 3 and len({g.slug for g in groups}) == 3
    assert titles == ["tinybert — GLUE finetune (batch 16, epochs 1, lr 2e-05, max length 64)",
                      "tinybert — GLUE finetune (batch 32, epochs 3, lr 2e-05, max length 128)",
                      "tinybert — GLUE finetune (batch 32, epochs 3, lr 5e-05, max length 128)"]
    # seeds of other recipes are never in one cell
    for g in groups:
        assert len({recipes.recipe_id(r["key"], ("code",)) for r in g.records}) == 1
    short = next(g for g in groups if "epochs 1" in g.title)
    assert short.cell("skip", 1).task_stat("rte").seeds == 4 and short.full() is None


def test_one_table_keeps_its_plain_title():
    from painters.report.data import Group, titled_apart

    g = Group("glue", "m", "m — GLUE probe", "glue_m_probe", [], {}, {}, {}, {}, {}, None, "", "", recipe={"a": 1})
    assert titled_apart([g])[0].title == "m — GLUE probe"


def test_decoder_heals_with_other_settings_are_other_tables():
    """Two adapters of one plan trained with other settings: two tables, never two seeds of a row."""
    from decoder_eval.summary import group_records

    def rec(steps, score):
        key = {"model": "fp", "plan": "p", "variant": "skip", "params": {"n": 2}, "seed": None, "task": "arc_easy",
               "subset": {"n": 10}, "dtype": "float32", "healed": True, "heal": {"steps": steps}, "code": "1"}
        return {"model": "tiny", "key": key, "task": "arc_easy", "variant": "skip", "params": {"n": 2},
                "metrics": {"acc": score}, "primary_metric": "acc"}

    groups = group_records([rec(10, 0.5), rec(40, 0.6)])
    assert len(groups) == 2


def test_recipe_words_and_differences():
    a = {"hparams": {"epochs": 1.0, "learning_rate": 2e-5}, "subset": {"train": None}, "model": "sha256:" + "a" * 64}
    b = {"hparams": {"epochs": 3.0, "learning_rate": 2e-5}, "subset": {"train": 64}, "model": "sha256:" + "a" * 64}
    assert recipes.distinguishing([a, b]) == ["hparams.epochs", "subset.train"]
    assert recipes.describe(a) == "epochs 1, lr 2e-05, train rows all, weights aaaaaaaaaaaa"
    assert recipes.recipe({"seed": 3, "plan": "x", "task": "rte", "hparams": {}}) == {"hparams": {}}


def test_report_prints_one_line_for_the_figures_not_drawn(tmp_path, capsys):
    """A real store once printed 51 "not drawn" lines: now one line with the count and where the
    reasons are; the report itself still lists each with its reason."""
    from test_report_fixtures import write_glue_store

    write_glue_store(tmp_path / "r", modes=("probe", "finetune"), seeds=(0,), variants=("skip",), tasks=("rte",))
    out = tmp_path / "out"
    assert main(["report", "--results", str(tmp_path / "r"), "--out", str(out), "--similarity", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    lines = [x for x in text.splitlines() if "not drawn" in x]
    assert len(lines) == 1 and f"listed under 'not drawn' in {out / 'report.md'}" in lines[0]
    count = int(lines[0].split()[0])
    listed = (out / "report.md").read_text().split("### Not drawn")[1].split("## Tables")[0]
    assert count > 3 and sum(x.startswith("- ") for x in listed.splitlines()) == count
