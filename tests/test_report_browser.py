"""The HTML report in a real headless Chromium: it opens, every image decodes (naturalWidth > 0),
no console error, and a screenshot comes back.

Why a real browser: a data URI with a broken base64 body, a stray external reference or a
script error all pass an HTML parser and fail only where a reader looks. The page check itself is
tested on a page made to fail, so a check that always passes cannot hide here.

Skipped, with the reason, where no Chromium is installed (Debian: ``apt-get install -y chromium``).
"""

from __future__ import annotations

import struct

import pytest

from test_report_fixtures import write_decoder_store, write_glue_store, write_similarity

from painters.report import build_report
from painters.report.browser import check_page, find_chromium
from painters.report.figures import DPI, median_band_rgb

pytestmark = pytest.mark.skipif(find_chromium() is None,
                                reason="no chromium/google-chrome on PATH (Debian: apt-get install -y chromium)")


def test_report_renders_in_chromium(tmp_path):
    results, out = tmp_path / "results", tmp_path / "out"
    write_glue_store(results, modes=("probe",), seeds=(0, 1), variants=("skip", "random"), tasks=("rte", "wnli"))
    write_similarity(out)
    report = build_report(results, out)
    check = check_page(report.html_path)
    assert check.console_errors == []
    assert check.broken == []
    assert check.images == len(report.figures) >= 4 and min(check.widths) > 100
    assert check.tables >= 2 and check.title.startswith("Transformer Layers as Painters")
    assert check.screenshot[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", check.screenshot[16:24])
    assert width >= 800 and height >= 800
    (tmp_path / "screenshot.png").write_bytes(check.screenshot)


def test_the_check_sees_broken_images_and_console_errors(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><html><head><title>bad</title></head><body>"
                    "<img alt='broken' src='data:image/png;base64,AAAA'>"
                    "<script>console.error('boom')</script></body></html>")
    check = check_page(page)
    assert check.broken == ["broken"] and any("boom" in e for e in check.console_errors)
    assert not check.ok


def test_the_figures_show_95_percent_bands_where_records_have_per_document_scores(tmp_path):
    """Figs. 4-9 draw the normalized median's band in a colour of its own; the browser counts
    that colour's pixels in each decoded image: thousands with per-document scores, none in the
    report of a store written before records kept them. Fig. 2 spans the page."""
    counts = {}
    for name, per_item in (("new", True), ("old", False)):
        write_decoder_store(tmp_path / name, tasks=("lambada_openai", "arc_easy", "hellaswag"), per_item=per_item)
        report = build_report(tmp_path / name, tmp_path / f"out_{name}")
        check = check_page(report.html_path, colour=median_band_rgb())
        assert check.ok, (check.broken, check.console_errors)
        counts[name] = {alt.split(" over N")[0]: n for alt, n in check.colour_pixels.items() if " over N" in alt}
    assert set(counts["new"]) == {"skip", "middle_repeat", "reverse", "random", "parallel", "looped_parallel (k=3)"}
    assert min(counts["new"].values()) > 2000 and max(counts["old"].values()) < 50
    assert DPI >= 200
    html = report.html_path.read_text(encoding="utf-8")
    assert "<figure class='wide'><img alt='Fig. 2" in html
