"""``kubectl incident postmortem``: the decisions (pure) behind printing, requesting and finishing a post-mortem.

Where it sits: ``app.cmd_postmortem`` reads the incident and its draft's ConfigMap and writes
``spec.postmortem``; what to read, what to write and what to say is decided here. The draft is the
operator's (``status.postmortem.ref``, or ``status.assessment.ref`` for a drill); people finish the
post-mortem in the spec, with a URL or action items (the CRD's CEL rule holds a completion to that too).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence
from typing import Any, Final

from incidentops.domain.postmortem import ASSESSMENT_KEY, DRAFT_KEY, FACTS_KEY
from incidentops.plugin.connection import PluginError

__all__ = ["ITEM_KEYS", "document_key", "draft_ref", "no_draft", "parse_action_item", "postmortem_value"]

Body = dict[str, Any]

ITEM_KEYS: Final = ("title", "owner", "due", "url")
"""What ``--action-item`` takes: ``title=...;owner=...[;due=YYYY-MM-DD][;url=https://...]``."""

_URL: Final = re.compile(r"^https?://[^\s]+$")


def parse_action_item(text: str) -> Body:
    """``title=Alert on 502s;owner=bob;due=2026-12-09;url=https://tracker/1`` as a ``spec.postmortem.actionItems``
    entry; a clear error for anything else."""
    item: Body = {}
    for part in (p.strip() for p in text.split(";") if p.strip()):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or key not in ITEM_KEYS:
            raise PluginError(f"--action-item {text!r}: expected {';'.join(f'{k}=...' for k in ITEM_KEYS)}")
        item[key] = value
    for required in ("title", "owner"):
        if not item.get(required):
            raise PluginError(f"--action-item {text!r}: needs {required}=...")
    if len(item["title"]) > 256 or len(item["owner"]) > 253:
        raise PluginError(f"--action-item {text!r}: the title is at most 256 characters, the owner 253")
    out: Body = {"title": item["title"], "owner": item["owner"]}
    if item.get("due"):
        try:
            out["dueBy"] = datetime.date.fromisoformat(item["due"]).isoformat()
        except ValueError:
            raise PluginError(f"--action-item {text!r}: due must be a date, YYYY-MM-DD") from None
    if item.get("url"):
        if not _URL.match(item["url"]):
            raise PluginError(f"--action-item {text!r}: url must be an http(s) URL")
        out["url"] = item["url"]
    return out


def postmortem_value(body: Body, *, draft: bool, complete: bool, url: str | None, items: Sequence[Body]) -> Body | None:
    """The new ``spec.postmortem``: the current one with the draft request, the completion, the URL and the
    action items added; None when it would not change."""
    spec = body.get("spec") or {}
    current: Body = dict(spec.get("postmortem") or {})
    new = dict(current)
    if draft:
        new["draft"] = True
    if url is not None:
        if not _URL.match(url):
            raise PluginError(f"--url {url!r}: must be an http(s) URL")
        new["url"] = url
    if items:
        known = list(current.get("actionItems") or [])
        new["actionItems"] = known + [i for i in items if i not in known]
    if complete:
        if not new.get("url") and not new.get("actionItems"):
            raise PluginError("a completed post-mortem needs --url or at least one --action-item")
        new["completed"] = True
    return None if new == current else new


def draft_ref(body: Body) -> str | None:
    """The ConfigMap of the incident's draft (a drill's assessment), once the operator has written it."""
    status = body.get("status") or {}
    record = status.get("assessment") if (body.get("spec") or {}).get("drill") else status.get("postmortem")
    ref = (record or {}).get("ref")
    return str(ref) if ref else None


def document_key(body: Body, output: str) -> str:
    """The ConfigMap key to print: the Markdown, or the facts it was rendered from (``-o json``)."""
    if output == "json":
        return FACTS_KEY
    return ASSESSMENT_KEY if (body.get("spec") or {}).get("drill") else DRAFT_KEY


def no_draft(body: Body) -> str:
    """Why there is nothing to print yet, and what to do."""
    name = (body.get("metadata") or {}).get("name")
    status = body.get("status") or {}
    phase = status.get("phase") or "Triggered"
    drill = bool((body.get("spec") or {}).get("drill"))
    what = "assessment" if drill else "post-mortem draft"
    if phase not in ("Resolved", "Closed"):
        return f'incident "{name}" is {phase}: its {what} is written when it is resolved'
    state = (status.get("postmortem") or {}).get("state")
    if not drill and state == "NotRequired":
        return (
            f'incident "{name}" needs no post-mortem (its severity\'s is optional); '
            f"ask for a draft with: kubectl incident postmortem {name} --draft"
        )
    return f'incident "{name}": the {what} is being written; try again in a moment'
