"""Records as a table: ``painters results export`` and ``records_frame`` (a pandas DataFrame).

Why a flat table: a user comparing plans in a notebook or a spreadsheet wants one row per
record with the plan, the variant and every metric as columns, not a folder of JSON files.

Every column means one thing on the rows of both tracks, so a group-by over the whole table is
never silently wrong (``COLUMNS`` says what each means; a test builds records of both tracks and
checks each). In particular the variant's ``N`` (also ``k``, ``i``) is one column and the count of
documents or evaluation rows scored is another (``eval_items``): a decoder record's own ``n`` is
its document count while a GLUE record's ``n`` is the variant's N, so neither name is a column.
Likewise a decoder record's seed is the random variant's permutation while a GLUE record's is the
training seed: ``permutation_seed`` and ``train_seed``. A metric ``acc`` gives the columns ``acc``
and ``acc_stderr``. Nothing here knows a track's internals: it reads the fields records carry.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from glue_painters.outputs import output_file
from painters.options import add_results
from glue_painters.errors import UserError
from glue_painters.holdout import part_of
from glue_painters.models.aliases import identity
from glue_painters.plans import PlanError
from glue_painters.results import DEFAULT_ROOT, ResultsStore, atomic_write_bytes, atomic_write_text
from glue_painters.variants import VariantSpec

FORMATS = ("csv", "jsonl", "parquet")
# the fixed columns, in order, with the one meaning each has on rows of either track
COLUMNS = {
    "track": "decoder or glue",
    "model": "the model name as the run was given it (alias, hub id or path)",
    "variant": "the variant's name (full, skip, random, ..., custom)",
    "spec": "the variant spec text (skip:n=8)",
    "plan": "the plan text", "plan_hash": "the plan's hash",
    "N": "the variant's N (layers 0..N and T-N..T-1 kept); empty for variants without one",
    "k": "looped_parallel's iteration count",
    "i": "skip_one/switch's layer; duplicate's block start",
    "j": "duplicate's block end (exclusive: the block is i..j-1)",
    "times": "duplicate's run count of the block",
    "permutation_seed": "the random variant's permutation seed",
    "executions": "layer runs per token",
    "task": "benchmark or GLUE task", "mode": "GLUE: finetune or probe; decoder: eval",
    "train_seed": "GLUE: the training seed; decoder: empty (a frozen model has none)",
    "eval_items": "documents (decoder) or evaluation rows (GLUE) scored",
    "split": "decoder: which documents: all, or the scan / holdout part of a held-out split; GLUE: empty",
    "train_rows": "GLUE: training rows used; decoder: empty",
    "healed": "decoder: scored with a LoRA adapter",
    "model_identity": "the weights as they are (an alias's exact checkpoint and quantization)",
    "created": "when the record was written",
    "key_hash": "the record's key hash (its file name in the store)",
}
LEADING = list(COLUMNS)


def _spec_text(rec: dict) -> str:
    """The variant spec a reader would type (``skip:n=8``), canonical whatever order the record's
    JSON keeps its parameters in; GLUE records carry it as ``label``."""
    if rec.get("label"):
        return rec["label"]
    try:
        return VariantSpec.of(rec.get("variant", ""), **(rec.get("params") or {})).text
    except PlanError:  # a variant this version does not know: show what the record says
        params = rec.get("params") or {}
        return rec.get("variant", "") + (":" + ",".join(f"{k}={v}" for k, v in params.items()) if params else "")


def _plan_text(rec: dict) -> str:
    plan = rec.get("plan")
    return plan.get("text", "") if isinstance(plan, dict) else (rec.get("plan_text") or plan or "")


def _eval_items(rec: dict):
    """Documents or evaluation rows scored: a decoder record's ``n``, the non-train ``sizes`` of a
    GLUE record."""
    if rec.get("track") == "glue":
        sizes = rec.get("sizes") or {}
        counts = [v for split, v in sizes.items() if split != "train" and isinstance(v, int)]
        return sum(counts) if counts else None
    return rec.get("n")


def flatten(rec: dict) -> dict:
    """One record as one flat row (metrics and their standard errors as columns); ``COLUMNS``
    says what each fixed column means."""
    params = rec.get("params") or {}
    glue = rec.get("track") == "glue"
    row = {
        "track": rec.get("track"), "model": rec.get("model_name") or rec.get("model"),
        "model_identity": rec.get("model_identity") or identity(rec.get("model_name") or rec.get("model")),
        "variant": rec.get("variant"), "spec": _spec_text(rec),
        # GLUE records written before the shared grammar keep N/k/i beside params only
        **{col: params.get(name, rec.get(name) if glue else None) for col, name in (("N", "n"), ("k", "k"), ("i", "i"))},
        "j": params.get("j"), "times": params.get("times"),
        "split": None if glue else rec.get("split") or part_of((rec.get("key") or {}).get("subset")),
        "permutation_seed": params.get("seed"),
        "plan": _plan_text(rec), "plan_hash": rec.get("plan_hash"),
        "executions": rec.get("executions"), "task": rec.get("task"), "mode": rec.get("mode") or (None if glue else "eval"),
        "train_seed": rec.get("seed") if glue else None, "eval_items": _eval_items(rec),
        "train_rows": (rec.get("sizes") or {}).get("train") if glue else None,
        "healed": rec.get("healed"), "created": rec.get("created"), "key_hash": rec.get("key_hash"),
    }
    for name, value in (rec.get("metrics") or {}).items():
        row[name if name not in COLUMNS else f"metric_{name}"] = value
    for name, value in (rec.get("stderr") or {}).items():
        row[f"{name}_stderr"] = value
    if "score" in rec:
        row["score"] = rec["score"]
    return row


def records_frame(results=None, track: str | None = None):
    """Every record of a store (or one track) as a DataFrame, one row per record."""
    import pandas as pd

    root = Path(results) if results is not None else DEFAULT_ROOT
    if not root.is_dir():
        raise UserError(f"results folder {root} does not exist")
    rows = [flatten(r) for r in ResultsStore(root).records(track)]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    first = [c for c in LEADING if c in frame.columns]
    return frame[first + sorted(c for c in frame.columns if c not in first)]


def add_subparsers(sub) -> None:
    p = sub.add_parser("results", help="work with a results store: export its records as a table")
    cmds = p.add_subparsers(dest="results_command", metavar="ACTION", required=True)
    e = cmds.add_parser("export", help="every record as one row (CSV, JSON Lines or Parquet)",
                        description="Write every record of a results store as a table: one row per record, with "
                                    "its variant spec, plan, task and each metric with its standard error.")
    add_results(e)
    e.add_argument("--track", choices=["decoder", "glue"], default=None, help="only this track (default: both)")
    e.add_argument("--out", required=True, help="output file; its suffix picks the format: .csv, .jsonl or .parquet")
    e.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> int:
    out = output_file(args.out, "--out")
    fmt = out.suffix.lstrip(".")
    if fmt not in FORMATS:
        raise UserError(f"--out {out}: the suffix picks the format, one of .{', .'.join(FORMATS)}")
    frame = records_frame(args.results, args.track)
    if fmt == "csv":
        atomic_write_text(out, frame.to_csv(index=False))
    elif fmt == "jsonl":
        atomic_write_text(out, "".join(json.dumps(r, default=str) + "\n" for r in frame.to_dict("records")))
    else:
        import io

        buf = io.BytesIO()
        frame.to_parquet(buf, index=False)
        atomic_write_bytes(out, buf.getvalue())
    print(f"wrote {len(frame)} records to {out}")
    return 0
