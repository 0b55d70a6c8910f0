"""Where the benchmark data is: the one resolver both tracks and the core use.

Why one place: every command takes ``--data-dir``, and a user sets ``$PAINTERS_DATA`` once; if each
track resolved it alone they would drift (they had: three copies of the same lines). First match
wins:

1. an explicit folder (``--data-dir`` / ``data_dir=``);
2. ``$PAINTERS_DATA``;
3. ``../shared/data`` next to the repository checkout.

The folder is laid out like ``shared/data``: a decoder benchmark's files at ``<folder>/<task>/``,
the GLUE track's under ``<folder>/glue/``. ``track_dir`` finds a track's sub-folder with the rules
the GLUE track has always used (an explicit folder may also *be* the track's folder).
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "PAINTERS_DATA"


def checkout_data_dir() -> Path:
    """``<checkout>/../shared/data``: where the project keeps its benchmark copies."""
    return Path(__file__).resolve().parents[2] / "shared" / "data"


def data_root(data_dir: str | os.PathLike | None = None) -> Path:
    """The data folder: ``data_dir``, else ``$PAINTERS_DATA``, else ``checkout_data_dir()``."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    return checkout_data_dir()


def track_dir(track: str, data_dir: str | os.PathLike | None = None, *, marker: str | None = None) -> Path:
    """A track's data folder (e.g. ``track="glue"``), following where each source points:

    - an explicit ``data_dir``: its ``<track>/`` sub-folder when there is one, unless ``data_dir``
      already is the track's folder (it holds ``marker``, e.g. GLUE's ``cola``); else ``data_dir``;
    - ``$PAINTERS_DATA``: its ``<track>/`` sub-folder when there is one, else the folder itself;
    - otherwise ``../shared/data/<track>`` next to the checkout (whether or not it exists, so the
      error about a missing file names the expected place), resolved.
    """
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        is_track_folder = marker is not None and (root / marker).exists()
        return root / track if not is_track_folder and (root / track).is_dir() else root
    env = os.environ.get(DATA_ENV)
    if env:
        root = Path(env).expanduser()
        return root / track if (root / track).is_dir() else root
    return (checkout_data_dir() / track).resolve()
