"""From a name to a ``ModelSource``: where the weights are and the fingerprint results keys use.

Why separate from loading: resolving reads no weights into memory (it hashes files, cached), so
``painters models --info`` and results keys can know *which* weights a name means without paying
for a load.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

from ..cachedir import clean_stale_once
from ..errors import UserError
from ..fingerprints import file_sha256, folder_fingerprint
from .aliases import ALIASES, Alias, did_you_mean

SOURCES = ("alias", "path", "gguf", "hub")


@dataclass(frozen=True)
class ModelSource:
    """Where a model's weights come from, and a fingerprint that changes whenever they do.

    ``source``: "alias" | "path" (a local HF folder) | "gguf" (a local .gguf) | "hub".
    ``path``: a local folder (the one holding the GGUF when ``gguf_file`` is set) or the hub id.
    ``fingerprint`` goes into results keys: ``sha256:<hex>`` of the local files (a GGUF alone, or
    a folder's config, tokenizer and weight files), or ``hub:<id>@<commit or revision>``.
    """

    name: str
    source: str
    path: str
    gguf_file: str | None
    fingerprint: str
    alias: str | None = None
    revision: str | None = None

    @property
    def gguf_path(self) -> Path | None:
        return Path(self.path) / self.gguf_file if self.gguf_file else None


# A hub id: "name" or "owner/name", word characters, dots and dashes (no "..", no leading dot).
_HUB_ID = re.compile(r"(?!\.)[\w.-]{1,96}(/(?!\.)[\w.-]{1,96})?")


def _looks_like_hub_id(name: str) -> bool:
    return bool(_HUB_ID.fullmatch(name)) and ".." not in name and not name.endswith(".gguf")


def _hub_fingerprint(repo_id: str, revision: str | None) -> str:
    """``hub:<id>@<commit>`` when the HF cache already holds the snapshot, else ``@<revision>``.

    A branch name like "main" moves; ``load_model`` replaces it with the commit it actually loaded.
    """
    ref = revision or "main"
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(repo_id, "config.json", revision=ref)
        if isinstance(hit, str):
            ref = Path(hit).parent.name  # .../snapshots/<commit>/config.json
    except Exception:  # noqa: BLE001 - the fingerprint must never fail because of the HF cache
        pass
    return f"hub:{repo_id}@{ref}"


def _local_source(name: str, path: Path) -> ModelSource:
    """A .gguf file, a folder with config.json, or a folder holding exactly one .gguf."""
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise UserError(f"model '{name}': expected a model folder or a .gguf file, got {path}")
        return ModelSource(name, "gguf", str(path.parent.resolve()), path.name, "sha256:" + file_sha256(path))
    if (path / "config.json").is_file():
        return ModelSource(name, "path", str(path.resolve()), None, folder_fingerprint(path))
    ggufs = sorted(path.glob("*.gguf"))
    if len(ggufs) == 1:
        return _local_source(name, ggufs[0])
    what = f"several .gguf files ({', '.join(g.name for g in ggufs)}); name one" if ggufs else "no config.json"
    raise UserError(f"model '{name}': folder {path} has {what}")


def _alias_source(alias: Alias) -> ModelSource:
    folder, gguf_file = alias.find()
    local = _local_source(alias.name, folder / gguf_file if gguf_file else folder)
    return dataclasses.replace(local, source="alias", alias=alias.name)


def resolve_model(name_or_path: str | Path, revision: str | None = None) -> ModelSource:
    """Turn an alias, a local path or a hub id into a ``ModelSource``.

    Aliases win over same-named folders (so "minilm" always means the embedded model). The first
    resolve of a split alias (mpnet, qwen2.5-1.5b, gemma3-270m) assembles it in the cache, and the
    first fingerprint of a local file hashes it; both are reused afterwards.
    """
    clean_stale_once()  # what a killed conversion left goes on the first resolve of a run
    name = str(name_or_path)
    if name in ALIASES:
        return _alias_source(ALIASES[name])
    path = Path(name).expanduser()
    if path.exists():
        return _local_source(name, path)
    if _looks_like_hub_id(name):
        return ModelSource(name, "hub", name, None, _hub_fingerprint(name, revision), revision=revision)
    raise UserError(f"model '{name}': no such file or folder, and not an alias ({', '.join(ALIASES)}) "
                    f"or a hub id{did_you_mean(name)}")
