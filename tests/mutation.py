"""`make mutation`: mutation testing of operator/incidentops/domain/ with mutmut, and its summary.

    python -m tests.mutation [--jobs N] [MUTANT ...]
    python -m tests.mutation --recheck TEST ... [--jobs N]     (files, node IDs, or @FILE listing them)
    python -m tests.mutation --report

mutmut 3 copies the source into ``mutants/``, turns every function of the domain into a trampoline to its
mutants, puts the copy first on ``sys.path``, and runs, for each mutant, the tests that call the function
(``[tool.mutmut]`` in pyproject.toml: tests/unit/domain, Hypothesis's "mutation" profile).

It knows only ``./``, ``src/`` and ``source/`` as source roots, and names mutants after their path from
there; this project's root is ``operator/``, on ``sys.path`` through the editable install's .pth file. So
the run happens in build/mutation/work/, made afresh each time, where ``src`` is a link to operator/ and
``tests`` and ``pyproject.toml`` are links to the project's: the names mutmut derives from paths
(``src/incidentops/domain/sla.py`` is ``incidentops.domain.sla``) are the modules the tests import, and
mutmut takes ``src``'s target, the editable install's entry, off ``sys.path``, so the tests can only
import the mutated copy. mutmut's own "forced fail" run (every trampoline raising) stops the run if the
tests pass anyway, and this script fails if no mutant was killed.

Writes build/mutation/summary.json (the counts, the score ``killed / total``, and every mutant not
killed with its file, line and mutation) and build/mutation/survivors.txt, and prints the score.
MUTANT names (globs, as ``mutmut results`` prints them) check only those mutants.

``--recheck`` is the quick second look after tests were added: it checks only the mutants the last
summary did not kill, and only against the given tests (the new or changed ones), in
build/mutation/recheck/. That is sound because every other test is deterministic (derandomized
Hypothesis) and already failed to kill them; it refuses if the domain's code changed since. A mutant
those tests kill counts as killed, every other keeps its earlier status. ``--report`` writes the summary
of the last run in build/mutation/work/ again.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "build" / "mutation"
WORK = OUT / "work"
RECHECK = OUT / "recheck"
DOMAIN = ROOT / "operator" / "incidentops" / "domain"
LINKS = {"src": ROOT / "operator", "tests": ROOT / "tests", "pyproject.toml": ROOT / "pyproject.toml"}

EXCLUDED = [
    "module-level statements: __all__, constants, docstrings, imports (mutmut mutates function bodies only)",
    "triple-quoted strings (docstrings) and type annotations",
    "decorated functions and methods (properties), which mutmut cannot trampoline",
    "lines marked '# pragma: no cover' (unreachable by design)",
]
STATUSES = ("killed", "survived", "timeout", "suspicious", "no tests", "skipped", "segfault", "not checked")
_LISTED = ("killed", "survived", "timeout")  # the others go to "others", with their status


def domain_digest() -> str:
    """SHA-256 of the domain's sources: mutants are numbered per function, so names hold only for this code."""
    digest = hashlib.sha256()
    for path in sorted(DOMAIN.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def prepare(where: Path, tests: list[str] | None = None) -> None:
    """``where``, empty but for the links (a run never reuses an earlier run's results); with ``tests``,
    pyproject.toml is a copy whose mutmut test selection is those files."""
    shutil.rmtree(where, ignore_errors=True)
    where.mkdir(parents=True)
    for name, target in LINKS.items():
        if name == "pyproject.toml" and tests is not None:
            selection = "pytest_add_cli_args_test_selection = "
            lines = target.read_text().splitlines(keepends=True)
            assert sum(line.startswith(selection) for line in lines) == 1, f"one {selection!r} line expected"
            lines = [selection + json.dumps(tests) + "\n" if line.startswith(selection) else line for line in lines]
            (where / name).write_text("".join(lines))
        else:
            (where / name).symlink_to(target)


def run_mutmut(jobs: int, mutants: list[str], where: Path = WORK) -> tuple[list[str], float]:
    command = [str(Path(sys.executable).parent / "mutmut"), "run", "--max-children", str(jobs), *mutants]
    started = time.monotonic()
    result = subprocess.run(command, cwd=where, check=False)
    if result.returncode != 0:
        sys.exit(f"mutmut failed (exit code {result.returncode}); see its output above")
    return command, time.monotonic() - started


def _function_node(tree: ast.Module, function: str, class_name: str | None) -> ast.FunctionDef | None:
    body: list[ast.stmt] = tree.body
    if class_name is not None:
        classes = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name]
        body = classes[0].body if classes else []
    return next((n for n in body if isinstance(n, ast.FunctionDef) and n.name == function), None)


