"""Can the Hugging Face hub be reached from here? Answered within about two seconds, once a process.

Why: ``huggingface_hub`` retries a failed connection five times with growing pauses, so on a machine
without a network an unknown model name or a missing GLUE file waited 25-49 s before its one-line
error. Asking first (the offline variables, else one TCP connection to the hub or to the proxy that
would carry it, with a short timeout) lets those errors come at once, and lets a model already in
the local Hugging Face cache load offline without the wait. With a network the answer is "reachable"
and everything goes the normal way.
"""

from __future__ import annotations

import functools
import os
import socket
import threading
import urllib.request
from urllib.parse import urlsplit

OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
TIMEOUT_S = 2.0


def offline_variable() -> str | None:
    """The first offline variable set to a true value (``HF_HUB_OFFLINE=1`` ...), or None."""
    return next((v for v in OFFLINE_VARS if os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")), None)


def _endpoint() -> tuple[str, int]:
    """(host, port) a hub request first connects to: ``HF_ENDPOINT``'s, or its proxy's."""
    url = urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    proxy = urllib.request.getproxies().get(url.scheme) or urllib.request.getproxies().get("all")
    if proxy and not urllib.request.proxy_bypass(host):
        p = urlsplit(proxy if "://" in proxy else "http://" + proxy)
        host, port = p.hostname or host, p.port or 8080
    return host, port


@functools.lru_cache(maxsize=None)
def _probe(host: str, port: int, timeout: float) -> str | None:
    """None if a TCP connection opens within ``timeout``, else why not. In a thread, because the
    name lookup inside ``create_connection`` has no timeout of its own."""
    outcome: list[str | None] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome.append(None)
        except OSError as e:
            outcome.append(e.strerror or str(e) or type(e).__name__)

    worker = threading.Thread(target=connect, daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    if not outcome:
        return f"no connection to {host}:{port} within {timeout:g} s"
    return None if outcome[0] is None else f"no connection to {host}:{port}: {outcome[0]}"


def hub_unavailable() -> str | None:
    """Why the hub must not be asked (an offline variable, or no connection), or None when it may.

    The connection check runs once per process and endpoint: a sweep asks many times."""
    var = offline_variable()
    if var is not None:
        return f"{var} is set"
    host, port = _endpoint()
    return _probe(host, port, TIMEOUT_S)


def in_hf_cache(repo_id: str, revision: str | None = None) -> bool:
    """Whether the local Hugging Face cache holds this model's config (so it loads offline)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, "config.json", revision=revision or "main"), str)
    except Exception:  # noqa: BLE001 - a malformed id or cache is simply "not cached"
        return False
