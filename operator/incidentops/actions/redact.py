"""Redaction: what makes a collected object or log fit to be stored as evidence.

Where it sits: ``evidence.py`` passes every JSON document it collects (manifests, Events, alert data)
through :func:`redact_object` and every log through :func:`redact_text`, before anything is hashed or
stored; nothing unredacted leaves memory. Pure: no I/O, no clock. Secret objects are never read at all
(``evidence.py`` has no code path that could), so what this module sees is what Pods, workloads, Events
and alerts say in the open; an env var taken from a Secret (``valueFrom.secretKeyRef``) appears only as
the reference, never as a value.

What is replaced by :data:`MARKER`:

- **By name** (case-insensitive; :func:`is_credential_name`): a name containing ``TOKEN``, ``PASSWORD``,
  ``PASSWD``, ``PASSPHRASE``, ``SECRET``, ``KEY``, ``CREDENTIAL``, ``CREDS``, ``AUTH``, ``PRIVATE``,
  ``COOKIE``, ``SESSION``, ``SIGNATURE`` or ``DSN`` marks its value as a credential:

  - in JSON, an entry ``{"name": N, "value": V}`` (env vars, HTTP probe headers) loses ``V``; a key
    (annotation, label, any field) with a string value, or a list of strings, loses them, except the
    Kubernetes fields in :data:`_SCHEMA_KEYS` whose values are names, not secrets (``secretKeyRef.key``,
    ``secretName``, ``topologyKey``, ``sessionAffinity``); in a list of strings (``command``, ``args``) the
    element after a flag such as ``--db-password`` is replaced;
  - in text: the value in ``NAME=value``, ``NAME = "value"``, ``NAME: value`` (a colon followed by a space
    or a quote), ``"NAME": "value"``; an ``Authorization: Bearer x`` value as a whole; a cookie header
    to the end of its line.

- **By shape**, anywhere in any string (also in JSON keys): PEM private key blocks (the body between the
  BEGIN and END lines, or to the end when the END is cut off), JWTs, ``Bearer``/``Basic`` credentials,
  the password of a URL's ``user:password@``, AWS access key ids (``AKIA``, ``ASIA``, ...) and 40-character
  secret keys, GitHub (``ghp_`` ..., ``github_pat_``), GitLab, Slack (``xox?-``, webhook paths), Google API,
  Stripe, npm, PyPI and SendGrid tokens, and long high-entropy strings: a run of 32 or more base64/base62
  characters (``A-Z a-z 0-9 + _ -``, ``=`` padding) holding an upper-case letter, a lower-case letter and a
  digit, with a character entropy of at least 3.5 bits.

- A string that is a JSON object or array (``kubectl.kubernetes.io/last-applied-configuration``) is
  redacted as JSON, so an env var in it loses its value by name as well; it is re-encoded only if
  something in it changed.

The rules are idempotent (redacting redacted output changes nothing) and the marker never matches a rule.

False-positive boundaries (what is redacted although harmless, and what is kept):

- Kept: plain log lines, image names and digests (``sha256:`` + hex), UIDs, UUIDs, Pod and ReplicaSet
  names (lower-case), hex strings of any length (git SHAs, trace ids, container ids: they have no upper-case
  letter), CamelCase words without digits (Event reasons, class names), URLs without a password, ``host:port``.
- Redacted although harmless: any value under a credential-like name, since a name is all we have to go
  on: ``KEYCLOAK_URL``, ``AUTHOR``, ``SESSION_TIMEOUT``, ``cache_key=user:42``, ``monkey=3``, the path
  after ``--key-file``, a label ``auth-proxy: enabled``; long mixed-case strings with digits (base64 of
  harmless data, a 32-character ``CamelCase2`` identifier).
- Not found: secrets that look like nothing (``hunter2`` with no name before it), hex-only keys without
  a name, a password given as a separate word after a space in free text (``-p hunter2``), secrets split
  across log lines.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Callable
from typing import Any, Final

__all__ = ["MARKER", "RULES_VERSION", "is_credential_name", "redact_object", "redact_text"]

MARKER: Final = "[REDACTED]"
"""What a secret is replaced with."""

RULES_VERSION: Final = "incidentops/redact/v1"
"""Names this set of rules; recorded in every evidence manifest, so a reader knows what was applied."""

_WORDS = re.compile(
    r"TOKEN|PASSW(?:OR)?D|PASSPHRASE|SECRET|KEY|CREDENTIAL|CREDS|AUTH|PRIVATE|COOKIE|SESSION|SIGNATURE|DSN",
    re.IGNORECASE,
)

# Kubernetes fields whose names contain a credential word but whose values are names of things:
# secretKeyRef.key / tolerations[].key / matchExpressions[].key, volumes[].secret.secretName, ...
_SCHEMA_KEYS: Final = frozenset({"key", "topologyKey", "secretName", "sessionAffinity"})


def is_credential_name(name: str) -> bool:
    """Whether ``name`` (an env var, a key, a flag) says its value is a credential."""
    return _WORDS.search(name) is not None


# --- text ----------------------------------------------------------------------------------------------
#
# While the rules run, every replacement made (and every marker already in the text) stands in the text
# as one placeholder character, from Unicode's private use plane, that the text does not contain. No rule
# takes a placeholder for part of a token, so a later rule cannot eat into an earlier one's replacement
# (a long run of letters glued to the END line of a redacted private key), while rules that read context
# still see something there (``Authorization: <placeholder>``). Redacting redacted text then sees the
# same placeholders where the first pass made them: that is what keeps the rules idempotent.


class _Placeholders:
    """One placeholder character per distinct replacement, none of them in the text."""

    def __init__(self, text: str) -> None:
        self._taken = set(text)
        self._next = 0xF0000
        self._chars: dict[str, str] = {}

    def __call__(self, replacement: str) -> str:
        char = self._chars.get(replacement)
        if char is None:
            while chr(self._next) in self._taken:
                self._next += 1
            char = self._chars[replacement] = chr(self._next)
            self._next += 1
        return char

    def expand(self, text: str) -> str:
        return text.translate({ord(char): replacement for replacement, char in self._chars.items()})


Rule = Callable[[str, _Placeholders], str]


def _replaced(pattern: re.Pattern[str], keep: str | None = None) -> Rule:
    """Every match of ``pattern`` becomes the marker; the named group ``keep`` (context) is kept before it."""

    def rule(text: str, mark: _Placeholders) -> str:
        marker = mark(MARKER)
        if keep is None:
            return pattern.sub(marker, text)
        return pattern.sub(lambda m: m[keep] + marker, text)

    return rule


def _checked(pattern: re.Pattern[str], is_secret: Callable[[str], bool]) -> Rule:
    """Every match of ``pattern`` that ``is_secret`` says is one becomes the marker."""

    def rule(text: str, mark: _Placeholders) -> str:
        marker = mark(MARKER)
        return pattern.sub(lambda m: marker if is_secret(m[0]) else m[0], text)

    return rule


_PEM = re.compile(
    r"-----BEGIN (?P<label>[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?)-----"
    r"(?P<body>.*?)"
    r"(?:(?P<end>-----END (?P=label)-----)|\Z)",
    re.DOTALL,
)


def _pem(text: str, mark: _Placeholders) -> str:
    # The whole block is one placeholder: its END line must stay whole, or a second pass would take the
    # block for a cut-off one and redact everything after it.
    def block(match: re.Match[str]) -> str:
        label = match["label"]
        end = f"-----END {label}-----" if match["end"] else ""
        return mark(f"-----BEGIN {label}-----{MARKER}{end}")

    return _PEM.sub(block, text)


# Header and payload are base64url JSON objects, so a JWT starts with eyJ ('{"').
_JWT = re.compile(r"eyJ(?<![A-Za-z0-9_-]...)[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")

# Each after its literal prefix, a lookbehind as wide as the prefix plus one: the character before the
# token is no token character. (A lookbehind first would cost the regex engine its fast literal scan.)
_TOKENS = tuple(
    re.compile(p)
    for p in (
        r"(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|APKA|AROA|ASCA)(?<![A-Z0-9].{4})[A-Z0-9]{16}(?![A-Z0-9])",
        r"gh[pousr]_(?<![A-Za-z0-9_].{4})[A-Za-z0-9]{36,255}",
        r"github_pat_(?<![A-Za-z0-9_].{11})[A-Za-z0-9_]{22,255}",
        r"glpat-(?<![A-Za-z0-9_].{6})[A-Za-z0-9_-]{20,}",
        r"xox[abposr]-(?<![A-Za-z0-9].{5})[A-Za-z0-9-]{10,}",
        r"xapp-(?<![A-Za-z0-9].{5})[0-9]+-[A-Za-z0-9-]{10,}",
        r"AIza(?<![A-Za-z0-9].{4})[0-9A-Za-z_-]{35}",
        r"(?:sk|rk)_(?:live|test)_(?<![A-Za-z0-9].{8})[0-9A-Za-z]{16,}",
        r"npm_(?<![A-Za-z0-9_].{4})[A-Za-z0-9]{36}",
        r"pypi-AgEIcHlwaS5vcmc(?<![A-Za-z0-9].{20})[A-Za-z0-9_-]{50,}",
        r"SG\.(?<![A-Za-z0-9].{3})[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}",
    )
)

_SLACK_WEBHOOK = re.compile(r"(?P<head>https://hooks\.slack\.com/(?:services|workflows|triggers)/)[A-Za-z0-9/_-]+")

# An AWS secret access key: 40 characters of base64 with '/' and '+', in upper and lower case.
_AWS_SECRET = re.compile(r"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])")

# scheme://user:password@host: greedy up to the last '@' before the path (an unencoded '@' in a password).
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/:@?#\"'<>]*:)[^\s/?#\"'<>]+(?=@)")

_BEARER = re.compile(r"(?P<head>\b(?:[Bb]earer|BEARER|[Bb]asic|BASIC)\s+)[A-Za-z0-9._~+/-]{8,}=*")

# A cookie header carries several credentials (a=1; b=2): the rest of its line goes.
_COOKIE_HEADER = re.compile(r"(?im)(?P<head>\b(?:set-)?cookie[ \t]*:[ \t]*)[^\r\n]+")

# NAME then '=' (spaces allowed), ': ' or ':"'. The name is a bounded run matched whole and checked for a
# credential word in Python, so a long run of letters costs linear time, not a backtracking search for the
# word inside it; the value is matched only after a credential name (a=a=a=... stays linear too).
_NAME_SEP = re.compile(
    r"(?<![A-Za-z0-9_.-])(?P<name>[A-Za-z0-9_.-]{1,128})"
    r"(?P<sep>[\"']?(?:[ \t]*=[ \t]*|[ \t]*:(?:[ \t]+|(?=[\"']))))"
)
# A quoted value, or a word (with an auth scheme before it).
_VALUE = re.compile(
    r"\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*'"
    r"|(?:(?:[Bb]earer|BEARER|[Bb]asic|BASIC|[Tt]oken)[ \t]+)?[^\s\"',;&)}\]<>]+"
)


def _name_values(text: str, mark: _Placeholders) -> str:
    marker = mark(MARKER)
    out: list[str] = []
    done = pos = 0
    while (match := _NAME_SEP.search(text, pos)) is not None:
        pos = match.end()  # on a name that is no credential, its value may itself be a NAME=value
        if not is_credential_name(match["name"]) or (value := _VALUE.match(text, pos)) is None:
            continue
        quote = value[0][0] if value[0][0] in "\"'" else ""
        out += [text[done:pos], quote, marker, quote]
        done = pos = value.end()
    out.append(text[done:])
    return "".join(out)


_RUN = re.compile(r"(?<![A-Za-z0-9+_-])[A-Za-z0-9+_-]{32,}=*")


def _entropy(text: str) -> float:
    counts = Counter(text)
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _mixed_case(text: str) -> bool:
    return any(c.isupper() for c in text) and any(c.islower() for c in text)


def _is_aws_secret(run: str) -> bool:
    return _mixed_case(run) and _entropy(run) >= 4.0


def _is_high_entropy(run: str) -> bool:
    core = run.rstrip("=")
    # Upper, lower and a digit keep hex, names and CamelCase words; the entropy, degenerate runs (AAAA..a1).
    return _mixed_case(core) and any(c.isdigit() for c in core) and _entropy(core) >= 3.5


_TEXT_RULES: Final[tuple[Rule, ...]] = (
    _pem,
    _replaced(_JWT),
    *(_replaced(token) for token in _TOKENS),
    _replaced(_SLACK_WEBHOOK, keep="head"),
    _checked(_AWS_SECRET, _is_aws_secret),
    _replaced(_URL_PASSWORD, keep="head"),
    _replaced(_BEARER, keep="head"),
    _replaced(_COOKIE_HEADER, keep="head"),
    _name_values,
    _checked(_RUN, _is_high_entropy),
)


def redact_text(text: str) -> str:
    """``text`` with every secret the rules find (see the module doc) replaced by :data:`MARKER`."""
    mark = _Placeholders(text)
    text = text.replace(MARKER, mark(MARKER))
    for rule in _TEXT_RULES:
        text = rule(text, mark)
    return mark.expand(text)


# --- JSON -------------------------------------------------------------------------------------------


_FLAG = re.compile(r"--?[A-Za-z][A-Za-z0-9_.-]*")

# Decisions below are taken on redacted names and items, so a second pass (which sees only those) takes
# the same ones.


def _redact_list(items: list[Any]) -> list[Any]:
    out: list[Any] = []
    hide_next = False
    for item in items:
        redacted = _redact(item)
        if hide_next and isinstance(redacted, str) and not redacted.startswith("-"):
            redacted = MARKER  # the value of the flag before it: ["--db-password", "hunter2"]
            hide_next = False
        else:
            hide_next = isinstance(redacted, str) and bool(_FLAG.fullmatch(redacted)) and is_credential_name(redacted)
        out.append(redacted)
    return out


def _redact_string(text: str) -> str:
    stripped = text.strip()
    if stripped[:1] in ("{", "[") and stripped[-1:] in ("}", "]"):
        try:
            parsed = json.loads(stripped)
        except ValueError:
            pass
        else:
            if isinstance(parsed, dict | list):
                redacted = _redact(parsed)
                if redacted == parsed:
                    return text
                tail = "\n" if text.endswith("\n") else ""
                return json.dumps(redacted, separators=(",", ":"), ensure_ascii=False) + tail
    return redact_text(text)


def _redact_dict(obj: dict[str, Any]) -> dict[str, Any]:
    pair_name = obj.get("name")
    hide_value = (
        isinstance(pair_name, str) and isinstance(obj.get("value"), str) and is_credential_name(_redact(pair_name))
    )
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = redact_text(key)
        by_name = (key == "value" and hide_value) or (name not in _SCHEMA_KEYS and is_credential_name(name))
        if by_name and isinstance(value, str):
            redacted: Any = MARKER
        elif by_name and isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            redacted = [MARKER] * len(value)
        else:
            redacted = _redact(value)
        out[name] = redacted
    return out


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return _redact_string(value)
    if isinstance(value, dict):
        return _redact_dict(value)
    if isinstance(value, list):
        return _redact_list(value)
    return value


def redact_object(value: Any) -> Any:
    """A copy of the JSON value ``value`` with every secret the rules find replaced (see the module doc)."""
    return _redact(value)
