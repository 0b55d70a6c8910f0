"""The layering rules, read from the source with ``ast`` (nothing is imported but packages).

Three layers, imports pointing down only, with no exemptions:

* the library ``glue_painters`` imports no track (``decoder_eval``, ``glue_eval``) and not the
  application ``painters``, at module level, inside a function or by string;
* each track imports the library only: neither the other track nor the application;
* the application ``painters`` (CLI, reports, export, search commands) may import all three.

* No import cycle among first-party modules (``glue_painters``, ``decoder_eval``, ``glue_eval``, ``painters``), counting
  imports inside functions too: a cycle hidden in a function still means neither module can be
  understood without the other.
"""

from __future__ import annotations

import ast
import importlib.util
import pkgutil
from pathlib import Path

import decoder_eval
import glue_eval
import glue_painters
import painters

FIRST_PARTY = (glue_painters, decoder_eval, glue_eval, painters)
TRACKS = ("decoder_eval", "glue_eval")
APP = ("painters",)
# what each lower layer may not import: the library neither track nor the app, a track neither
# the other track nor the app
FORBIDDEN = {"glue_painters": TRACKS + APP, "decoder_eval": ("glue_eval",) + APP, "glue_eval": ("decoder_eval",) + APP}


def modules(package) -> dict[str, Path]:
    """Every module of ``package`` (itself included) -> its source file."""
    def unreadable(name: str):
        raise ImportError(f"cannot list the modules of {name}")  # walk_packages would skip it silently

    found = {package.__name__: Path(package.__file__)}
    for info in pkgutil.walk_packages(package.__path__, prefix=package.__name__ + ".", onerror=unreadable):
        found[info.name] = Path(importlib.util.find_spec(info.name).origin)
    return found


def _within(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def imports(source: str, module: str, is_package: bool = False) -> list[tuple[str, int]]:
    """``(imported name, line)`` for every import statement anywhere in ``source`` (functions,
    classes and ``if`` blocks included), relative imports resolved against ``module``;
    ``from X import y`` gives ``X.y`` (y may be a submodule or a name in X). Also
    ``importlib.import_module("literal")``, the spelling that hides an import from a reader."""
    package = module if is_package else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[:len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            out += [(base if alias.name == "*" else f"{base}.{alias.name}", node.lineno) for alias in node.names]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None))
              in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)):
            out.append((node.args[0].value, node.lineno))
    return sorted(out, key=lambda x: x[1])


def track_imports(source: str, module: str, is_package: bool = False, forbidden=TRACKS + APP) -> list[str]:
    """``module:line imports NAME`` for each import of a ``forbidden`` package (a layer above)."""
    return [f"{module}:{line} imports {name}" for name, line in imports(source, module, is_package)
            if _within(name, forbidden)]


def import_graph(sources: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the first-party modules it imports (the most specific module each import names:
    ``from pkg import mod`` is an edge to ``pkg.mod``, ``from pkg import name`` one to ``pkg``).
    Parent packages are not edges: that Python runs a package's ``__init__`` before its modules
    is not a dependency of the module on its siblings."""
    graph: dict[str, set[str]] = {name: set() for name in sources}
    for name, path in sources.items():
        for target, _ in imports(path.read_text(), name, path.name == "__init__.py"):
            while target and target not in sources:
                target = target.rpartition(".")[0]
            if target and target != name:
                graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


# ---- the rules ------------------------------------------------------------------------------------

def test_the_core_imports_no_track():
    bad = []
    for name, path in modules(glue_painters).items():
        bad += track_imports(path.read_text(), name, path.name == "__init__.py", FORBIDDEN["glue_painters"])
    assert not bad, "the library must import neither a track nor the application:\n" + "\n".join(bad)


def test_a_track_imports_neither_the_other_track_nor_the_application():
    bad = []
    for package in (decoder_eval, glue_eval):
        for name, path in modules(package).items():
            bad += track_imports(path.read_text(), name, path.name == "__init__.py", FORBIDDEN[package.__name__])
    assert not bad, "imports must point down:\n" + "\n".join(bad)


def test_nothing_is_imported_by_string():
    """``importlib.import_module``/``__import__`` hide an edge from every checker (and hid a cycle
    once): first-party code names what it imports."""
    found = []
    for package in FIRST_PARTY:
        for name, path in modules(package).items():
            tree = ast.parse(path.read_text())
            found += [f"{name}:{node.lineno}" for node in ast.walk(tree) if isinstance(node, ast.Call)
                      and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module", "__import__")]
    assert not found, "imports by string: " + ", ".join(found)


def test_no_import_cycles_among_first_party_modules():
    sources = {name: path for package in FIRST_PARTY for name, path in modules(package).items()}
    graph = import_graph(sources)
    found = [" <-> ".join(sorted(c)) for c in cycles(graph)]
    assert not found, "import cycles:\n" + "\n".join(found)


# ---- the checks themselves catch what they are for --------------------------------------------------

def test_a_track_import_anywhere_is_named_with_its_line():
    source = "import os\n\ndef f():\n    import decoder_eval.sweep\n\nfrom painters import cli\nfrom glue_eval import runs\n"
    assert track_imports(source, "glue_painters.search.beam") == [
        "glue_painters.search.beam:4 imports decoder_eval.sweep",
        "glue_painters.search.beam:6 imports painters.cli",
        "glue_painters.search.beam:7 imports glue_eval.runs"]
    assert track_imports("from glue_eval import x\n", "decoder_eval.sweep", forbidden=FORBIDDEN["decoder_eval"])
    assert not track_imports("from glue_painters import x\n", "decoder_eval.sweep", forbidden=FORBIDDEN["decoder_eval"])
    assert track_imports("importlib.import_module('decoder_eval.cli')\n", "glue_painters.rewire")
    assert not track_imports("from .glue_utils import x\nimport paintersx\n", "glue_painters.rewire")


def test_a_cycle_through_a_function_level_import_is_found(tmp_path):
    files = {"pkg.a": "from . import b\n", "pkg.b": "def f():\n    from .c import g\n", "pkg.c": "import pkg.a\n",
             "pkg.d": "from pkg.a import x\nfrom pkg import c\n"}
    sources = {}
    for name, text in files.items():
        sources[name] = tmp_path / f"{name}.py"
        sources[name].write_text(text)
    graph = import_graph(sources)
    assert graph["pkg.d"] == {"pkg.a", "pkg.c"}
    assert cycles(graph) == [{"pkg.a", "pkg.b", "pkg.c"}]


def test_no_source_file_over_500_lines():
    """Small modules named for what they hold: a file past 500 lines holds two things."""
    long = [f"{name} ({n} lines)" for package in FIRST_PARTY for name, path in modules(package).items()
            if (n := len(path.read_text().splitlines())) > 500]
    assert not long, "split these: " + ", ".join(long)
