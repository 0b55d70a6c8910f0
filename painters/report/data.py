"""Records of the results store -> one ``Group`` per table: the numbers every figure, table,
finding and W&B log of the report is drawn from.

Why one shape for both tracks: the paper's figures are the same for the decoder and GLUE (a score
per variant and N, per benchmark and summarised), so figures and findings are written once, over
``Group``. What differs is only how a cell is summarised, and that comes from each track's own
code, not re-implemented here:

* decoder: ``decoder_eval.summary.group_records`` splits the records into tables and
  ``summarize`` gives each plan's normalized median (mean ± std over random seeds) and the
  reliability of each benchmark (the full model's margin over chance against ``FACTOR`` × its
  standard error; DESIGN.md "Normalizing decoder scores"). Flagged benchmarks are left out of
  the median by that code.
* GLUE: the task score is the record's ``score`` (×100, the track's ``task_score``), the summary
  is the paper's unnormalized average (``glue.metrics.glue_average``) of the tasks' seed means.
  GLUE records carry no chance level, so the report uses the better of uniform random guessing
  (``glue_chance``) and a constant majority-label answer on the same evaluation rows
  (``glue_majority``: a fine-tune that learned nothing predicts one class, which on MRPC beats
  guessing by 14 points), and the binomial standard error of the full model's score on the
  evaluation rows, with the decoder track's ``FACTOR``: a task where the full model does not
  clear chance by that margin is flagged (‡) in every table and plot. The average keeps it, as
  the paper's unnormalized average does (no ratio of noise to noise is formed there); the
  normalized median the findings use leaves it out, as the decoder median does.

For the findings both tracks also get a *relative* headline: the normalized median
(score − chance) / (full − chance) over the unflagged tasks, so claims compare like with like.
"""

from __future__ import annotations

import functools
import json
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from glue_painters import recipes
from glue_painters.errors import UserError
from glue_painters.results import ResultsStore
from glue_painters.variants import VariantSpec, block_of

TRACKS = ("decoder", "glue")
# variants of the paper, in the order the report shows them
SWEEP_ORDER = ("full", "skip", "middle_repeat", "reverse", "random", "parallel", "looped_parallel")


@dataclass
class Stat:
    """A summary over seeds: the mean, the seeds' standard deviation (None for one seed), count."""

    mean: float | None
    std: float | None = None
    seeds: int = 0


def stat(values) -> Stat:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return Stat(None, None, 0)
    return Stat(statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else None, len(vals))


@dataclass
class Cell:
    """One plan family of a group: a variant with its N/k/i, over the seeds that ran."""

    variant: str
    n: int | None
    k: int | None
    i: int | None
    label: str
    per_task: dict[str, list[float]] = field(default_factory=dict)  # plotted value per seed
    raw: dict[str, list[float]] = field(default_factory=dict)  # raw task score per seed
    headline: Stat = field(default_factory=lambda: Stat(None))  # normalized median | GLUE average
    relative: Stat = field(default_factory=lambda: Stat(None))  # normalized median (both tracks)
    plans: set = field(default_factory=set)
    records: list = field(default_factory=list, repr=False)  # its records (per-document scores: paired.py)

    def task_stat(self, task: str) -> Stat:
        return stat(self.per_task.get(task, []))


