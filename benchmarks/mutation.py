"""Mutation testing of the core, the decoder engine and the statistics (issue 28), with mutmut 3.

    pip install 'mutmut>=3.8,<4'          # a tool for this command only (optional extra "mutation")
    python benchmarks/mutation.py          # mutate, run, write reports/mutation.md
    python benchmarks/mutation.py --report-only

Why a wrapper: mutmut 3 works in the directory it is started in (it writes ``mutants/``, a mutated
copy of the sources, and its results beside them). This checkout is shared, so the wrapper copies
the tracked files it needs into a scratch directory (``--workdir``, default
``/tmp/painters-mutation``) and runs mutmut there: nothing in the checkout is mutated or written
except the report. mutmut starts pytest once, records which test reaches which function, then
forks one child per mutant that runs only those tests (fastest first, stopping at the first
failure).

Resumable: the copy keeps files' times, so mutmut keeps the results of every function whose code
did not change (its own cache, per function hash) and only runs what is new or unfinished; an
interrupted run is simply started again.

Sampling: ``--sample K`` keeps the mutants whose ``crc32(name) % K == 0`` (a fixed, deterministic
subset, the same on every run and machine); ``--sample 1`` runs them all.

Equivalent mutants: ``benchmarks/mutation_equivalent.json`` maps a surviving mutant's name to
``{"line": <the mutated line, stripped>, "why": <why no test can tell it apart>}``. An entry counts
only while the mutated line still reads the same (mutant numbers move when a function changes),
so a stale explanation shows up as an unexplained survivor instead of hiding one.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import zlib
from collections import Counter
from pathlib import Path

from glue_painters.datadir import data_root

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENT = ROOT / "benchmarks" / "mutation_equivalent.json"
REPORT = ROOT / "reports" / "mutation.md"

MODULES = [  # the core, the decoder engine, the statistics
    "glue_painters/plans.py", "glue_painters/variants.py", "glue_painters/rewire.py",
    "glue_painters/slot_cache.py", "glue_painters/batched.py", "glue_painters/prefix_share.py",
    "decoder_eval/prefix.py", "decoder_eval/loglikelihood.py", "decoder_eval/packing.py",
    "decoder_eval/generation.py",
    "glue_painters/stats.py",
]
TESTS = [  # the fast test files that exercise them (not the real-model or report suites)
    "tests/test_plans.py", "tests/test_stats.py", "tests/test_rewire.py", "tests/test_rewire_batched.py",
    "tests/test_decoder_engine.py", "tests/test_mutation_guards.py",
    "tests/test_mutation_guards_survivors.py",
]
# The tests parametrized over every tiny architecture run, in a mutation run, on these (one of each
# kind the core treats differently: rotary, absolute positions, sliding windows, MoE, latent
# attention, layers without RoPE, encoders with relative attention ...); the plain test run
# keeps all 33.
ARCHITECTURES = ["llama", "gemma3_text", "qwen3_moe", "gpt2", "deepseek_v3", "smollm3", "falcon", "opt",
                 "gptj", "bert", "modernbert", "deberta-v2", "mpnet"]
PLUGIN = """import pytest
KEEP = set(%r)

def _arch(item):
    spec = getattr(item, "callspec", None)
    return spec.params.get("arch") if spec is not None else None

