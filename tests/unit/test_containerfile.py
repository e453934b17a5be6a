"""The Containerfile, read rather than built (no container engine runs here).

What it must hold to: a build stage and a slim Python 3.11 runtime stage; a
numeric, non-root user; `incidentops run` as the entrypoint, a console script
of the package that resolves to a callable; and, as the only thing installed,
the wheel of this source without extras, so the image gets the dependencies
pyproject.toml declares and none of the test extra.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import re
import shlex
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
WHEEL = re.compile(r"^/dist/incidentops-\*\.whl$")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, instruction: str) -> list[str]:
        return [args for name, args in self.instructions if name == instruction]


def parse(text: str) -> list[Stage]:
    """The stages of a Containerfile: continuation lines joined, comments dropped, global ARGs in FROM."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Containerfile ends in a continuation"

    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        instruction, _, rest = line.partition(" ")
        instruction, rest = instruction.upper(), rest.strip()
        if instruction == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif instruction == "FROM":
            words = rest.split()
            base = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m.group(1) or m.group(2)], words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base, name))
        else:
            assert stages, f"{instruction} before the first FROM"
            stages[-1].instructions.append((instruction, rest))
    return stages


STAGES = parse((ROOT / "Containerfile").read_text())
BUILD, RUNTIME = STAGES[0], STAGES[-1]


def _exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(word, str) for word in value), f"not the exec form: {args}"
    return value


def _commands(stage: Stage) -> list[list[str]]:
    """Every command of the stage's RUN instructions, split at && and ;."""
    out = []
    for run in stage.all("RUN"):
        for command in re.split(r"&&|;", run):
            words = shlex.split(command)
            if words:
                out.append(words)
    return out


def _pip(command: list[str]) -> tuple[str, list[str], list[str]] | None:
    """(subcommand, options, positional arguments) of a pip command, or None for any other command."""
    if command[:3] == ["python", "-m", "pip"]:
        words = command[3:]
    elif command[0] in ("pip", "pip3"):
        words = command[1:]
    else:
        return None
    options: list[str] = []
    while words and words[0].startswith("-"):  # pip's own options (--python PATH) come before the subcommand
        options.append(words.pop(0))
        if options[-1] == "--python":
            options.append(words.pop(0))
    subcommand, *rest = words
    positional = []
    with_value = {"--wheel-dir", "-w", "--python", "-r", "--requirement", "-c", "--constraint", "-e", "--editable"}
    iterator = iter(rest)
    for word in iterator:
        if word.startswith("-"):
            options.append(word)
            if word in with_value:
                options.append(next(iterator))
        else:
            positional.append(word)
    return subcommand, options, positional


def test_a_build_stage_and_a_slim_python_311_runtime() -> None:
    assert len(STAGES) >= 2
    assert BUILD.name is not None
    assert re.fullmatch(r"(docker\.io/library/)?python:3\.11-slim(-\w+)?", RUNTIME.base), RUNTIME.base
    assert re.fullmatch(r"(docker\.io/library/)?python:3\.11-slim(-\w+)?", BUILD.base), "build and runtime agree"
    assert any(f"--from={BUILD.name}" in copy for copy in RUNTIME.all("COPY"))


def test_the_image_runs_as_a_numeric_non_root_user() -> None:
    users = RUNTIME.all("USER")
    assert users, "no USER: the image would run as root"
    match = re.fullmatch(r"(\d+)(?::(\d+))?", users[-1])
    assert match is not None, f"USER {users[-1]} is not numeric (runAsNonRoot cannot check a name)"
    assert int(match.group(1)) != 0 and int(match.group(2) or 1) != 0


def _argv() -> list[str]:
    entrypoint = RUNTIME.all("ENTRYPOINT")
    assert len(entrypoint) == 1
    cmd = RUNTIME.all("CMD")
    return _exec_form(entrypoint[0]) + (_exec_form(cmd[-1]) if cmd else [])


def test_the_entrypoint_is_incidentops_run() -> None:
    program, *arguments = _argv()
    assert Path(program).name == "incidentops"
    assert arguments == ["run"]
    # The program is the console script pip installed into the virtualenv the runtime copies.
    venvs = [re.search(r"--python (\S+)/bin/python", run) for run in BUILD.all("RUN")]
    venv = next(m.group(1) for m in venvs if m is not None)
    assert program == f"{venv}/bin/incidentops"
    assert any(copy.split()[-2:] == [venv, venv] for copy in RUNTIME.all("COPY"))


def _console_script(name: str) -> Callable[..., object]:
    module, _, attribute = PYPROJECT["project"]["scripts"][name].partition(":")
    target = getattr(importlib.import_module(module), attribute)
    assert callable(target)
    return target  # type: ignore[no-any-return]


def test_the_entrypoint_resolves_to_a_callable_that_knows_run(capsys: pytest.CaptureFixture[str]) -> None:
    program, *arguments = _argv()
    main = _console_script(Path(program).name)
    with pytest.raises(SystemExit) as exited:
        main([*arguments, "--help"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith("usage: incidentops run")
    # The installed distribution says the same as pyproject.toml.
    scripts = {e.name: e.value for e in importlib.metadata.entry_points(group="console_scripts")}
    assert scripts["incidentops"] == PYPROJECT["project"]["scripts"]["incidentops"]


def test_only_the_wheel_of_this_source_is_installed_without_extras() -> None:
    installs = []
    for command in _commands(BUILD):
        pip = _pip(command)
        if pip is None:
            continue
        subcommand, options, positional = pip
        if subcommand == "wheel":
            assert "--no-deps" in options and positional == ["."], "the wheel is this source's alone"
            assert options[options.index("--wheel-dir") + 1] == "/dist"
        else:
            assert subcommand == "install", command
            installs.append((options, positional))
    assert len(installs) == 1, "one install: the wheel"
    options, positional = installs[0]
    assert len(positional) == 1 and WHEEL.match(positional[0]), f"installs {positional}, not only the wheel"
    assert "[" not in positional[0], "no extra"
    assert not {"-r", "--requirement", "-e", "--editable", "--no-deps"} & set(options)
    # Nothing is installed in the runtime stage: it copies the virtualenv.
    assert RUNTIME.all("RUN") == []


def test_the_wheel_pulls_pyprojects_dependencies_and_no_test_extra() -> None:
    requires = [Requirement(text) for text in importlib.metadata.requires("incidentops") or []]
    unconditional = {str(r) for r in requires if r.marker is None}
    assert unconditional == {str(Requirement(text)) for text in PYPROJECT["project"]["dependencies"]}
    for extra, texts in PYPROJECT["project"]["optional-dependencies"].items():
        declared = {str(Requirement(text)) for text in texts}
        guarded = {
            str(Requirement(f"{r.name}{r.specifier}"))
            for r in requires
            if r.marker is not None and r.marker.evaluate({"extra": extra})
        }
        assert declared <= guarded, f"the {extra} extra is installed only when asked for"
        assert not declared & unconditional


def test_the_build_stage_copies_what_the_wheel_is_built_from() -> None:
    copied = {source.rstrip("/") for copy in BUILD.all("COPY") for source in copy.split()[:-1]}
    project = PYPROJECT["project"]
    needed = {"pyproject.toml", project["readme"], *PYPROJECT["tool"]["setuptools"]["packages"]["find"]["where"]}
    assert needed <= copied
    # The build context (.dockerignore, which podman and buildah read too) lets those in.
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in ignore
    assert {f"!{path}" for path in needed} <= {line.rstrip("/") for line in ignore}
