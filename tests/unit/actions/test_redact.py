"""Properties of redaction (``incidentops.actions.redact``): a planted secret of each shape never survives,
in log text, JSON manifests, annotations, env and args; redaction is idempotent; ordinary text is kept.

Secrets are drawn from a true random source (``st.randoms(use_true_random=True)``): a shrunk "random"
token of all zeros is no secret, and the rules are meant for real ones.
"""

from __future__ import annotations

import base64
import json
import random
import string
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from incidentops.actions.redact import MARKER, is_credential_name, redact_object, redact_text

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

B62 = string.ascii_letters + string.digits
B64 = B62 + "+/"
B64URL = B62 + "-_"


def _pick(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# Each maker returns (text to plant, the part that must not survive).
Maker = Callable[[random.Random], tuple[str, str]]


def jwt(rng: random.Random) -> tuple[str, str]:
    header = _b64url(json.dumps({"alg": rng.choice(["HS256", "RS256", "ES256"]), "typ": "JWT"}).encode())
    claims = {"sub": _pick(rng, B62, rng.randint(4, 20)), "iat": rng.randint(10**9, 2 * 10**9)}
    token = f"{header}.{_b64url(json.dumps(claims).encode())}.{_b64url(rng.randbytes(32))}"
    return token, token


def bearer(rng: random.Random) -> tuple[str, str]:
    token = _pick(rng, B64URL + ".~", rng.randint(12, 60))
    return f"{rng.choice(['Bearer', 'bearer', 'BEARER'])} {token}", token


def basic(rng: random.Random) -> tuple[str, str]:
    creds = base64.b64encode(f"{_pick(rng, B62, 6)}:{_pick(rng, B62, rng.randint(6, 16))}".encode()).decode()
    return f"Basic {creds}", creds


def pem(rng: random.Random) -> tuple[str, str]:
    label = rng.choice(["", "RSA ", "EC ", "OPENSSH ", "ENCRYPTED "]) + "PRIVATE KEY"
    body = base64.b64encode(rng.randbytes(rng.randint(48, 300))).decode()
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN {label}-----\n{lines}\n-----END {label}-----", body[:40]


def aws_access_key(rng: random.Random) -> tuple[str, str]:
    key = rng.choice(["AKIA", "ASIA"]) + _pick(rng, string.ascii_uppercase + string.digits, 16)
    return key, key


def aws_secret_key(rng: random.Random) -> tuple[str, str]:
    key = _pick(rng, B64, 40)
    return key, key


def github(rng: random.Random) -> tuple[str, str]:
    token = rng.choice(
        [f"gh{rng.choice('pousr')}_{_pick(rng, B62, 36)}", f"github_pat_{_pick(rng, B62 + '_', rng.randint(22, 82))}"]
    )
    return token, token


def slack(rng: random.Random) -> tuple[str, str]:
    token = f"xox{rng.choice('bpa')}-{rng.randint(10**9, 10**12)}-{rng.randint(10**9, 10**12)}-{_pick(rng, B62, 24)}"
    return token, token


def slack_webhook(rng: random.Random) -> tuple[str, str]:
    path = f"T{_pick(rng, string.ascii_uppercase + string.digits, 8)}/B{_pick(rng, string.ascii_uppercase, 8)}"
    secret = _pick(rng, B62, 24)
    return f"https://hooks.slack.com/services/{path}/{secret}", secret


def url_password(rng: random.Random) -> tuple[str, str]:
    password = _pick(rng, B62 + "!$%*-._~", rng.randint(8, 24))
    scheme = rng.choice(["https", "postgres", "mongodb+srv", "redis", "amqp"])
    return f"{scheme}://{_pick(rng, string.ascii_lowercase, 5)}:{password}@db.example.com:5432/app", password


def high_entropy(rng: random.Random) -> tuple[str, str]:
    # The documented class: 32+ characters with an upper-case letter, a lower-case letter and a digit.
    chars = [rng.choice(string.ascii_uppercase), rng.choice(string.ascii_lowercase), rng.choice(string.digits)]
    chars += [rng.choice(B64URL) for _ in range(rng.randint(29, 61))]
    rng.shuffle(chars)
    token = "".join(chars)
    return token, token


SHAPES: dict[str, Maker] = {
    "jwt": jwt,
    "bearer": bearer,
    "basic": basic,
    "pem": pem,
    "aws-access-key": aws_access_key,
    "aws-secret-key": aws_secret_key,
    "github": github,
    "slack": slack,
    "slack-webhook": slack_webhook,
    "url-password": url_password,
    "high-entropy": high_entropy,
}

# Ordinary words to surround a planted secret; none is a credential word.
WORDS = ["GET", "/api/v1/orders", "200", "12ms", "level=info", "msg", "started", "cart-7d9-abc", "ok", "->", "#1"]
# What may stand right before or after a secret in text: never a character a token is made of.
DELIMITERS = [" ", "\t", "\n", "=", ": ", '"', "'", "(", ")", ",", ";", "[", "]", "<", ">", " | "]


@st.composite
def secrets(draw: st.DrawFn) -> tuple[str, str, str]:
    name = draw(st.sampled_from(sorted(SHAPES)))
    rng = draw(st.randoms(use_true_random=True))
    planted, core = SHAPES[name](rng)
    return name, planted, core


@st.composite
def in_text(draw: st.DrawFn, planted: str) -> str:
    before = " ".join(draw(st.lists(st.sampled_from(WORDS), max_size=4)))
    after = " ".join(draw(st.lists(st.sampled_from(WORDS), max_size=4)))
    return before + draw(st.sampled_from(DELIMITERS)) + planted + draw(st.sampled_from(DELIMITERS)) + after


@st.composite
def credential_names(draw: st.DrawFn) -> str:
    word = draw(st.sampled_from(["TOKEN", "password", "Passwd", "SECRET", "api_key", "Credential", "AUTH", "creds"]))
    prefix = draw(st.sampled_from(["", "DB_", "AWS_", "x-", "github.", "my"]))
    suffix = draw(st.sampled_from(["", "_FILE_VALUE", "-v2", "s", ".prod"]))
    return prefix + word + suffix


# Values only the name gives away: short, unremarkable, yet never anywhere else in the output.
plain_values = st.randoms(use_true_random=True).map(lambda rng: "v" + _pick(rng, B62, 10))


def manifest(env: list[dict[str, Any]], annotations: dict[str, str], args: list[str]) -> dict[str, Any]:
    container = {"name": "app", "image": "registry.example.com/shop/cart:1.4.2", "env": env, "args": args}
    pod_spec = {"containers": [container]}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "cart", "namespace": "shop", "annotations": annotations},
        "spec": {"template": {"spec": pod_spec}},
    }