@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    import tiny
    every = set(tiny.ALL)
    drop = [i for i in items if _arch(i) in every and _arch(i) not in KEEP]
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = [i for i in items if i not in drop]
""" % (ARCHITECTURES,)
COPY = ["glue_painters", "decoder_eval", "glue_eval", "painters", "tests"]  # what the tests import


def _git_files(ref: str | None) -> list[str]:
    cmd = ["git", "ls-files", "-co", "--exclude-standard"] if ref is None else ["git", "ls-tree", "-r", "--name-only", ref]
    out = subprocess.run([*cmd, "--", "pyproject.toml", *COPY], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.split("\n")
    return [f for f in out if f and (ref is not None or (ROOT / f).is_file())]


def sync(work: Path, ref: str | None = "HEAD") -> None:
    """Copy the needed files into ``work``: as committed at ``ref`` (default: others' uncommitted
    edits in a shared checkout stay out of the measurement), or as in the work tree (``ref=None``).
    A file is rewritten only when its content changed, so mutmut's per-function cache survives."""
    work.mkdir(parents=True, exist_ok=True)
    for f in _git_files(ref):
        if ref is None:
            data = (ROOT / f).read_bytes()
        else:
            data = subprocess.run(["git", "show", f"{ref}:{f}"], cwd=ROOT, check=True, capture_output=True).stdout
        dst = work / f
        if dst.exists() and dst.read_bytes() == data:
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(data)
    cfg = ["[mutmut]", "source_paths=", *[f"    {p}" for p in ("glue_painters", "decoder_eval")],
           "only_mutate=", *[f"    {m}" for m in MODULES],
           "pytest_add_cli_args_test_selection=", *[f"    {t}" for t in TESTS],
           "pytest_add_cli_args=", "    -p", "    no:cacheprovider", "    -q",
           "also_copy=", "    glue_eval", "    painters", "    conftest.py",
           "timeout_multiplier=5.0", ""]
    if not (work / "conftest.py").exists() or (work / "conftest.py").read_text() != PLUGIN:
        (work / "conftest.py").write_text(PLUGIN)  # a root conftest of the scratch copy only
    text = "\n".join(cfg)
    target = work / "setup.cfg"
    if not target.exists() or target.read_text() != text:
        target.write_text(text)


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", WANDB_MODE="offline")
    # the scratch copy lies elsewhere, so its own ../shared/data would not be this checkout's
    env["PAINTERS_DATA"] = str(data_root())
    return env


def generate(work: Path, children: int) -> None:
    """mutmut's own generation step alone (its ``run`` would also test every mutant)."""
    code = ("import os\nfrom pathlib import Path\nimport mutmut.__main__ as m\n"
            "os.makedirs('mutants', exist_ok=True)\n"
            "m.copy_src_dir(); m.copy_also_copy_files(); m.setup_source_paths()\n"
            f"m.create_mutants({children})\nm.save_stats() if Path('mutants/mutmut-stats.json').exists() else None\n")
    subprocess.run([sys.executable, "-c", code], cwd=work, check=True, env=_env(), stdout=subprocess.DEVNULL)


def results(work: Path) -> dict[str, int | None]:
    """Every mutant of the named modules and its exit code (None: not run yet)."""
    out = {}
    for module in MODULES:
        meta = work / "mutants" / (module + ".meta")
        if meta.exists():
            out.update(json.loads(meta.read_text())["exit_code_by_key"])
    return out


def sampled(names, k: int) -> list[str]:
    return sorted(n for n in names if zlib.crc32(n.encode()) % k == 0)


# The silent bugs of issue 28, each put back by hand into a scratch copy: (file, text, bug, what).
BUGS = [
    ("glue_painters/variants.py", "return (num_layers - 2) // 2", "return (num_layers - 1) // 2",
     "an odd layer count's N range: max_start (T-1)//2"),
    ("glue_painters/slot_cache.py", "if ka != kb or ra != rb or", "if ka != kb or",
     "the cache guard without version counts"),
    ("glue_painters/batched.py", "if self._stack is None or key != self._stack_key:", "if self._stack is None:",
     "stale stacked weights in batched groups"),
    ("decoder_eval/packing.py", "max(len(x) for x in inputs) <= window", "max(len(x) for x in inputs) <= window + 1",
     "sliding-window packing one token too lenient"),
    ("glue_painters/stats.py", "tail = (1 - level) / 2", "tail = (1 - level)",
     "a \"95%\" interval that is 90%"),
    ("decoder_eval/packing.py", "self.depth += other.depth", "self.depth += [d + offset for d in other.depth]",
     "packed rows' positions counting on across items"),
]
BUG_TESTS = ["tests/test_mutation_guards.py"]


def check_bugs(work: Path, ref: str | None) -> list[tuple[str, list[str]]]:
    """Put each bug back in a scratch copy and run the guard tests: the tests that fail, per bug."""
    out = []
    for path, text, bug, what in BUGS:
        sync(work, ref)
        target = work / path
        source = target.read_text()
        if source.count(text) != 1:
            out.append((what, [f"(not applied: '{text}' not found once in {path})"]))
            continue
        target.write_text(source.replace(text, bug))
        try:
            r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *BUG_TESTS],
                               cwd=work, env=_env(), capture_output=True, text=True)
        finally:
            target.write_text(source)
        failed = sorted({l.split(" ")[1].split("[")[0] for l in r.stdout.splitlines() if l.startswith("FAILED ")})
        out.append((what, failed))
        print(f"{what}: {len(failed)} failing test(s)", flush=True)
    return out


STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped",
          36: "timeout", -24: "timeout", 24: "timeout", 152: "timeout", 255: "timeout", None: "not run"}


def status(code) -> str:
    return STATUS.get(code, "suspicious")


def show(work: Path, name: str) -> str:
    r = subprocess.run(["mutmut", "show", name], cwd=work, capture_output=True, text=True, env=_env())
    return r.stdout.strip()


def _mutated_line(diff: str) -> str:
    plus = [l[1:].strip() for l in diff.splitlines() if l.startswith("+") and not l.startswith("+++")]
    return " / ".join(plus)


def module_of(name: str) -> str:
    dotted = name.split(".x_")[0].split(".x\u01c1")[0]
    for m in MODULES:
        if name.startswith(m[:-3].replace("/", ".") + "."):
            return m
    return dotted


def bug_section(bugs) -> list[str]:
    lines = ["## The issue's silent bugs, put back by hand", "",
             "Each bug is written into a scratch copy of the sources (`--bugs`) and "
             + ", ".join(f"`{t}`" for t in BUG_TESTS) + " run on it:", "",
             "| bug | tests that fail with it |", "| --- | --- |"]
    for what, failed in bugs:
        lines.append(f"| {what} | " + ("<br>".join(f"`{f.split('::')[-1]}`" for f in failed) or "**none**") + " |")
    return lines + [""]