@dataclass
class Group:
    """One table of the report: a model (and dtype / mode) with the records that share a scale."""

    track: str
    model: str
    title: str
    slug: str
    tasks: list[str]
    flagged: dict[str, str]  # task -> why (at chance): left out of the headline
    full_score: dict[str, float | None]
    chance: dict[str, float | None]
    primary: dict[str, str]
    cells: dict[tuple, Cell]
    num_layers: int | None
    headline_name: str  # "normalized median" | "GLUE average"
    value_name: str  # what per-task values are: "normalized score" | "task score ×100"
    mode: str | None = None
    records: list[dict] = field(default_factory=list, repr=False)
    configs: list[dict] = field(default_factory=list)  # distinct configs / hparams that made them
    versions: list[dict] = field(default_factory=list)  # distinct package versions
    notes: list[str] = field(default_factory=list)
    paired: object = field(default=None, repr=False, compare=False)  # paired.Resampled, made on first use
    recipe: dict = field(default_factory=dict)  # what its records share besides plan, task, seed (recipes.py)
    identity: str = ""  # the weights as they are (an alias's description), for the header

    @property
    def reliable(self) -> list[str]:
        return [t for t in self.tasks if t not in self.flagged]

    def cell(self, variant, n=None, k=None, i=None) -> Cell | None:
        return self.cells.get((variant, n, k, i))

    def series(self, variant: str, k: int | None = None) -> list[Cell]:
        """Cells of ``variant`` over N (looped_parallel: at iteration count ``k``), by N."""
        out = [c for c in self.cells.values() if c.variant == variant and c.n is not None and c.i is None
               and (k is None or c.k == k)]
        return sorted(out, key=lambda c: c.n)

    def ks(self, variant: str = "looped_parallel") -> list[int]:
        return sorted({c.k for c in self.cells.values() if c.variant == variant and c.k is not None})

    def full(self) -> Cell | None:
        return self.cells.get(("full", None, None, None))


# ---- decoder ---------------------------------------------------------------------------------------
def layer_count(records: list[dict]) -> int | None:
    """T, the model's layer count: the executed layers of a plan that runs every layer once
    (full, reverse, random, middle_repeat), None when no such record is there."""
    return next((r["executions"] for r in records if r.get("variant") in ("full", "reverse", "random", "middle_repeat")
                 and r.get("executions")), None)


def _slug(*parts) -> str:
    text = "_".join(str(p) for p in parts if p not in (None, ""))
    return "".join(ch if ch.isalnum() or ch in "-." else "_" for ch in text).strip("_")


def _distinct(items: list[dict]) -> list[dict]:
    seen, out = set(), []
    for it in items:
        blob = json.dumps(it, sort_keys=True, default=str)
        if blob not in seen:
            seen.add(blob)
            out.append(it)
    return out


def decoder_groups(records: list[dict], tasks: list[str] | None = None) -> list[Group]:
    from decoder_eval.summary import group_records, summarize

    groups = []
    for (name, fingerprint, dtype, healed, code), recs in group_records(records).items():
        if tasks:
            recs = [r for r in recs if r["task"] in tasks]
        if not recs:
            continue
        summary = summarize(recs)
        rel = summary.reliability
        full = {r["task"]: r for r in recs if r["variant"] == "full"}
        T = layer_count(recs)
        cells: dict[tuple, Cell] = {}
        for r in recs:
            p = r.get("params") or {}
            key = (r["variant"], p.get("n"), p.get("k"), p.get("i"))
            if r["variant"] == "custom":
                key = ("custom:" + str(p.get("plan")), None, None, None)
            elif r["variant"] == "duplicate":  # one cell per block: (i, j, times), never pooled over j
                key = (f"duplicate:i={p.get('i')},j={p.get('j')},times={p.get('times', 2)}", None, None, None)
            c = cells.setdefault(key, Cell(key[0], key[1], key[2], key[3], _cell_label(*key)))
            score = r["metrics"][r["primary_metric"]]
            c.raw.setdefault(r["task"], []).append(score)
            info = rel[r["task"]]
            if info.ok:
                c.per_task.setdefault(r["task"], []).append((score - info.chance) / (info.full - info.chance))
            c.plans.add(r["plan"]["text"] if isinstance(r.get("plan"), dict) else r.get("plan_hash"))
            c.records.append(r)
        # the headline: the decoder track's own median (mean ± std of per-seed medians)
        for row in summary.rows:
            for c in cells.values():
                base = c.variant.split(":")[0] if c.variant.startswith(("custom:", "duplicate:")) else c.variant
                if base == row.variant and c.n == row.n and c.k == row.k and row.label == _summary_label(c):
                    c.headline = c.relative = Stat(row.median, row.median_std, row.seeds)
        healed_flag = json.loads(healed) if healed else False
        title = f"{name} — decoder, {dtype}" + (", LoRA-healed" if healed_flag else "")
        recipe = {"model": fingerprint, "dtype": dtype, "code": code, **({"heal": healed_flag} if healed_flag else {})}
        groups.append(Group(
            track="decoder", model=name, title=title, slug=_slug("decoder", name, dtype, "healed" if healed_flag else ""),
            tasks=summary.tasks, flagged={t: rel[t].why for t in summary.flagged},
            full_score={t: rel[t].full for t in summary.tasks}, chance={t: rel[t].chance for t in summary.tasks},
            primary=summary.primary, cells=cells, num_layers=T, headline_name="normalized median",
            value_name="normalized score", records=recs,
            configs=_distinct([{k: v for k, v in (r.get("config") or {}).items()} for r in recs]),
            versions=_distinct([r.get("versions") or {} for r in recs]),
            notes=[f"{t}: {s['n']} items" for t, s in summary.subset.items() if s], recipe=recipe))
    return groups


