"""The upstream releases glue-painters was tested on, and one line saying so when the installed ones
lie outside them.

The core meets transformers' internals (layer call signatures, cache classes), so pyproject.toml
allows transformers only up to the newest release the test suite passed on; its other upstream
packages have lower bounds only (the oldest releases the suite passed on). That dependency list is
the single source of the tested window: read here from the checkout's pyproject.toml when the
package runs from one (an editable install's metadata is a copy taken at install time, stale once
the file changes), else from the installed package's metadata (``importlib.metadata.requires``).

A release outside the window still runs: the rewiring guards refuse what they cannot check
(a layer writing its KV cache around the slot view, a cache API they do not know) rather than
return wrong numbers. ``untested_warning`` gives the one line that says so (``None`` inside the
window); ``painters --version`` (``version_line``) and every sweep (``warn_untested``) print it.
``bash .ci/run --widen`` tests the newest releases and names the line of pyproject.toml to change.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

DIST = "glue-painters"
# the upstream packages whose releases decide results, in the order `painters --version` names them
UPSTREAM = ("transformers", "torch", "peft", "accelerate", "lm_eval")
WIDEN = "bash .ci/run --widen"
_PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _release(version: str):
    """A version as PEP 440 orders it (``packaging.version.Version``; a local label such as
    torch's ``+cpu`` is dropped: 2.13.0+cpu is release 2.13.0)."""
    from packaging.version import Version

    return Version(Version(version).public)


@dataclass(frozen=True)
class Window:
    """One package's tested releases, from its requirement in pyproject.toml."""

    package: str
    specifier: str  # e.g. "<=5.25.0,>=5.5.4"
    oldest: str | None  # from >=, ==, ~= (None: no lower bound)
    newest: str | None  # from <=, == (None: no inclusive upper bound)
    below: str | None = None  # from < (an exclusive upper bound)

    def position(self, version: str) -> str | None:
        """"newer" or "older" when ``version`` lies outside the window, else None."""
        public = _release(version)
        if self.newest is not None and public > _release(self.newest):
            return "newer"
        if self.below is not None and public >= _release(self.below):
            return "newer"
        if self.oldest is not None and public < _release(self.oldest):
            return "older"
        return None

    @property
    def upper(self) -> str | None:
        """The upper bound as text (``5.25.0``; ``< 6`` for an exclusive one), or None."""
        if self.newest is not None:
            return self.newest
        return f"< {self.below}" if self.below is not None else None


def parse_window(requirement: str) -> Window | None:
    """The window of one requirement string (``transformers>=5.5.4,<=5.25.0``, with or without an
    environment marker such as ``; extra == "test"``); None when it names no version bound."""
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        req = Requirement(requirement)
    except InvalidRequirement:
        return None
    oldest = newest = below = None
    for spec in req.specifier:
        op, version = spec.operator, spec.version
        wildcard = version.endswith(".*")
        if op in (">=", ">", "~=", "==", "==="):
            oldest = version.removesuffix(".*")
        if op in ("<=", "==", "===") and not wildcard:
            newest = version
        if op == "<":
            below = version
    if oldest is None and newest is None and below is None:
        return None
    return Window(req.name, ",".join(sorted(str(s) for s in req.specifier)), oldest, newest, below)


def _pyproject_requirements(path: Path) -> list[str] | None:
    """The dependency strings of pyproject.toml (base and optional), or None if it is not this
    project's."""
    text = path.read_text(encoding="utf-8")
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError:
            tomllib = None
    if tomllib is not None:
        project = tomllib.loads(text).get("project", {})
        if _canonical(project.get("name", "")) != DIST:
            return None
        deps = list(project.get("dependencies", []))
        for extra in project.get("optional-dependencies", {}).values():
            deps += extra
        return deps
    # Python 3.10 without tomli: the [project] dependency list and [project.optional-dependencies]
    if not re.search(r'^name\s*=\s*"glue-painters"', text, re.MULTILINE):
        return None
    base = re.search(r"^dependencies\s*=\s*\[(.*?)^\]", text, re.MULTILINE | re.DOTALL)
    extras = re.search(r"^\[project\.optional-dependencies\]\n(.*?)(?=^\[)", text, re.MULTILINE | re.DOTALL)
    blocks = [m.group(1) for m in (base, extras) if m]
    return [r for block in blocks for r in re.findall(r'"([^"]+)"', block)]


def requirements(pyproject: Path | None = _PYPROJECT) -> list[str]:
    """glue-painters' requirement strings: the checkout's pyproject.toml when running from one,
    else the installed metadata; empty when neither is found."""
    if pyproject is not None and pyproject.is_file():
        found = _pyproject_requirements(pyproject)
        if found is not None:
            return found
    try:
        return list(metadata.requires(DIST) or [])
    except metadata.PackageNotFoundError:
        return []


def tested_windows(reqs: Iterable[str] | None = None) -> dict[str, Window]:
    """The tested window of every upstream package (``UPSTREAM``) that has one, by package name."""
    wanted = {_canonical(n): n for n in UPSTREAM}
    out: dict[str, Window] = {}
    for r in requirements() if reqs is None else reqs:
        window = parse_window(r)
        if window is not None and _canonical(window.package) in wanted:
            out[wanted[_canonical(window.package)]] = window
    return out


def installed_version(name: str) -> str | None:
    """The installed release of distribution ``name``, or None."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def untested_warning(windows: Mapping[str, Window] | None = None,
                     version_of: Callable[[str], str | None] | None = None) -> str | None:
    """One line naming every installed upstream release outside the tested window, or None."""
    windows = tested_windows() if windows is None else windows
    version_of = installed_version if version_of is None else version_of
    parts = []
    for name in UPSTREAM:
        window, version = windows.get(name), version_of(name)
        if window is None or version is None:
            continue
        where = window.position(version)
        if where == "newer":
            parts.append(f"{name} {version} is newer than the newest release its tests passed on ({window.upper})")
        elif where == "older":
            parts.append(f"{name} {version} is older than the oldest release its tests passed on ({window.oldest})")
    if not parts:
        return None
    return (f"glue-painters: {'; '.join(parts)}: results are unverified there (the rewiring guards still "
            f"refuse what they cannot check rather than miscompute); `{WIDEN}` in a checkout tests the newest releases")


def version_line() -> str:
    """What ``painters --version`` prints: glue-painters' version and the upstream releases it runs
    on (what a bug report needs), then the untested-release line when there is one."""
    from . import __version__

    parts = [f"{name} {installed_version(name) or 'not installed'}" for name in UPSTREAM]
    line = f"glue-painters {__version__} ({', '.join(parts)})"
    warning = untested_warning()
    return line if warning is None else f"{line}\n{warning}"


def warn_untested(stream=None) -> str | None:
    """Print the untested-release line to ``stream`` (stderr) if there is one; return it."""
    warning = untested_warning()
    if warning is not None:
        print(warning, file=sys.stderr if stream is None else stream, flush=True)
    return warning