def report(work: Path, k: int, command: str, bugs=None) -> str:
    codes = {n: c for n, c in results(work).items() if n in set(sampled(results(work), k))}
    equivalent = json.loads(EQUIVALENT.read_text()) if EQUIVALENT.exists() else {}
    rows, survivors = Counter(), []
    per_module: dict[str, Counter] = {}
    for name, code in sorted(codes.items()):
        st = status(code)
        if st == "survived":
            diff = show(work, name)
            entry = equivalent.get(name)
            line = _mutated_line(diff)
            if entry and entry.get("line") == line:
                st = "equivalent"
            survivors.append((name, st, diff, entry["why"] if st == "equivalent" else ""))
        rows[st] += 1
        per_module.setdefault(module_of(name), Counter())[st] += 1
    decided = rows["killed"] + rows["timeout"] + rows["survived"]
    score = (rows["killed"] + rows["timeout"]) / decided if decided else float("nan")
    lines = [
        "# Mutation testing: the core, the decoder engine, the statistics (issue 28)",
        "",
        "Made by:",
        "",
        "```",
        command,
        "```",
        "",
        f"mutmut {_mutmut_version()}, run in a scratch copy of the tracked files (see `benchmarks/mutation.py`). "
        "Each mutant runs the tests of " + ", ".join(f"`{t}`" for t in TESTS) + " that reach the mutated "
        "function (mutmut's per-function test selection); the tests parametrized over every tiny "
        "architecture run on " + ", ".join(ARCHITECTURES) + " (a root `conftest.py` of the scratch copy "
        "deselects the others). Only the files as committed (`HEAD`) are measured.",
        "",
        "Needs `pip install 'mutmut>=3.8,<4'` (not a dependency of the project). Resumable: re-running the "
        "command keeps every result whose function did not change; after adding tests, `--retry` re-runs "
        "the survivors; `--bugs` also puts back the issue's silent bugs one at a time.",
        "",
        ("Sampling: every mutant was run." if k == 1 else
         f"Sampling: a deterministic 1-in-{k} subset, the mutants whose `zlib.crc32(name) % {k} == 0` "
         f"({len(codes)} of {len(results(work))} generated)."),
        "",
        f"**Score: {rows['killed'] + rows['timeout']} killed of {decided} non-equivalent mutants = "
        f"{100 * score:.1f}%** (a timeout counts as killed: the mutant made a test hang).",
        "",
        "| | tried | killed | timeout | survived | equivalent | no tests | not run |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]

    def row(title, c):
        return (f"| {title} | {sum(c.values()) - c['not run']} | {c['killed']} | {c['timeout']} | {c['survived']} | "
                f"{c['equivalent']} | {c['no tests']} | {c['not run']} |")

    for m in MODULES:
        lines.append(row(f"`{m}`", per_module.get(m, Counter())))
    lines.append(row("**all**", rows))
    other = {s: n for s, n in rows.items() if s not in
             ("killed", "timeout", "survived", "equivalent", "no tests", "not run")}
    if other:
        lines += ["", "Other outcomes: " + ", ".join(f"{s}: {n}" for s, n in sorted(other.items()))]
    if bugs:
        lines += [""] + bug_section(bugs)
    lines += ["", "\"no tests\": no test of the selection reaches the function (listed below; not counted in "
              "the score).", ""]
    no_tests = [n for n, c in codes.items() if status(c) == "no tests"]
    if no_tests:
        lines += ["## Mutants no selected test reaches", ""] + [f"- `{n}`" for n in no_tests] + [""]
    for title, which in (("Surviving mutants (not explained)", "survived"),
                         ("Equivalent mutants (survive by construction)", "equivalent")):
        chosen = [s for s in survivors if s[1] == which]
        lines += [f"## {title}: {len(chosen)}", ""]
        for name, _, diff, why in chosen:
            lines += [f"### `{name}`", ""]
            if why:
                lines += [why, ""]
            body = "\n".join(l for l in diff.splitlines() if l[:1] in "+-@ " and not l.startswith(("+++", "---")))
            lines += ["```diff", body, "```", ""]
    return "\n".join(lines)


def _mutmut_version() -> str:
    from importlib.metadata import version
    return version("mutmut")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", default="/tmp/painters-mutation", type=Path)
    ap.add_argument("--sample", type=int, default=1, help="run 1 in K mutants (deterministic by name)")
    ap.add_argument("--max-children", type=int, default=2)
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--fresh", action="store_true", help="forget every earlier result in --workdir")
    ap.add_argument("--only", nargs="*", default=None, help="re-run these mutants (fnmatch patterns)")
    ap.add_argument("--retry", action="store_true",
                    help="re-run the sampled mutants that survived or had no test (after adding tests)")
    ap.add_argument("--report", type=Path, default=REPORT)
    ap.add_argument("--bugs", action="store_true", help="also put back the issue's silent bugs one by one")
    ap.add_argument("--worktree", action="store_true",
                    help="measure the work tree's files instead of the last commit's (HEAD)")
    args = ap.parse_args(argv)
    work = args.workdir.resolve()
    command = "python benchmarks/mutation.py" + (f" --sample {args.sample}" if args.sample != 1 else "")
    if args.fresh and work.exists():
        shutil.rmtree(work)
    if not args.report_only:
        sync(work, None if args.worktree else "HEAD")
        generate(work, args.max_children)
        codes = results(work)
        chosen = sampled(codes, args.sample)
        if args.only is not None:
            import fnmatch
            todo = [n for n in chosen if any(fnmatch.fnmatch(n, p) for p in args.only)]
        elif args.retry:
            todo = [n for n in chosen if codes[n] is None or status(codes[n]) in ("survived", "no tests")]
        else:
            todo = [n for n in chosen if codes[n] is None]
        print(f"{len(codes)} mutants generated, {len(chosen)} sampled, {len(todo)} to run", flush=True)
        if todo:
            r = subprocess.run(["mutmut", "run", "--max-children", str(args.max_children), *todo], cwd=work,
                               env=_env())
            if r.returncode not in (0, 1):
                print(f"mutmut run exited {r.returncode}", file=sys.stderr)
    bugs_file = work / "bugs.json"
    if args.bugs:
        bugs = check_bugs(work.parent / (work.name + "-bugs"), None if args.worktree else "HEAD")
        bugs_file.write_text(json.dumps(bugs))
    bugs = json.loads(bugs_file.read_text()) if bugs_file.exists() else None
    text = report(work, args.sample, command + (" --bugs" if bugs else ""), bugs)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(text + "\n")
    print(re.search(r"\*\*Score.*", text).group(0))
    print(f"report: {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