def _cell_label(variant, n, k, i) -> str:
    bits = []
    if n is not None:
        bits.append(f"n={n}")
    if k is not None:
        bits.append(f"k={k}")
    if i is not None:
        bits.append(f"i={i}")
    return variant + (":" + ",".join(bits) if bits else "")


def _summary_label(c: Cell) -> str:
    """The label ``decoder_eval.summary`` gives this cell's row (variant, ' i=I', ' PLAN')."""
    if c.variant.startswith("custom:"):
        return "custom " + c.variant[len("custom:"):]
    if c.variant.startswith("duplicate:"):
        i, j, times = block_of(c.variant)
        return f"duplicate i={i} j={j}" + (f" ×{times}" if times != 2 else "")
    return c.variant + (f" i={c.i}" if c.i is not None else "")


# ---- GLUE --------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def glue_majority(task: str, data: str, subset: str) -> float | None:
    """Task score (×100) of always answering the evaluation rows' most frequent label, the floor a
    classifier reaches without learning anything (MRPC's validation rows are 68% paraphrases: a
    constant "paraphrase" scores (F1 81 + acc 68)/2). ``data`` and ``subset`` are the record key's
    (JSON): the rows are re-read from the local GLUE folder (``$PAINTERS_DATA`` or ../shared/data)
    and the same fixed subset taken. None for regression tasks, or when those exact files are not
    here (hashes differ, or the rows came from the hub): then only ``glue_chance`` applies."""
    from collections import Counter

    from glue_eval import tasks as T
    from glue_eval.metrics import score_split, task_score

    from glue_painters.datadir import track_dir
    from glue_painters.fingerprints import file_sha16

    t = T.get_task(task)
    data_shas, sub = json.loads(data) or {}, json.loads(subset) or {}
    if t.is_regression:
        return None
    metrics = {}
    for split in t.eval_splits:
        path, expected = track_dir("glue") / t.name / f"{split}.jsonl", data_shas.get(split)
        if not expected or not path.is_file() or file_sha16(path) != expected:
            return None
        from glue_eval.data import eval_rows  # the rows the record's subset key chose: sample or first N

        labels = [r["label"] for r in eval_rows(T.read_jsonl(t, path), sub)]
        top = max(sorted(set(labels)), key=Counter(labels).__getitem__)  # ties: the lowest code
        metrics.update(score_split(t, split, [top] * len(labels), labels))
    return task_score(t, metrics)


