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

from test_report_fixtures import write_glue_store, write_similarity

from glue_painters.report import build_report
from glue_painters.report.browser import check_page, find_chromium

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
