"""``python -m tests.bench [NAME|all] [--incidents N] [--runs R] [--out DIR]`` (``make bench``).

Runs the benchmarks that exist (``all``, the default) or one by name, each on
a control plane of its own, and writes ``<out>/<name>.json`` (default
``bench/results``). The exit code is 0 only if every benchmark ran and every
check it makes held (no page missing or sent twice, ...): a failure is loud.

A benchmark is a module of this package listed in ``BENCHMARKS`` with
``NAME``, ``add_arguments(parser)``, ``budget(args) -> seconds`` and
``run(args, workdir) -> dict`` (with ``ok``, ``machine``, ``parameters``,
``figures`` and ``runs``; this module adds the timestamp and the command and
writes the file). A module with only ``main(argv) -> exit code`` and an
``--output FILE`` flag is run through that instead, with its own defaults.
One that is listed but not written yet is skipped.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import shlex
import sys
import tempfile
import time
import traceback
from pathlib import Path
from types import ModuleType

from tests.bench import common

BENCHMARKS = {
    "escalation": "tests.bench.escalation",  # issue 3
    "intake": "tests.bench.intake",  # issue 4, once it exists
    "storm": "tests.bench.storm",  # a paging storm through one PagerDuty routing key
}


def available() -> tuple[dict[str, ModuleType], dict[str, str]]:
    """The benchmark modules that exist, and those that exist but do not import (name: error)."""
    found: dict[str, ModuleType] = {}
    broken: dict[str, str] = {}
    for name, module in BENCHMARKS.items():
        if importlib.util.find_spec(module) is None:
            continue
        try:
            found[name] = importlib.import_module(module)
        except Exception as exc:  # one broken benchmark must not keep the others from running
            broken[name] = f"{type(exc).__name__}: {exc}"
    return found, broken


def parser(benchmarks: dict[str, ModuleType], broken: dict[str, str]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__.split("\n\n")[1])
    p.add_argument("benchmark", nargs="?", default="all", choices=[*benchmarks, *broken, "all"])
    p.add_argument("--incidents", type=int, default=None, help="incidents per run (default: each benchmark's own)")
    p.add_argument("--runs", type=int, default=None, help="runs (default: 3 when N <= 200, else 1)")
    p.add_argument("--out", type=Path, default=common.RESULTS, help="results directory (default: %(default)s)")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs) even when all went well")
    for module in benchmarks.values():
        if hasattr(module, "add_arguments"):
            module.add_arguments(p)
    return p


def run_main(name: str, module: ModuleType, args: argparse.Namespace) -> bool:
    """A benchmark with a command line of its own: its defaults, our output directory."""
    args.out.mkdir(parents=True, exist_ok=True)
    common.log(f"{name}: running {module.__name__}.main (its own flags and defaults)")
    try:
        code = module.main(["--output", str(args.out / f"{name}.json")])
    except Exception as exc:
        common.log(f"{name}: the benchmark failed: {exc!r}")
        traceback.print_exc()
        return False
    common.log(f"{name}: {'ok' if code == 0 else f'FAILED (exit {code})'}")
    return bool(code == 0)


def run_one(module: ModuleType, args: argparse.Namespace, command: str) -> bool:
    name = module.NAME
    workdir = Path(tempfile.mkdtemp(prefix=f"incidentops-bench-{name}-"))
    common.log(f"{name}: work directory {workdir}")
    started = time.monotonic()
    ok = False
    try:
        with common.bounded(module.budget(args)):
            result = module.run(args, workdir)
        ok = bool(result["ok"])
        name = result.pop("result_name", name)
        document = {
            "benchmark": name,
            "timestamp": common.now_iso(),
            "command": command,
            "ok": ok,
            "duration_seconds": round(time.monotonic() - started, 1),
            **result,
        }
        path = common.write_result(args.out, name, document)
        common.log(f"{name}: {'ok' if ok else 'FAILED'}; results in {path}")
        print(f"{name}: figures (median of {len(result['runs'])} run(s)):")
        print(json.dumps(result["figures"], indent=2))
        if not ok:
            for run in result["runs"]:
                for problem in run.get("problems", []):
                    print(f"{name}: run {run['run']}: {problem}", file=sys.stderr)
    except (Exception, KeyboardInterrupt, SystemExit) as exc:
        common.log(f"{name}: the benchmark failed: {exc!r}")
        traceback.print_exc()
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
    finally:
        if ok and not args.keep:
            common.remove_tree(workdir)
        else:
            common.log(f"{name}: logs kept in {workdir}")
    return ok


def main(argv: list[str] | None = None) -> int:
    benchmarks, broken = available()
    args = parser(benchmarks, broken).parse_args(argv)
    chosen = [*benchmarks, *broken] if args.benchmark == "all" else [args.benchmark]
    command = shlex.join(["python", "-m", "tests.bench", *(sys.argv[1:] if argv is None else argv)])
    results = []
    for name in chosen:
        if name in broken:
            common.log(f"{name}: FAILED: the benchmark does not import: {broken[name]}")
            results.append(False)
        elif hasattr(benchmarks[name], "run"):
            results.append(run_one(benchmarks[name], args, command))
        else:
            results.append(run_main(name, benchmarks[name], args))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
