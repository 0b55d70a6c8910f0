"""Open a report in headless Chromium and print what a reader would see: load time, images
decoded, console errors; save a screenshot. Run by hand after ``painters report``:

    python benchmarks/report_browser.py reports/replication/report.html --screenshot /tmp/report.png

Exit status 1 if an image does not decode or the console shows an error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from painters.report.browser import check_page, find_chromium


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("html", nargs="?", default="reports/replication/report.html")
    ap.add_argument("--screenshot", default=None, help="write the screenshot PNG here")
    args = ap.parse_args()
    if find_chromium() is None:
        print("no chromium on PATH (Debian: apt-get install -y chromium)", file=sys.stderr)
        return 2
    size = Path(args.html).stat().st_size
    c = check_page(args.html)
    print(f"{args.html}: {size / 1e6:.2f} MB, opened and checked in {c.seconds:.1f} s; {c.images} images, "
          f"{len(c.broken)} broken, {c.tables} tables, {len(c.console_errors)} console errors")
    for e in c.console_errors:
        print("  console:", e)
    if args.screenshot:
        Path(args.screenshot).write_bytes(c.screenshot)
        print(f"screenshot: {args.screenshot}")
    return 0 if c.ok else 1


if __name__ == "__main__":
    sys.exit(main())
