"""The found plans re-estimated on held-out text: ``painters search run --heldout-text``.

Why: a search evaluates hundreds of plans on one calibration set and keeps the best; that plan's
calibration loss is biased low (the winner's curse), most of all for a growing search, whose
duplications usually move the loss by less than the calibration set's noise. Text the search never
saw gives an unbiased figure. What is reported, per found plan: its calibration loss and
difference to the full model (the figure the search picked it by) beside its held-out loss and
held-out difference to the full model, with a paired interval over held-out documents.

The interval: each held-out document's summed next-token NLL under the plan and under the full
model (one forward per document, so the two are paired document by document); the difference of
the token-weighted mean losses, ``sum_d (nll_plan - nll_full) / sum_d tokens_d``, resampled over
documents, basic bootstrap (``stats.effect_interval`` with one component), Bonferroni-adjusted
over the distinct plans re-estimated (their verdicts are read together, so their intervals hold
together). Verdict (``stats.verdict``, claimed direction: the plan lowers the held-out loss):
supported, contradicted or inconclusive.

Held-out text only: the held-out set is refused when it is the calibration set or shares any
tokenized text with it (``load_heldout``), and the re-estimate reads nothing but its documents.
"""

from __future__ import annotations

import numpy as np

from glue_painters.errors import UserError


def add_heldout_options(p) -> None:
    """``--heldout-text`` and ``--heldout-docs`` (the same forms as the verdict's)."""
    p.add_argument("--heldout-text", default=None,
                   help="re-estimate every found plan (and the full model) on this text, same forms as --text "
                        "(e.g. wikitext2:test): text the search never saw, so the calibration figure's winner's "
                        "curse shows; refused if it shares any text with the calibration set")
    p.add_argument("--heldout-docs", type=int, default=16, help="texts of --heldout-text to use (default 16)")


def _rows(calibration) -> list[tuple[int, ...]]:
    """Each document's real token ids (right-padded rows, so the first ``mask.sum()`` ids)."""
    out = []
    for batch in calibration.batches:
        for ids, mask in zip(batch["input_ids"].tolist(), batch["attention_mask"].tolist()):
            out.append(tuple(ids[:sum(mask)]))
    return out


def load_heldout(args, tok, calib):
    """The ``--heldout-text`` set, tokenized as the calibration set is; refused when it shares a
    document with the calibration set (then it would not be held out)."""
    from glue_painters.scores import load_calibration

    held = load_calibration(tok, args.heldout_text, args.heldout_docs, args.max_length, args.batch_size,
                            args.data_dir)
    shared = set(_rows(held)) & set(_rows(calib))
    if held.fingerprint == calib.fingerprint or shared:
        raise UserError(f"--heldout-text {args.heldout_text} shares {len(shared)} of its {held.n_docs} texts with the "
                        f"calibration set; name text the search did not see (e.g. wikitext2:test)")
    return held


def per_document(held) -> list:
    """One ``Calibration`` per held-out document with a predicted token (so their losses pair)."""
    from glue_painters.scores import Calibration

    out = []
    for d, row in enumerate(_rows(held)):
        if len(row) >= 2:
            import torch

            ids = torch.tensor([row])
            out.append(Calibration([{"input_ids": ids, "attention_mask": torch.ones_like(ids)}], 1, len(row),
                                   len(row) - 1, f"{held.source}#{d}", f"{held.fingerprint}#{d}"))
    return out


def document_nll(model, held, plans, model_id: str = "") -> tuple[np.ndarray, np.ndarray]:
    """``(nll, tokens)``: summed NLL per plan and held-out document, shape (plans, docs), and the
    predicted tokens per document; the plans of one document share their prefixes."""
    from glue_painters.scores import CalibrationLoss

    docs = per_document(held)
    nll = np.zeros((len(plans), len(docs)))
    for d, doc in enumerate(docs):
        losses = CalibrationLoss(model, doc, model_id=model_id, progress=False).many(plans)
        nll[:, d] = np.asarray(losses) * doc.n_predicted
    return nll, np.array([doc.n_predicted for doc in docs], dtype=float)


def reestimate(nll: np.ndarray, tokens: np.ndarray, texts: list[str], full: str, *, level: float = 0.95,
               seed: str = "") -> dict[str, dict]:
    """Per plan text: held-out ``loss`` and, for every plan but ``full``, ``difference`` (plan -
    full) with its ``low``/``high`` ends and ``verdict``. See the module docstring for the rule."""
    from glue_painters import stats

    f = texts.index(full)
    others = [k for k, t in enumerate(texts) if t != full]
    adjusted = stats.bonferroni(level, len(others))
    count = stats.resamples_for(adjusted)
    weights = stats.resample_weights(stats.generator("heldout", seed, tuple(texts), len(tokens)), [len(tokens)], count)
    out = {t: {"loss": float(nll[k].sum() / tokens.sum())} for k, t in enumerate(texts)}
    for k in others:
        diff = nll[k] - nll[f]
        est = float(diff.sum() / tokens.sum())
        draws = (weights @ diff) / (weights @ tokens)
        iv = stats.effect_interval(np.array([est]), draws[:, None], adjusted, len(tokens))
        out[texts[k]].update(difference=est, low=iv.low, high=iv.high, level=adjusted,
                             verdict=stats.verdict(iv, claimed_sign=-1))
    return out


def report(found: dict, full_loss: float, model, held, model_id: str, full_text: str) -> dict:
    """Re-estimate ``found`` ({budget: Found}) and the full model on ``held``; print the table of
    calibration vs held-out differences; return what a summary records."""
    from glue_painters.plans import Plan

    texts = list(dict.fromkeys([full_text] + [f.plan for f in found.values()]))
    nll, tokens = document_nll(model, held, [Plan.parse(t) for t in texts], model_id)
    est = reestimate(nll, tokens, texts, full_text, seed=held.fingerprint)
    print(f"held-out re-estimate on {held.source} ({len(tokens)} texts, {int(tokens.sum())} predicted tokens; the "
          f"search never saw them): difference to full in mean loss, held-out interval basic bootstrap over texts, "
          f"{est[texts[-1]].get('level', 0.95):.2%} (Bonferroni over {len(texts) - 1} plans)")
    print(f"{'budget':>7} {'method':>12} {'calib d':>9} {'held loss':>9} {'held d':>9} {'interval':>21} "
          f"{'verdict':>12}  plan")
    print(f"{'':>7} {'full':>12} {0:9.4f} {est[full_text]['loss']:9.4f} {0:9.4f} {'':>21} {'':>12}  {full_text}")
    rows = []
    for b in sorted(found):
        f = found[b]
        e = est[f.plan]
        row = dict(budget=b, method=f.method, plan=f.plan, calibration_loss=f.value,
                   calibration_difference=f.value - full_loss, heldout_loss=e["loss"])
        if f.plan == full_text:
            print(f"{b:7g} {f.method:>12} {0:9.4f} {e['loss']:9.4f} {0:9.4f} {'(the full model)':>21} {'':>12}  "
                  f"{f.plan}")
        else:
            row.update(heldout_difference=e["difference"], low=e["low"], high=e["high"], level=e["level"],
                       verdict=e["verdict"])
            print(f"{b:7g} {f.method:>12} {f.value - full_loss:9.4f} {e['loss']:9.4f} {e['difference']:9.4f} "
                  f"{'[' + format(e['low'], '+.4f') + ', ' + format(e['high'], '+.4f') + ']':>21} "
                  f"{e['verdict']:>12}  {f.plan}")
        rows.append(row)
    return {"heldout": held.describe(), "full_heldout_loss": est[full_text]["loss"], "rows": rows}
