"""The core subcommands: ``plan``, ``similarity``, ``models``, ``export``.

Kept apart from ``cli.py`` so that file stays a table of contents; each function here only turns
arguments into calls of the library (``variants``, ``rewire``, ``similarity``, ``models``).
"""

from __future__ import annotations

import json
from pathlib import Path

from glue_painters.outputs import output_file, output_folder, reports_dir
from painters.options import add_device, add_model
from glue_painters.errors import UserError

PLAN_HELP = (
    "a variant spec (full, skip:n=8, middle_repeat:n=8, reverse:n=8, random:n=8,seed=1, parallel:n=8, "
    "looped_parallel:n=8,k=3, skip_one:i=5, switch:i=5) or plan text such as 0-7,[8-23]x3,24-31 "
    "(a-b: layers a..b in order, b<a runs backwards; [..]: a parallel group whose outputs are averaged; "
    "xK: run the step K times)"
)


def add_subparsers(sub) -> None:
    p = sub.add_parser("plan", help="print a plan: its text, hash, cost and the layers it runs",
                       description="Build a plan from a variant or plan text and print it. No weights are loaded "
                                   "when --layers is given.")
    p.add_argument("spec", nargs="?", default="full", help=PLAN_HELP)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--layers", type=int, metavar="T", help="the model's number of layers")
    src.add_argument("--model", help="a model alias, hub id or path; its layer count is used")
    p.add_argument("--json", action="store_true", help="print the plan as JSON instead of text")
    p.add_argument("--variants", action="store_true",
                   help="list every variant's plan for this T at the given --n instead of one plan")
    p.add_argument("--n", type=int, default=None, help="N for --variants (default: a quarter of T)")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("similarity", help="hidden-state cosine similarity between layers (Fig. 3): JSON + PNG",
                       description="Mean cosine similarity between the hidden states at every pair of layer "
                                   "boundaries, padding masked, over a text; writes OUT.json and OUT.png.")
    add_model(p)
    p.add_argument("--plan", default="full", help=PLAN_HELP + " (default: full)")
    p.add_argument("--text", default=None,
                   help="a .txt file (blank-line separated paragraphs) or .jsonl with a 'text'/'sentence' field "
                        "(default: the bundled WikiText-2 sample)")
    p.add_argument("--max-docs", type=int, default=64, help="use at most this many paragraphs (default 64)")
    p.add_argument("--max-length", type=int, default=128, help="truncate each paragraph to this many tokens (default 128)")
    p.add_argument("--batch-size", type=int, default=8, help="paragraphs per forward pass (default 8)")
    p.add_argument("--out", default=None, help="output path without suffix (default: <reports>/similarity_<model>, "
                                                "<reports> = $PAINTERS_REPORTS, else results/reports)")
    add_device(p)
    p.set_defaults(func=cmd_similarity)

    p = sub.add_parser("models", help="list the model aliases, where their weights come from, and what is installed")
    p.add_argument("--info", metavar="MODEL", default=None, help="load one model and print its architecture facts")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("export", help="save a skip/reorder/repeat plan as an ordinary, shallower HF checkpoint",
                       description="Materialize a sequential plan (no parallel groups) into a normal model folder "
                                   "that reloads with from_pretrained and gives the rewired model's logits.")
    p.add_argument("--model", default=None, help="model alias, hub id or local path (required unless --adapter)")
    p.add_argument("--plan", default=None, help=PLAN_HELP + " (required unless --adapter)")
    p.add_argument("--adapter", default=None, metavar="DIR",
                   help="a LoRA adapter folder from `painters heal`: merged into the weights first (the export is "
                        "the healed model); --model and --plan default to the ones the adapter records")
    p.add_argument("--out", required=True, help="the folder to write (must not exist or be empty)")
    p.add_argument("--kind", default="causal-lm", choices=["causal-lm", "encoder"], help="which head to load (default causal-lm)")
    p.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"],
                   help="save the weights in this dtype (default: as loaded, float32 on CPU)")
    p.set_defaults(func=cmd_export)


def _device(name: str | None) -> str:
    import torch

    return name or ("cuda" if torch.cuda.is_available() else "cpu")


def _kind_of(model_name: str) -> str:
    from glue_painters.models import model_kind

    return model_kind(model_name)


