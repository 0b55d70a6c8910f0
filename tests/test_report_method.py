"""The report's method holds what it states (issue 29): one definition of a cell in the tables, the
pattern and the interval; seeds resampled as part of the uncertainty; a normalization by a margin
that may be nil refused; rows of claims a store cannot decide collapsed; and the same store giving
the same report, figures included, byte for byte."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from test_report_fixtures import write_decoder_store, write_glue_store, write_similarity

from glue_painters import stats
from glue_painters.errors import UserError
from painters.report.data import load_groups
from painters.report.paired import Resampled, resampled
from painters.report.verdict import NO_DATA, Finding, collapsed, markdown_table, parse_sesoi


def _tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_same_store_gives_the_same_report_byte_for_byte(tmp_path):
    """Two regenerations in two processes with different hash seeds (set orders differ between
    them, which is how call order used to leak into the draws: a store whose labels share plans,
    ``legacy``, got its cells in set order, and the training seeds were drawn in cell order from
    one generator): every file the same, figures included."""
    results = tmp_path / "results"
    write_glue_store(results, modes=("probe",), tasks=("rte", "sst2"), seeds=(0, 1, 2), legacy=True)
    write_similarity(tmp_path / "sim")
    trees, out = [], tmp_path / "out"  # one folder: the report names the command that made it
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed, OMP_NUM_THREADS="1")
        code = ("import sys; from painters.cli import main; sys.exit(main(sys.argv[1:]))")
        subprocess.run([sys.executable, "-c", code, "report", "--results", str(results), "--out", str(out),
                        "--similarity", str(tmp_path / "sim")], check=True, env=env, capture_output=True)
        trees.append(_tree(out))
        shutil.rmtree(out)
    assert trees[0] == trees[1]
    assert sum(name.endswith(".png") for name in trees[0]) >= 5


def _resampled(per_seed: dict, chance=0.0, resamples=400) -> Resampled:
    """A hand-made group's resampled scores: ``per_seed[key][seed]`` = (tasks, documents) scores."""
    tasks = sorted({t for seeds in per_seed.values() for x in seeds.values() for t in range(len(x))})
    names = [f"t{t}" for t in tasks]
    columns, scorers, units = {}, {}, {}
    for t, name in zip(tasks, names):
        rows, cols = [], {}
        for key, seeds in per_seed.items():
            cols[key] = {}
            for seed, x in seeds.items():
                cols[key][seed] = len(rows)
                rows.append(np.asarray(x[t], dtype=float))
        x = np.stack(rows)
        scorers[name] = stats.Scorer((x.shape[1],), lambda w, rng, x=x: (w @ x.T) / w.sum(axis=1)[:, None])
        columns[name], units[name] = cols, x.shape[1]
    return Resampled(list(names), columns, scorers, units, resamples, reliable=list(names),
                     chance={n: chance for n in names})


def test_a_cell_is_the_mean_of_its_seeds_medians_in_the_interval_too():
    """Seed 0 scores (0, 0.2, 1) on three tasks, seed 1 (1, 0, 0.2): the mean of the per-seed
    medians is 0.2 (the tables' and the pattern's definition), the median of the seed-averaged
    scores would be 0.5. The interval's observed value is the first."""
    full = {None: [np.ones(10)] * 3}
    cell = {0: [np.full(10, v) for v in (0.0, 0.2, 1.0)], 1: [np.full(10, v) for v in (1.0, 0.0, 0.2)]}
    res = _resampled({("full", None, None, None): full, ("random", 1, None, None): cell})
    assert res.rel(("random", 1, None, None))[0] == pytest.approx(0.2)
    assert res.seeds[("random", 1, None, None)] == 2


def test_seeds_are_resampled_so_seed_spread_is_in_the_interval():
    """Permutation seeds that disagree (sd 0.1) but agree on average with the other plan: with
    seeds drawn in every resample, such studies are decided rarely; scoring the seeds' mean as if
    it were fixed (documents only) decides most of them."""
    rng = np.random.default_rng(5)
    full_key, a, b = ("full", None, None, None), ("random", 1, None, None), ("reverse", 1, None, None)
    decided = fixed = 0
    studies, seeds = 60, 10
    for _ in range(studies):
        base = 0.5 + rng.normal(0, 0.3, 40)
        offsets = rng.normal(0, 0.1, seeds)
        offsets -= offsets.mean() - rng.normal(0, 0.1 / np.sqrt(seeds))  # the seeds' mean: its own sampling error
        res = _resampled({full_key: {None: [base + 0.5]},
                          a: {s: [base + offsets[s] + rng.normal(0, 0.01, 40)] for s in range(seeds)},
                          b: {None: [base + rng.normal(0, 0.01, 40)]}}, resamples=1000)
        effect = res.rel(a) - res.rel(b)
        iv = stats.effect_interval(effect[:1], effect[1:, None], 0.95, 40)
        decided += stats.verdict(iv) != stats.INCONCLUSIVE
        as_fixed = res._norm_seeds(a, "t0", list(range(seeds))).mean(axis=1) - res.rel(b)  # documents only
        fixed += stats.verdict(stats.effect_interval(as_fixed[:1], as_fixed[1:, None], 0.95, 40)) != stats.INCONCLUSIVE
    assert decided <= 0.12 * studies and fixed >= 0.5 * studies, (decided, fixed)


def test_a_normalization_whose_denominator_may_be_nil_is_refused():
    """The full model 0.02 above chance on 30 noisy documents: its margin's interval reaches zero,
    so no ratio to it is formed, and the claim says so instead of dropping the resamples."""
    rng = np.random.default_rng(1)
    full = {None: [0.02 + rng.normal(0, 0.3, 30)]}
    res = _resampled({("full", None, None, None): full, ("skip", 1, None, None): {None: [rng.normal(0, 0.3, 30)]}})
    assert set(res.denominators(0.95)) == {"t0"}


def test_the_findings_of_a_store_are_refused_with_a_weak_denominator(tmp_path):
    from painters.report.findings import all_findings

    write_decoder_store(tmp_path, tasks=("lambada_openai", "arc_easy", "hellaswag"))
    (g,) = load_groups(tmp_path)
    g.chance = {t: (g.full_score[t] - 0.001) for t in g.chance}  # every margin 0.001: nil within the noise
    g.paired = None
    findings = [f for f in all_findings([g], []) if f.claim == "v"]
    assert findings[0].interval is None and "normalization refused" in findings[0].evidence


def test_claims_a_store_cannot_decide_collapse_into_one_row_per_subject():
    fs = [Finding("ii", "m — decoder", NO_DATA, "no skip records"), Finding("v", "m — decoder", NO_DATA, "no parallel"),
          Finding("iv", "other", NO_DATA, "no random records")]
    rows = collapsed(fs)
    assert len(rows) == 2 and rows[0].claims == ("ii", "v")
    assert "(ii) no skip records · (v) no parallel" in rows[0].evidence
    table = markdown_table(fs)
    assert table.count("not enough data") == 2 and "(ii) middle layers" in table and "(v) parallel beats skip" in table


@pytest.mark.parametrize("items, expected", [
    (["normalized=0.1"], {"normalized": 0.1}), (["i=0.02,vi-b=0.3"], {"i": 0.02, "vi-b": 0.3}), ([], {})])
def test_sesoi_is_given_by_scale_or_claim(items, expected):
    assert parse_sesoi(items) == expected


@pytest.mark.parametrize("bad", ["normalised=0.1", "v=-1", "v", "v=x"])
def test_a_bad_sesoi_is_one_clear_error(bad):
    with pytest.raises(UserError, match="--sesoi"):
        parse_sesoi([bad])