def dumps(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


# --- a planted secret never survives --------------------------------------------------------------------


@PROPERTY
@given(secret=secrets(), data=st.data())
def test_a_secret_of_every_shape_is_gone_from_log_text(secret: tuple[str, str, str], data: st.DataObject) -> None:
    name, planted, core = secret
    text = data.draw(in_text(planted))
    out = redact_text(text)
    assert core not in out, (name, text, out)
    assert MARKER in out


@PROPERTY
@given(secret=secrets(), data=st.data())
def test_a_secret_of_every_shape_is_gone_from_every_place_in_a_manifest(
    secret: tuple[str, str, str], data: st.DataObject
) -> None:
    name, planted, core = secret
    line = data.draw(in_text(planted))
    env = [{"name": "MODE", "value": planted}, {"name": "CMD", "value": line}]
    body = manifest(env, {"example.com/note": line, "example.com/raw": planted}, ["--url", planted, line])
    # kubectl apply keeps the whole object as JSON in an annotation: the secret is in there again.
    body["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = json.dumps(body) + "\n"
    out = dumps(redact_object(body))
    assert core not in out, (name, out)


@PROPERTY
@given(secret=secrets(), data=st.data())
def test_a_secret_is_gone_from_an_event_message_and_alert_labels(
    secret: tuple[str, str, str], data: st.DataObject
) -> None:
    _, planted, core = secret
    event = {"kind": "Event", "reason": "BackOff", "message": data.draw(in_text(planted)), "count": 3}
    alerts = {"source": {"kind": "alertmanager", "labels": {"alertname": "Down", "runbook": planted}}}
    out = dumps(redact_object({"event": event, "alerts": alerts}))
    assert core not in out


@PROPERTY
@given(name=credential_names(), value=plain_values)
def test_a_value_under_a_credential_name_is_gone_everywhere(name: str, value: str) -> None:
    env = [{"name": name, "value": value}]
    body = manifest(env, {f"example.com/{name.lower()}": value}, [f"--{name.lower()}", value, f"--{name}={value}"])
    body["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = json.dumps(body)
    assert value not in dumps(redact_object(body))
    for text in (f"{name}={value}", f"{name} = '{value}'", f'"{name}": "{value}"', f"{name}: {value}"):
        assert value not in redact_text(f"starting with {text} and more"), text


@pytest.mark.parametrize(
    "name", ["DB_PASSWORD", "api_key", "GITHUB_TOKEN", "client-secret", "AUTHORIZATION", "aws_secret_access_key"]
)
def test_names_that_are_credentials(name: str) -> None:
    assert is_credential_name(name)


@pytest.mark.parametrize("name", ["MODE", "PORT", "LOG_LEVEL", "HOSTNAME", "PATH", "PWD", "image"])
def test_names_that_are_not(name: str) -> None:
    assert not is_credential_name(name)


def test_an_env_var_from_a_secret_keeps_its_reference_only() -> None:
    env = [{"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]
    volumes = [{"name": "tls", "secret": {"secretName": "cart-tls", "items": [{"key": "tls.key", "path": "k"}]}}]
    body = {"spec": {"containers": [{"name": "app", "env": env}], "volumes": volumes}}
    assert redact_object(body) == body  # names of Secrets and keys are what an investigator needs


def test_an_authorization_header_of_a_probe_is_a_name_value_pair() -> None:
    probe = {"httpGet": {"path": "/healthz", "httpHeaders": [{"name": "Authorization", "value": "let-me-in"}]}}
    assert redact_object(probe)["httpGet"]["httpHeaders"][0] == {"name": "Authorization", "value": MARKER}


def test_a_cookie_header_loses_every_cookie_of_its_line() -> None:
    out = redact_text("> Cookie: sid=abc123; theme=dark; csrftoken=zz9\n> Accept: */*")
    assert out == f"> Cookie: {MARKER}\n> Accept: */*"


def test_a_truncated_private_key_loses_everything_after_its_header() -> None:
    out = redact_text("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx1\nMIIEowIBAAKC")
    assert out == f"-----BEGIN RSA PRIVATE KEY-----{MARKER}"


# --- idempotent -------------------------------------------------------------------------------------------


fragments = st.one_of(
    st.sampled_from(WORDS + DELIMITERS + [MARKER, "password=", "token: ", "Bearer ", "https://u:", "@", "--key"]),
    secrets().map(lambda s: s[1]),
    st.text(max_size=12),
)


@PROPERTY
@given(parts=st.lists(fragments, max_size=12))
def test_redacting_text_twice_changes_nothing(parts: list[str]) -> None:
    once = redact_text("".join(parts))
    assert redact_text(once) == once


@PROPERTY
@given(text=st.text())
def test_redacting_any_text_twice_changes_nothing(text: str) -> None:
    once = redact_text(text)
    assert redact_text(once) == once


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | fragments | st.lists(fragments, max_size=4).map("".join),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["name", "value", "password", "key", "args", "note", "a"]), children, max_size=4
        )
    ),
    max_leaves=12,
)


@PROPERTY
@given(value=json_values)
def test_redacting_json_twice_changes_nothing(value: Any) -> None:
    once = redact_object(value)
    assert redact_object(once) == once
    # A JSON document inside a string (last-applied-configuration) too.
    nested = redact_object({"annotation": json.dumps(value)})
    assert redact_object(nested) == nested


# --- ordinary text is kept ---------------------------------------------------------------------------------

ORDINARY = [
    "GET /api/v1/orders?page=2 200 12ms",
    '{"level":"info","ts":"2024-05-01T12:00:00Z","msg":"listening","addr":":8080"}',
    "registry.k8s.io/ingress-nginx/controller:v1.9.4@sha256:"
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "Successfully assigned shop/cart-7d9f8b6c4-x2x9z to kwok-node-0",
    "Scaled up replica set cart-7d9f8b6c4 from 0 to 3",
    "containerd://4bf92f3577b34da6a3ce929d0e0e47364bf92f3577b34da6a3ce929d0e0e4736",
    "traceparent=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "java.lang.IllegalStateException: AbstractAnnotationConfigDispatcherServletInitializer failed",
    "connecting to https://auth.example.com:8443/login as user bob",
    "FailedCreatePodSandBox ReplicaSetCreateError ErrImagePull CrashLoopBackOff",
    "Readiness probe failed: HTTP probe failed with statuscode: 503",
]


@pytest.mark.parametrize("line", ORDINARY)
def test_ordinary_lines_are_kept(line: str) -> None:
    assert redact_text(line) == line


k8s_names = st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?\Z")


@PROPERTY
@given(
    name=k8s_names,
    uid=st.uuids(),
    digest=st.binary(min_size=32, max_size=32).map(bytes.hex),
    words=st.lists(st.sampled_from(WORDS), max_size=8),
)
def test_names_uids_digests_and_plain_words_are_kept(name: str, uid: Any, digest: str, words: list[str]) -> None:
    line = f"pod {name}-{str(uid)[:5]} uid={uid} image=nginx@sha256:{digest} " + " ".join(words)
    assert redact_text(line) == line
    obj = {"metadata": {"name": name, "uid": str(uid), "labels": {"app": name}}, "status": {"imageID": digest}}
    assert redact_object(obj) == obj


@pytest.mark.parametrize(
    "unit", ["a=", "x: ", "password=", 'token="', "Bearer ", "https://u:", "A/", "-----BEGIN PRIVATE KEY-----", '"']
)
def test_hostile_text_costs_linear_time(unit: str) -> None:
    """A log is whatever a Pod printed: 200 KB of one repeated fragment must not take quadratic time (which
    would be minutes here; linear is well under a second)."""
    text = unit * (200_000 // len(unit))
    started = time.perf_counter()
    once = redact_text(text)
    assert time.perf_counter() - started < 5
    assert redact_text(once) == once