def describe(name: str, path: str) -> dict[str, Any]:
    """Where a mutant is (the project's file and line) and what it changes."""
    import libcst
    from mutmut.mutation.diff_apply import read_functions_from_index
    from mutmut.utils.format_utils import orig_function_and_class_names_from_key

    function, class_name = orig_function_and_class_names_from_key(name)
    functions = read_functions_from_index(name, path)
    assert functions is not None, f"no line index for {path}"
    original, mutated = (libcst.Module([f]).code.strip().splitlines() for f in functions)
    # The rendered function may start with the comments above it: count lines from its `def`.
    def_index = next(i for i, line in enumerate(original) if line.lstrip().startswith(("def ", "async def ")))
    node = _function_node(ast.parse(Path(path).read_text()), function, class_name)
    def_line = node.lineno if node is not None else 0
    before: list[str] = []
    after: list[str] = []
    first: int | None = None
    matcher = difflib.SequenceMatcher(a=original, b=mutated, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        first = i1 if first is None else first
        before += [line.strip() for line in original[i1:i2]]
        after += [line.strip() for line in mutated[j1:j2]]
    line = def_line + ((first if first is not None else def_index) - def_index)
    qualified = f"{class_name}.{function}" if class_name else function
    return {
        "mutant": name,
        "file": str(LINKS["src"].relative_to(ROOT) / Path(path).relative_to("src")),
        "line": line,
        "function": qualified,
        "before": "\n".join(before),
        "after": "\n".join(after),
    }


def statuses() -> dict[str, tuple[str, str]]:
    """Every mutant of the run in the current directory: name -> (status, mutmut's path of its file)."""
    from mutmut.mutation.data import SourceFileMutationData
    from mutmut.stats import status_by_exit_code
    from mutmut.utils.file_utils import walk_mutatable_files

    found: dict[str, tuple[str, str]] = {}
    for path in sorted(walk_mutatable_files()):
        data = SourceFileMutationData(path=path)
        data.load()
        for name, exit_code in data.exit_code_by_key.items():
            found[name] = (status_by_exit_code[exit_code], str(path))
    return found


def summarize(command: list[str], seconds: float | None, jobs: int) -> dict[str, Any]:
    counts = dict.fromkeys(STATUSES, 0)
    unkilled: dict[str, list[dict[str, Any]]] = {status: [] for status in STATUSES if status != "killed"}
    for name, (status, path) in statuses().items():
        counts[status] = counts.get(status, 0) + 1
        if status != "killed":
            unkilled.setdefault(status, []).append(describe(name, path))
    total = sum(counts.values())
    for found in unkilled.values():
        found.sort(key=lambda m: (m["file"], m["line"], m["mutant"]))
    return {
        "tool": f"mutmut {importlib.metadata.version('mutmut')}",
        "command": " ".join([Path(command[0]).name, *command[1:]]),
        "jobs": jobs,
        "seconds": round(seconds) if seconds is not None else None,
        "mutated": "operator/incidentops/domain",
        "domain_sha256": domain_digest(),
        "tests": "tests/unit/domain, Hypothesis profile 'mutation' (tests/conftest.py)",
        "excluded": EXCLUDED,
        "total": total,
        **{status.replace(" ", "_"): count for status, count in counts.items()},
        "score": round(counts["killed"] / total, 4) if total else None,
        "survivors": unkilled["survived"],
        "timeouts": unkilled["timeout"],
        "others": [m | {"status": s} for s in STATUSES if s not in _LISTED for m in unkilled[s]],
    }


def write(summary: dict[str, Any]) -> None:
    (OUT / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = []
    for label, key in (("survived", "survivors"), ("timeout", "timeouts"), ("other", "others")):
        for m in summary[key]:
            change = f"{m['before']!r} -> {m['after']!r}"
            lines.append(f"{m['file']}:{m['line']}\t{m.get('status', label)}\t{m['function']}\t{change}\t{m['mutant']}")
    (OUT / "survivors.txt").write_text("".join(f"{line}\n" for line in lines))


def recheck(tests: list[str], jobs: int) -> dict[str, Any]:
    """The last summary, with the mutants it did not kill checked again against ``tests`` (see the module doc)."""
    previous = json.loads((OUT / "summary.json").read_text())
    if previous.get("domain_sha256") != domain_digest():
        sys.exit("the domain changed since the last summary: its mutants are not the same; run `make mutation`")
    unkilled = [*previous["survivors"], *previous["timeouts"], *previous["others"]]
    prepare(RECHECK, tests)
    _, seconds = run_mutmut(jobs, [m["mutant"] for m in unkilled], RECHECK)
    os.chdir(RECHECK)
    now = statuses()
    killed = [m for m in unkilled if now.get(m["mutant"], ("",))[0] == "killed"]
    gone = {m["mutant"] for m in killed}
    counts = {status.replace(" ", "_"): previous[status.replace(" ", "_")] for status in STATUSES}
    counts["killed"] += len(killed)
    for m in killed:
        status = "survived" if m in previous["survivors"] else "timeout" if m in previous["timeouts"] else m["status"]
        counts[status.replace(" ", "_")] -= 1
    total = previous["total"]
    return (
        previous
        | counts
        | {
            "command": f"{previous['command']}; --recheck of {len(unkilled)} mutants against {len(tests)} tests",
            "seconds": previous["seconds"],
            "recheck": {"tests": tests, "mutants": len(unkilled), "killed": len(killed), "seconds": round(seconds)},
            "score": round(counts["killed"] / total, 4) if total else None,
            "survivors": [m for m in previous["survivors"] if m["mutant"] not in gone],
            "timeouts": [m for m in previous["timeouts"] if m["mutant"] not in gone],
            "others": [m for m in previous["others"] if m["mutant"] not in gone],
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.mutation", description=__doc__.splitlines()[0], fromfile_prefix_chars="@"
    )
    parser.add_argument("--jobs", type=int, default=2, help="mutants tested at once (default 2)")
    parser.add_argument(
        "--recheck", nargs="+", metavar="TEST", help="recheck the last survivors against these test files or node IDs"
    )
    parser.add_argument("--report", action="store_true", help="summarize the last run again")
    parser.add_argument("mutants", nargs="*", help="check only these mutants (names or globs)")
    args = parser.parse_args()
    if args.recheck:
        summary = recheck(args.recheck, args.jobs)
        shutil.copy(OUT / "summary.json", OUT / "summary.previous.json")
    elif args.report:
        last = OUT / "summary.json"
        seconds = json.loads(last.read_text()).get("seconds") if last.exists() else None
        os.chdir(WORK)  # mutmut's functions read mutants/ and pyproject.toml from the current directory
        command = [str(Path(sys.executable).parent / "mutmut"), "run", "--max-children", str(args.jobs)]
        summary = summarize(command, seconds, args.jobs)
    else:
        prepare(WORK)
        command, seconds = run_mutmut(args.jobs, args.mutants)
        os.chdir(WORK)  # mutmut's functions read mutants/ and pyproject.toml from the current directory
        summary = summarize(command, seconds, args.jobs)
    write(summary)
    total, killed = summary["total"], summary["killed"]
    where = OUT.relative_to(ROOT)
    print(
        f"mutation score: {killed}/{total} killed ({100 * (summary['score'] or 0):.1f}%),"
        f" {summary['survived']} survived, {summary['timeout']} timed out, in {summary['seconds']}s"
        + (f" and a recheck of {summary['recheck']['seconds']}s;" if "recheck" in summary else ";")
        + f" summary in {where}/summary.json, the mutants not killed in {where}/survivors.txt"
    )
    if killed == 0 and summary["not_checked"] < total:
        sys.exit("no mutant was killed: the tests did not run the mutated copy of the domain")


if __name__ == "__main__":
    main()