def glue_chance(task: str) -> float:
    """Expected task score (×100) of guessing uniformly at random: the chance level when the
    evaluation rows cannot be re-read (``glue_majority`` then gives none).

    accuracy tasks: 100/#labels; CoLA (Matthews) and STS-B (Pearson/Spearman): 0; MRPC/QQP (mean
    of F1 and accuracy): accuracy 50 and F1 at most 2/3 (uniform guessing's F1 is 2p/(2p+1) for a
    positive rate p ≤ 1), so (50 + 66.7)/2.
    """
    from glue_eval.tasks import get_task

    t = get_task(task)
    if t.name in ("cola", "stsb"):
        return 0.0
    if t.name in ("mrpc", "qqp"):
        return (50.0 + 200.0 / 3) / 2
    return 100.0 / t.num_labels


def glue_stderr(task: str, score: float, n_eval: int) -> float:
    """Standard error (×100) of a task score on ``n_eval`` rows: binomial for accuracy-like
    scores, 1/sqrt(n) for correlations (the SE of a correlation near 0)."""
    if n_eval < 2:
        return float("inf")
    if task in ("cola", "stsb"):
        return 100.0 / math.sqrt(n_eval - 1)
    p = min(max(score / 100.0, 0.0), 1.0)
    return 100.0 * math.sqrt(max(p * (1 - p), 1e-4) / n_eval)


def _with_twins(recs: list[dict]) -> list[dict]:
    """Add the records a GLUE sweep shares between labels with the same plan.

    The GLUE sweep runs a plan once per (task, mode, seed) and stores it under the first label
    that asked for it (``full`` before ``reverse:n=2`` when the middle is one layer); the other
    labels are not in the store. Rebuild each missing (variant, N, k) label's plan and take its
    twin's record, relabelled."""

    T = layer_count(recs)
    if T is None:
        return recs
    by_plan = {(r["plan_hash"], r["task"], r["seed"]): r for r in recs}
    have = {(r["variant"], r.get("n"), r.get("k"), r["task"], r["seed"]) for r in recs}
    shapes = {(r["variant"], r.get("n"), r.get("k")) for r in recs if r["variant"] != "custom"}
    ns = sorted({r.get("n") for r in recs if r.get("n") is not None})
    ks = sorted({r.get("k") for r in recs if r.get("k") is not None})
    variants = {v for v, _, _ in shapes}
    wanted = {("full", None, None)} if "full" in variants or any(v != "full" for v in variants) else set()
    for v in variants - {"full"}:
        for n in ns:
            for k in (ks if v == "looped_parallel" else [None]):
                wanted.add((v, n, k))
    out = list(recs)
    for v, n, k in wanted:
        for task, seed in {(r["task"], r["seed"]) for r in recs}:
            if (v, n, k, task, seed) in have:
                continue
            try:
                plan = VariantSpec.of(v, **_variant_params(v, n, k, seed)).plan(T)
            except Exception:  # an N this model does not have
                continue
            twin = by_plan.get((plan.hash, task, seed))
            if twin is not None:
                out.append(dict(twin, variant=v, n=n, k=k, label=_cell_label(v, n, k, None), twin_of=twin.get("label")))
    return out


def _variant_params(variant: str, n, k, seed) -> dict:
    """A GLUE cell's variant parameters as the sweep builds them (random: the run's seed)."""
    if variant == "full":
        return {}
    return {"n": n, **({"k": k} if variant == "looped_parallel" else {}), **({"seed": seed} if variant == "random" else {})}


def _glue_cell_key(r: dict) -> tuple:
    """(variant, N, k, i) of a GLUE record. Fig. 2's plans are ``skip_one``/``switch`` rows with
    their ``i``; records written before the shared grammar had them as custom plans whose label is
    the spec, read back here."""
    import re

    if r["variant"] in ("skip_one", "switch"):
        return (r["variant"], None, None, (r.get("params") or {}).get("i", r.get("i")))
    if r["variant"] == "custom":
        m = re.fullmatch(r"(skip_one|switch):i=(\d+)", str(r.get("label", "")).replace(" ", ""))
        if m:
            return (m.group(1), None, None, int(m.group(2)))
        return ("custom:" + str(r.get("plan_text", "?")), None, None, None)
    if r["variant"] == "full":
        return ("full", None, None, None)
    return (r["variant"], r.get("n"), r.get("k"), None)


