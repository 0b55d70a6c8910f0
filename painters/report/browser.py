"""Open a report in a real headless Chromium and say whether it renders: every image decoded
(``naturalWidth > 0``), no console error or uncaught exception, and a screenshot.

Why the DevTools protocol over ``--remote-debugging-pipe`` rather than ``--dump-dom``: the DOM
dump cannot tell a decoded image from a broken one, nor show console errors; the protocol can, and
the pipe form needs no port, no websocket library and nothing but the standard library. Messages
are JSON objects separated by NUL bytes: commands on the browser's fd 3, replies and events on its
fd 4.

Used by ``tests/test_report_browser.py`` and ``benchmarks/report_browser.py``. Debian:
``apt-get install -y chromium``.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    env = os.environ.get("CHROMIUM")
    if env and shutil.which(env):
        return shutil.which(env)
    return next((shutil.which(c) for c in CANDIDATES if shutil.which(c)), None)


@dataclass
class PageCheck:
    images: int
    broken: list[str]  # alt text of images with naturalWidth 0
    widths: list[int]
    console_errors: list[str]
    title: str
    tables: int
    screenshot: bytes = field(repr=False, default=b"")
    seconds: float = 0.0
    colour_pixels: dict[str, int] = field(default_factory=dict)  # image alt -> pixels of ``colour``

    @property
    def ok(self) -> bool:
        return self.images > 0 and not self.broken and not self.console_errors


class _Pipe:
    def __init__(self, proc, to_browser: int, from_browser: int):
        self.proc, self.w, self.r = proc, to_browser, from_browser
        self.buf = b""
        self.next_id = 0
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 20) -> dict:
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            m = self._read(deadline)
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def wait_event(self, method: str, timeout: float = 20) -> dict:
        deadline = time.monotonic() + timeout
        for i, e in enumerate(self.events):
            if e.get("method") == method:
                return self.events.pop(i)
        while True:
            m = self._read(deadline)
            if m.get("method") == method:
                return m
            self.events.append(m)

    def _read(self, deadline: float) -> dict:
        import select

        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from chromium")
            ready, _, _ = select.select([self.r], [], [], left)
            if ready:
                chunk = os.read(self.r, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"chromium exited (status {self.proc.poll()})")
                self.buf += chunk
        raw, _, self.buf = self.buf.partition(b"\0")
        return json.loads(raw)


_CHECK = """(() => { const imgs = [...document.images];
  return JSON.stringify({images: imgs.length, widths: imgs.map(i => i.naturalWidth),
    broken: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt || i.src.slice(0, 60)),
    title: document.title, tables: document.querySelectorAll('table').length}); })()"""


_COLOUR = """(() => { const out = {}; const [R, G, B, T] = %s;
  for (const img of document.images) { const c = document.createElement('canvas');
    c.width = img.naturalWidth; c.height = img.naturalHeight; const x = c.getContext('2d');
    x.drawImage(img, 0, 0); const d = x.getImageData(0, 0, c.width, c.height).data; let n = 0;
    for (let i = 0; i < d.length; i += 4)
      if (Math.abs(d[i] - R) <= T && Math.abs(d[i + 1] - G) <= T && Math.abs(d[i + 2] - B) <= T) n++;
    out[img.alt] = n; }
  return JSON.stringify(out); })()"""


def check_page(path: str | Path, chromium: str | None = None, timeout: float = 25.0, width: int = 1280,
               height: int = 2000, colour: tuple[int, int, int] | None = None, tolerance: int = 3) -> PageCheck:
    """Load ``path`` (a local HTML file) and check it; raises if no Chromium is found. With
    ``colour`` (RGB), also count each image's pixels of that colour as the browser decoded them
    (e.g. the figures' 95% bands, drawn in a colour nothing else uses)."""
    chromium = chromium or find_chromium()
    if chromium is None:
        raise FileNotFoundError("no chromium executable (apt-get install -y chromium)")
    url = Path(path).resolve().as_uri()
    start = time.monotonic()
    to_r, to_w = os.pipe()
    from_r, from_w = os.pipe()
    profile = tempfile.mkdtemp(prefix="painters-chromium-")
    def child_fds():
        # the child's fd 3 reads our commands, its fd 4 writes replies; copy both above 10 first
        # so neither dup2 can overwrite the other's source. dup2 clears close-on-exec on 3 and 4;
        # every other descriptor of ours is non-inheritable (PEP 446) and closes at exec.
        import fcntl

        a, b = fcntl.fcntl(to_r, fcntl.F_DUPFD, 10), fcntl.fcntl(from_w, fcntl.F_DUPFD, 10)
        os.dup2(a, 3)
        os.dup2(b, 4)

    args = [chromium, "--headless=new", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
            "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-dev-shm-usage",
            f"--user-data-dir={profile}", f"--window-size={width},{height}", "about:blank"]
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=child_fds, close_fds=False)
    os.close(to_r)
    os.close(from_w)
    pipe = _Pipe(proc, to_w, from_r)
    try:
        target = pipe.send("Target.createTarget", {"url": "about:blank"}, timeout=timeout)["targetId"]
        session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            pipe.send(f"{domain}.enable", session=session)
        pipe.send("Page.navigate", {"url": url}, session=session)
        pipe.wait_event("Page.loadEventFired", timeout=timeout)
        result = pipe.send("Runtime.evaluate", {"expression": _CHECK, "returnByValue": True}, session=session)
        info = json.loads(result["result"]["value"])
        counts = {}
        if colour is not None:
            expr = _COLOUR % json.dumps([*colour, tolerance])
            counts = json.loads(pipe.send("Runtime.evaluate", {"expression": expr, "returnByValue": True},
                                          session=session, timeout=timeout)["result"]["value"])
        shot = pipe.send("Page.captureScreenshot", {"format": "png"}, session=session, timeout=timeout)
        errors = []
        for e in pipe.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
            elif m == "Runtime.exceptionThrown":
                errors.append(p.get("exceptionDetails", {}).get("text", "exception"))
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                errors.append(p["entry"].get("text", ""))
        return PageCheck(info["images"], info["broken"], info["widths"], errors, info["title"], info["tables"],
                         base64.b64decode(shot["data"]), time.monotonic() - start, counts)
    finally:
        try:
            pipe.send("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        os.close(to_w)
        os.close(from_r)
        shutil.rmtree(profile, ignore_errors=True)
