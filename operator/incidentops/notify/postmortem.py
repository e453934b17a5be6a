"""Post-mortem drafts and drill assessments as Markdown: the shipped Jinja2 templates, or a policy's own.

Where it sits: ``handlers/postmortems.py`` hands :func:`render` the facts of
``domain.postmortem.draft_facts`` and, when the policy names a template
ConfigMap (``spec.postmortems.templateConfigMap``), its text; it stores what
comes back. The shipped templates are ``templates/postmortems/postmortem.md.j2``
and ``assessment.md.j2``, modelled on the response plans' post-mortem and
post-drill assessment templates.

A policy's template is text from the cluster, so it runs in Jinja2's sandbox
(no attribute access to Python internals, no imports) and is bounded in size;
the facts it sees are plain JSON values. One that does not render (a syntax
error, an undefined name, a sandbox violation) is not fatal: the shipped
template is used and :attr:`Rendered.problem` says why, for the timeline and an
Event. Undefined names are errors (``StrictUndefined``) in both.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import jinja2
import jinja2.sandbox

__all__ = ["TEMPLATE_KEYS", "TEMPLATE_LIMIT", "Rendered", "render"]

TEMPLATE_KEYS: Final = {"postmortem": "postmortem.md.j2", "assessment": "assessment.md.j2"}
"""The template of each kind of document: its file in the package and its key in a policy's ConfigMap."""

TEMPLATE_LIMIT: Final = 64 * 1024
"""A policy's template longer than this is refused (the shipped one is used)."""

OUTPUT_LIMIT: Final = 512 * 1024
"""A document longer than this is cut (a ConfigMap holds at most 1 MiB)."""


@dataclass(frozen=True)
class Rendered:
    """A rendered document, and why the policy's template was not used (None when it was, or there was none)."""

    text: str
    problem: str | None = None


def _ts(value: Any) -> str:
    """An RFC 3339 text (or a datetime) as ``2025-01-31 14:05:09 UTC``; None as ``unknown``."""
    if value is None:
        return "unknown"
    moment = value if isinstance(value, datetime.datetime) else datetime.datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _cell(value: Any) -> str:
    """Text safe inside a Markdown table cell: one line, pipes escaped."""
    return " ".join(str(value).split()).replace("|", "\\|")


def _or_none(value: Any, default: str = "none") -> Any:
    return default if value is None or value == "" else value


def _configure(environment: jinja2.Environment) -> jinja2.Environment:
    environment.filters.update(ts=_ts, cell=_cell, or_none=_or_none)
    return environment


_SHIPPED = _configure(
    jinja2.Environment(
        loader=jinja2.PackageLoader("incidentops.notify", "templates/postmortems"),
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
)
_SANDBOX = _configure(
    jinja2.sandbox.ImmutableSandboxedEnvironment(
        autoescape=False, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True
    )
)


def _tidy(text: str) -> str:
    """No runs of blank lines (conditional lines leave them), no trailing spaces, one final newline."""
    out: list[str] = []
    for line in (raw.rstrip() for raw in text.strip("\n").splitlines()):
        if not line and out and not out[-1]:
            continue
        out.append(line)
    document = "\n".join(out) + "\n"
    return document if len(document) <= OUTPUT_LIMIT else document[: OUTPUT_LIMIT - 2] + "…\n"


def render(kind: str, facts: Mapping[str, Any], override: str | None = None) -> Rendered:
    """The ``kind`` (``postmortem`` or ``assessment``) document of ``facts``; with ``override`` (a policy's
    template text), that template, falling back to the shipped one when it fails."""
    if kind not in TEMPLATE_KEYS:
        raise ValueError(f"unknown document {kind!r}; expected one of {', '.join(TEMPLATE_KEYS)}")
    context = {"pm": facts}
    problem = None
    if override is not None:
        if len(override) > TEMPLATE_LIMIT:
            problem = f"the policy's template is {len(override)} characters, more than {TEMPLATE_LIMIT}"
        else:
            try:
                return Rendered(_tidy(_SANDBOX.from_string(override).render(context)))
            except Exception as exc:  # text from the cluster: any failure of it falls back, none crashes
                problem = f"the policy's template failed ({type(exc).__name__}: {exc})"[:512]
    text = _SHIPPED.get_template(TEMPLATE_KEYS[kind]).render(context)
    return Rendered(_tidy(text), problem)