def cmd_plan(args) -> int:
    from glue_painters import variants

    if args.layers is not None:
        if args.layers < 1:  # else a variant or plan text fails later with a message about plans
            raise UserError(f"--layers is the model's number of layers, at least 1; got {args.layers}")
        T = args.layers
    else:
        from glue_painters.models import model_info

        T = model_info(args.model)["num_layers"]
    if args.variants:
        n = args.n if args.n is not None else max(0, T // 4)
        given = {"n": n, "k": 3, "seed": 0}
        rows = [(name, variants.build(name, T, **{k: v for k, v in given.items() if k in wanted}))
                for name, (_, wanted) in variants.VARIANTS.items() if "i" not in wanted]
        print(f"T={T}, N={n}: kept 0..{n} and {T - n}..{T - 1}, middle {n + 1}..{T - n - 1}")
        for name, plan in rows:
            print(f"  {name:16s} {plan.text:40s} executions={plan.executions:3d} depth={plan.depth:3d}")
        return 0
    plan = variants.resolve(args.spec, T)
    if args.json:
        print(json.dumps(dict(plan.to_json(), hash=plan.hash, layers=T), indent=1))
        return 0
    print(f"plan:        {plan.text}")
    print(f"hash:        {plan.hash}")
    print(f"model:       {T} layers (0-{T - 1})")
    print(f"executions:  {plan.executions} layer runs per token ({plan.executions / T:.2f}x the full model)")
    print(f"depth:       {plan.depth} sequential steps")
    unused = sorted(set(range(T)) - plan.layers_used())
    print(f"unused:      {','.join(map(str, unused)) if unused else '-'}")
    return 0


def cmd_similarity(args) -> int:
    from glue_painters import similarity, variants
    from glue_painters.models import load_model

    from glue_painters.models import model_info

    docs = similarity.read_documents(args.text, args.max_docs)
    out = Path(args.out or reports_dir() / f"similarity_{Path(args.model).name}")
    output_file(out.with_suffix(".json"), "--out")
    plan = variants.resolve(args.plan, model_info(args.model)["num_layers"])  # checked before any weights load
    model, tok = load_model(args.model, kind=_kind_of(args.model), device=_device(args.device))
    sim = similarity.layer_similarity(model, tok, docs, plan, max_length=args.max_length, batch_size=args.batch_size)
    title = f"{args.model}: hidden-state cosine similarity, plan {plan.text if len(plan.text) < 30 else plan.hash}"
    json_path, png_path = similarity.save(sim, out, title=title, model=args.model,
                                          text=str(args.text or "bundled:wikitext2_sample.txt"))
    groups = similarity.segments(sim.matrix)
    print(f"{sim.size}x{sim.size} boundaries over {sim.n_tokens} tokens of {sim.n_docs} paragraphs")
    print("most similar contiguous groups of boundaries (0 = embeddings): "
          + ", ".join(f"{a}-{b}" for a, b in groups))
    print(f"wrote {json_path} and {png_path}")
    return 0


def cmd_models(args) -> int:
    from glue_painters import models

    if args.info:
        print(json.dumps(models.model_info(args.info), indent=1))
        return 0
    for name, alias in models.ALIASES.items():
        print(models.describe_alias(name))
    return 0


def cmd_export(args) -> int:
    from glue_painters import variants
    from glue_painters.models import load_model
    from glue_painters.rewire import export_plan

    from glue_painters import adapters
    from glue_painters.models import model_info, resolve_model
    from glue_painters.rewire import RewireError

    out = output_folder(args.out, "--out", empty=True)
    adapter, model_name, spec = adapters.for_export(args.adapter, args.model, args.plan)
    plan = variants.resolve(spec, model_info(model_name)["num_layers"])  # checked before any weights load
    if not plan.is_sequential:
        raise RewireError(f"plan '{plan.text}' has a parallel group: only skip/reorder/repeat plans can be exported")
    if adapter:
        adapters.check_plan(adapter, plan)
        adapters.check_base(adapter, model_name, resolve_model(model_name).fingerprint)
    model, tok = load_model(model_name, kind=args.kind)
    if adapter:
        model = adapters.merge_adapter(model, adapter)
    export_plan(model, plan, out, tokenizer=tok, dtype=args.dtype)
    print(f"wrote {out}: {plan.executions} layers running plan {plan.text}, with its tokenizer"
          + (f", LoRA adapter {args.adapter} merged" if adapter else "")
          + (f", weights in {args.dtype}" if args.dtype else ""))
    return 0