def glue_groups(records: list[dict], tasks: list[str] | None = None) -> list[Group]:
    from decoder_eval.summary import FACTOR

    from glue_eval.metrics import glue_average
    from glue_eval.tasks import TASKS as GLUE_TASKS

    by: dict[tuple, list[dict]] = defaultdict(list)
    for r in records:
        if tasks and r["task"] not in tasks:
            continue
        k = r.get("key", {})
        # one table per recipe (hyperparameters, subset, weights): seeds of one recipe pool, other
        # recipes never; a re-run under another scoring version is a duplicate, counted below
        by[(r.get("model_name"), r["mode"], recipes.recipe_id(k, ("mode", "code")))].append(r)
    groups = []
    for (model, mode, rid), recs in sorted(by.items(), key=lambda kv: (str(kv[0][0]), kv[0][1], kv[0][2])):
        recipe = json.loads(rid)
        hp, subset = json.dumps(recipe.get("hparams"), sort_keys=True), json.dumps(recipe.get("subset"), sort_keys=True)
        task_list = [t for t in GLUE_TASKS if any(r["task"] == t for r in recs)]
        # one record per (label, task, seed): a re-run under a newer code version replaces none
        seen, dup = {}, 0
        for r in recs:
            key = (*_glue_cell_key(r), r["task"], r["seed"], r.get("label"))
            if key in seen:
                dup += 1
                continue
            seen[key] = r
        recs = _with_twins(list(seen.values()))
        full_recs = [r for r in recs if r["variant"] == "full"]
        flagged, full_score, chance = {}, {}, {}
        for t in task_list:
            fs = [r["score"] for r in full_recs if r["task"] == t]
            key = next((r.get("key") or {} for r in recs if r["task"] == t), {})
            majority = glue_majority(t, json.dumps(key.get("data"), sort_keys=True), subset or "null")
            chance[t] = glue_chance(t) if majority is None else max(glue_chance(t), majority)
            if not fs:
                full_score[t] = None
                flagged[t] = "no full-model record"
                continue
            m = statistics.fmean(fs)
            full_score[t] = m
            sizes = next(r.get("sizes") or {} for r in full_recs if r["task"] == t)
            n_eval = sum(v for s, v in sizes.items() if s != "train") or 0
            se = glue_stderr(t, m, n_eval)
            if len(fs) > 1:  # the seeds' spread counts too
                se = math.hypot(se, statistics.stdev(fs) / math.sqrt(len(fs)))
            if not (m - chance[t]) > FACTOR * se:
                flagged[t] = (f"full {m:.1f} vs chance {chance[t]:.1f}, margin {m - chance[t]:+.1f} "
                              f"≤ {FACTOR:g}×SE ({se:.1f})")
        T = layer_count(recs)
        cells: dict[tuple, Cell] = {}
        seeds_of: dict[tuple, dict[int, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
        for r in recs:
            key = _glue_cell_key(r)
            variant = key[0]
            c = cells.setdefault(key, Cell(*key, label=_cell_label(*key)))
            score = r["score"]
            c.raw.setdefault(r["task"], []).append(score)
            c.per_task.setdefault(r["task"], []).append(score)
            c.plans.add(r.get("plan_text"))
            c.records.append(r)
            seeds_of[key][r["seed"]][r["task"]] = score
        reliable = [t for t in task_list if t not in flagged]
        for key, c in cells.items():
            # the paper's GLUE average: every task shown, ‡ ones included (an unnormalized mean
            # divides nothing by noise); it needs a score on every task
            means = {t: statistics.fmean(c.per_task[t]) for t in task_list if c.per_task.get(t)}
            if len(means) == len(task_list):
                per_seed = [glue_average({t: s[t] for t in task_list}) for s in seeds_of[key].values()
                            if all(t in s for t in task_list)]
                # the spread (and its seed count) only over seeds that ran every task
                c.headline = Stat(glue_average(means), stat(per_seed).std, len(per_seed))
            # the findings' scale: the normalized median over the tasks above chance only
            if reliable and all(c.per_task.get(t) for t in reliable):
                rel_seed = [statistics.median((s[t] - chance[t]) / (full_score[t] - chance[t]) for t in reliable)
                            for s in seeds_of[key].values() if all(t in s for t in reliable)]
                c.relative = stat(rel_seed)
        sub = json.loads(subset) if subset else {}
        title = f"{model} — GLUE {mode}"
        notes = [f"subset: train {sub.get('train') or 'all'} rows, eval {sub.get('eval') or 'all'} rows"]
        if dup:
            notes.append(f"{dup} duplicate record(s) (same run under another code version) not counted")
        hps = json.loads(hp) if hp else {}
        groups.append(Group(
            track="glue", model=str(model), title=title,
            slug=_slug("glue", model, mode),
            tasks=task_list, flagged=flagged, full_score=full_score, chance=chance,
            primary={t: "score" for t in task_list}, cells=cells, num_layers=T, headline_name="GLUE average",
            value_name="task score ×100", mode=mode, records=recs,
            configs=_distinct([{"mode": mode, "hparams": hps, "subset": sub}]),
            versions=_distinct([{"code": r.get("key", {}).get("code")} for r in recs]), notes=notes,
            recipe=recipe))
    return groups


def titled_apart(groups: list[Group]) -> list[Group]:
    """Groups whose titles are alike get the settings that tell them apart in title and slug
    (``minilm — GLUE finetune (epochs 1, max length 64)``): a reader, a figure file and a W&B
    section must never take two recipes for one."""
    alike: dict[str, list[Group]] = defaultdict(list)
    for g in groups:
        alike[g.title].append(g)
    for same in alike.values():
        differs = recipes.distinguishing([g.recipe for g in same]) if len(same) > 1 else []
        for g in same:
            if differs:
                text = recipes.describe(g.recipe, differs)
                g.title += f" ({text})"
                g.slug = _slug(g.slug, text.replace(", ", "_").replace(" ", ""))
    seen: dict[str, int] = defaultdict(int)
    for g in groups:  # whatever is left alike (recipes equal in all but an ignored field): numbered
        seen[g.title] += 1
        if seen[g.title] > 1:
            g.title += f" [{seen[g.title]}]"
            g.slug += f"_{seen[g.title]}"
    return groups


# ---- loading -------------------------------------------------------------------------------------------
def load_groups(results: Path, track: str = "all", models: list[str] | None = None,
                tasks: list[str] | None = None) -> list[Group]:
    """Every table the store holds for the chosen track(s), models and tasks."""
    if track not in TRACKS + ("all",):
        raise UserError(f"--track must be decoder, glue or all, got {track!r}")
    store = ResultsStore(results)
    if not Path(results).is_dir():
        raise UserError(f"results folder {results} does not exist")
    groups: list[Group] = []
    for t in TRACKS if track == "all" else (track,):
        recs = []
        for r in store.records(t):
            name = r.get("model") if t == "decoder" else r.get("model_name")
            if models and name not in models:
                continue
            recs.append(r)
        if not recs:
            continue
        groups += decoder_groups(recs, tasks) if t == "decoder" else glue_groups(recs, tasks)
    return with_identity(titled_apart(groups))


def with_identity(groups: list[Group]) -> list[Group]:
    """Each group's ``identity``: what its model name's weights are (``models.identity``)."""
    from glue_painters.models import identity

    for g in groups:
        g.identity = identity(g.model)
    return groups
