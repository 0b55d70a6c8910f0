"""What every ``painters search`` command shares: calibration options, model and calibration
loading, the loss cache's folder, the scores JSON, the cost option.

Every command reads the same calibration options, so all of them share one calibration set (its
token fingerprint names the folder where the loss cache and the run files live:
``<out>/<model>/<fingerprint>/``, by default under ``results/search_state``, two levels below
the results store's track folders so its readers never mistake them for records). A track that
adds a search command (the decoder track's ``verdict``) builds on these, so its command reads the
same options and finds the same cache.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from painters.options import add_data_dir, add_device, add_model
from glue_painters.errors import UserError


def calibration_options(p: argparse.ArgumentParser) -> None:
    """The options that choose the model, calibration set and state folder (every search command)."""
    g = p.add_argument_group("calibration set (never an evaluation split)")
    g.add_argument("--text", default=None,
                   help="calibration text: a .txt (blank-line separated paragraphs) or .jsonl ('text' field) file, "
                        "or a benchmark train split as TASK:train (arc_easy:train, arc_challenge:train, gsm8k:train); "
                        "default: WikiText-2 train under the data dir if present, else the bundled WikiText-2 sample")
    g.add_argument("--max-docs", type=int, default=8, help="use the first this many texts (default 8)")
    g.add_argument("--max-length", type=int, default=64, help="truncate each text to this many tokens (default 64)")
    g.add_argument("--batch-size", type=int, default=8, help="texts per forward pass (default 8)")
    add_data_dir(g)
    add_model(p)
    add_device(p)
    p.add_argument("--out", default="results/search_state",
                   help="folder for the loss cache and run files (default results/search_state)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")


def budget_list(text: str) -> list[float]:
    """argparse type for --budget (its error is argparse's one-line usage error, exit 2)."""
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"comma-separated numbers like 20,24,26, not '{text}'") from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"positive numbers, not '{text}'")
    return values


def model_name(args) -> str:
    return Path(args.model).name


def setup(args):
    """Load the model and calibration set; the loss objective and its cache folder."""
    import torch

    from glue_painters.models import load_model, model_info, source_of
    from glue_painters.scores import CalibrationLoss, load_calibration

    if model_info(args.model)["architecture"] in ("bert", "roberta", "mpnet"):
        raise UserError(f"model '{args.model}' is an encoder: the calibration loss needs a causal LM")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, tok = load_model(args.model, device=device)
    tok.padding_side = "right"
    calib = load_calibration(tok, args.text, args.max_docs, args.max_length, args.batch_size, args.data_dir)
    fingerprint = source_of(model).fingerprint
    objective = CalibrationLoss(model, calib, model_id=fingerprint, progress=not args.no_progress)
    folder = Path(args.out) / model_name(args) / calib.fingerprint
    return model, tok, calib, objective, folder


def memo_for(objective, folder: Path):
    """The objective's cache in ``folder``, refusing a cache of another objective."""
    from glue_painters.search.state import Memo

    return Memo(objective, folder / "cache.json", identity=objective.describe())


def scores_path(args) -> Path:
    from glue_painters.outputs import reports_dir

    return Path(getattr(args, "json_out", None) or reports_dir() / f"search_scores_{model_name(args)}.json")


def load_scores(args, calib_fp: str):
    """The ``--scores`` JSON (or the default one, if it exists) as ``LayerScores``; None without one."""
    from glue_painters.scores import LayerScores

    path = Path(args.scores) if args.scores else scores_path(args)
    if not path.exists():
        if args.scores:
            raise UserError(f"--scores {path} not found")
        return None
    obj = json.loads(path.read_text())
    fp = obj.get("calibration", {}).get("fingerprint")
    if fp != calib_fp:
        print(f"note: {path} was computed on another calibration set ({fp}); its rankings are used as given")
    return LayerScores.from_json(obj)


def cost_from_args(args, name: str):
    """``--cost``: the cost function and the name its run files record."""
    from glue_painters.search.cost import LatencyCost, executions, latency_table

    if args.cost == "executions":
        return executions, "executions"
    if args.cost == "latency":
        path = latency_table(name)
        if path is None:
            raise UserError(f"--cost latency: no reports/latency_{name}.json (or latency_*.json for this "
                            f"model) exists yet; use --cost executions or latency:FILE")
        return LatencyCost(path), f"latency:{path}"
    if args.cost.startswith("latency:"):
        return LatencyCost(args.cost.split(":", 1)[1]), args.cost
    raise UserError(f"--cost must be executions, latency or latency:FILE, got '{args.cost}'")


def argv_tail(args) -> str:
    """The command line after ``painters search COMMAND``, for the summaries to record."""
    return " ".join(sys.argv[3:]) if len(sys.argv) > 3 else ""
