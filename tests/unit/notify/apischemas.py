"""Small checks of the payload shapes the receiving APIs document.

Each returns a list of problems (empty = valid). They are written from the
APIs' documentation (PagerDuty Events API v2 OpenAPI, Slack Block Kit
reference, our webhook contract), not from our own code, so a payload that
drifts from the API fails here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from incidentops.notify.base import EVENTS

# --- PagerDuty Events API v2 -------------------------------------------------------

PD_ACTIONS = {"trigger", "acknowledge", "resolve"}
PD_SEVERITIES = {"critical", "error", "warning", "info"}
PD_TOP = {"routing_key", "event_action", "dedup_key", "payload", "client", "client_url", "links", "images"}
PD_PAYLOAD = {"summary", "source", "severity", "timestamp", "component", "group", "class", "custom_details"}


def _is_datetime(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def check_pagerduty_event(event: Any) -> list[str]:
    problems: list[str] = []
    if not isinstance(event, dict):
        return ["event is not an object"]
    problems += [f"unknown field {k!r}" for k in set(event) - PD_TOP]
    if not isinstance(event.get("routing_key"), str) or len(event["routing_key"]) != 32:
        problems.append("routing_key must be a 32-character string")
    action = event.get("event_action")
    if action not in PD_ACTIONS:
        problems.append(f"event_action {action!r} not in {sorted(PD_ACTIONS)}")
    dedup = event.get("dedup_key")
    if dedup is None and action != "trigger":
        problems.append("dedup_key is required unless event_action is trigger")
    if dedup is not None and (not isinstance(dedup, str) or not dedup or len(dedup) > 255):
        problems.append("dedup_key must be a string of 1 to 255 characters")
    payload = event.get("payload")
    if action == "trigger":
        if not isinstance(payload, dict):
            return [*problems, "payload is required for trigger"]
        problems += [f"unknown payload field {k!r}" for k in set(payload) - PD_PAYLOAD]
        summary = payload.get("summary")
        if not isinstance(summary, str) or not summary or len(summary) > 1024:
            problems.append("payload.summary must be a string of 1 to 1024 characters")
        if not isinstance(payload.get("source"), str) or not payload["source"]:
            problems.append("payload.source is required")
        if payload.get("severity") not in PD_SEVERITIES:
            problems.append(f"payload.severity {payload.get('severity')!r} not in {sorted(PD_SEVERITIES)}")
        if "timestamp" in payload and not _is_datetime(payload["timestamp"]):
            problems.append("payload.timestamp must be an ISO 8601 date-time")
        for name in ("component", "group", "class"):
            if name in payload and not isinstance(payload[name], str):
                problems.append(f"payload.{name} must be a string")
        if "custom_details" in payload and not isinstance(payload["custom_details"], dict):
            problems.append("payload.custom_details must be an object")
    else:
        for name in ("client", "client_url"):
            if name in event:
                problems.append(f"{name} is for trigger events only")
    for link in event.get("links", []):
        if not isinstance(link, dict) or not isinstance(link.get("href"), str):
            problems.append("links[] need an href")
    return problems


# --- Slack incoming webhook with Block Kit --------------------------------------------

SLACK_BLOCK_TYPES = {"header", "section", "context", "divider", "actions", "image", "rich_text"}


def _text_object(obj: Any, where: str, *, limit: int, plain_only: bool = False) -> list[str]:
    if not isinstance(obj, dict):
        return [f"{where} is not a text object"]
    allowed = {"plain_text"} if plain_only else {"plain_text", "mrkdwn"}
    problems = []
    if obj.get("type") not in allowed:
        problems.append(f"{where}.type {obj.get('type')!r} not in {sorted(allowed)}")
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        problems.append(f"{where}.text must be a non-empty string")
    elif len(text) > limit:
        problems.append(f"{where}.text longer than {limit}")
    if "emoji" in obj and obj.get("type") != "plain_text":
        problems.append(f"{where}.emoji is only for plain_text")
    return problems


def check_slack_message(message: Any) -> list[str]:
    if not isinstance(message, dict):
        return ["message is not an object"]
    problems: list[str] = []
    if "text" not in message and "blocks" not in message:
        problems.append("text or blocks required")
    if "text" in message and not isinstance(message["text"], str):
        problems.append("text must be a string")
    blocks = message.get("blocks", [])
    if not isinstance(blocks, list) or len(blocks) > 50:
        return [*problems, "blocks must be a list of at most 50"]
    for n, block in enumerate(blocks):
        where = f"blocks[{n}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind not in SLACK_BLOCK_TYPES:
            problems.append(f"{where}.type {kind!r} is not a Block Kit block")
            continue
        if "block_id" in block and (not isinstance(block["block_id"], str) or len(block["block_id"]) > 255):
            problems.append(f"{where}.block_id too long")
        if kind == "header":
            problems += _text_object(block.get("text"), f"{where}.text", limit=150, plain_only=True)
        elif kind == "section":
            if "text" not in block and "fields" not in block:
                problems.append(f"{where} needs text or fields")
            if "text" in block:
                problems += _text_object(block["text"], f"{where}.text", limit=3000)
            fields = block.get("fields", [])
            if not isinstance(fields, list) or len(fields) > 10:
                problems.append(f"{where}.fields must be a list of at most 10")
            else:
                for m, f in enumerate(fields):
                    problems += _text_object(f, f"{where}.fields[{m}]", limit=2000)
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
                problems.append(f"{where}.elements must hold 1 to 10 elements")
            else:
                for m, e in enumerate(elements):
                    problems += _text_object(e, f"{where}.elements[{m}]", limit=3000)
    return problems


# --- our webhook ---------------------------------------------------------------------

WEBHOOK_INCIDENT = {
    "name": str,
    "namespace": str,
    "uid": str,
    "title": str,
    "severity": str,
    "phase": str,
    "episode": int,
}


def _strings_and_time(payload: dict[str, Any], *names: str) -> list[str]:
    problems = [
        f"{name} must be a non-empty string"
        for name in ("key", "message", "subject", "channel", *names)
        if not isinstance(payload.get(name), str) or not payload[name]
    ]
    if not _is_datetime(payload.get("at")):
        problems.append("at must be an RFC 3339 date-time")
    return problems


def check_report_payload(payload: dict[str, Any]) -> list[str]:
    """A policy's periodic report (``event: report``): no incident, the period and the report instead."""
    problems = _strings_and_time(payload, "policy", "period")
    if not isinstance(payload.get("report"), dict):
        problems.append("report must be an object")
    return problems


def check_webhook_payload(payload: Any) -> list[str]:
    if not isinstance(payload, dict):
        return ["payload is not an object"]
    if payload.get("event") == "report":
        return check_report_payload(payload)
    problems: list[str] = []
    if payload.get("event") not in EVENTS:
        problems.append(f"event {payload.get('event')!r} unknown")
    problems += _strings_and_time(payload)
    if not isinstance(payload.get("drill"), bool):
        problems.append("drill must be a boolean")
    if "level" not in payload or not (payload["level"] is None or isinstance(payload["level"], int)):
        problems.append("level must be an integer or null")
    if "levelName" not in payload or not (payload["levelName"] is None or isinstance(payload["levelName"], str)):
        problems.append("levelName must be a string or null")
    incident = payload.get("incident")
    if not isinstance(incident, dict):
        return [*problems, "incident must be an object"]
    for name, kind in WEBHOOK_INCIDENT.items():
        if not isinstance(incident.get(name), kind):
            problems.append(f"incident.{name} must be {kind.__name__}")
    if incident.get("severity") not in {"P1", "P2", "P3", "P4"}:
        problems.append("incident.severity must be P1..P4")
    return problems
