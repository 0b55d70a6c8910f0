"""The report's sections beyond the paper's: the relayering scan and the per-document paths.

Both are read from the store's decoder records by units of one set of documents
(``per_document.py``), not from the report's groups: a group keeps one subset per task, and the
scan's held-out records are a subset of their own. A section appears when the store has what it
needs (a duplicate record for the scan, a task scored right/wrong per document for the paths);
otherwise the report's "not drawn" list says why, as for a figure.
"""

from __future__ import annotations

from painters.report.paths import DEFAULT_COST, all_paths
from painters.report.paths import section as paths_section
from painters.report.per_document import load_units
from painters.report.relayer import scans_of
from painters.report.relayer_figure import section as relayer_section


def extra_sections(results, track: str = "all", models=None, tasks=None, cost: float = DEFAULT_COST):
    """(sections, missing): the sections this store supports, and (id, who, why) for the others."""
    if track not in ("decoder", "all"):
        return [], []
    units = load_units(results, models, tasks)
    if not units:
        return [], []
    sections, missing = [], []
    scans = scans_of(units)
    if scans:
        made, lost = relayer_section(scans)
        sections.append(made)
        missing += lost
    paths, skipped = all_paths(units, cost)
    if paths:
        sections.append(paths_section(paths, skipped))
    else:
        missing.append(("paths", "decoder", "no task is scored right/wrong per document (0/1 per-document scores of "
                                            "its primary metric) in these records: " +
                        "; ".join(f"{who}: {why}" for who, why in skipped[:3]) + (" …" if len(skipped) > 3 else "")))
    return sections, missing
