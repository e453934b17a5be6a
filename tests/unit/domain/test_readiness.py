"""A policy's Ready condition from facts about its channels' Secrets."""

from __future__ import annotations

import pytest

from incidentops.api import reasons
from incidentops.domain.readiness import SecretFacts, policy_readiness

from .builders import policy

LABELLED = {"incidentops.dev/channel-secret": "true"}

CHANNELS = [
    {"name": "slack", "slack": {"webhookSecretRef": {"name": "slack", "key": "url"}}},
    {
        "name": "mail",
        "email": {
            "to": ["a@example.com"],
            "from": "ops@example.com",
            "smtp": {"host": "smtp", "credentialsSecretRef": {"name": "smtp"}},
        },
    },
    {"name": "plain", "webhook": {"url": "http://hooks.test/x"}},
]


def facts(*keys: str, labels: dict[str, str] | None = None) -> SecretFacts:
    return SecretFacts(labels=LABELLED if labels is None else labels, keys=frozenset(keys))


def test_ready_when_every_secret_is_usable() -> None:
    p = policy("p", "team", channels=CHANNELS)
    ready = policy_readiness(p, {"slack": facts("url"), "smtp": facts("username", "password")})
    assert ready == (True, reasons.CHANNELS_READY, "all 3 channels can be used")


def test_a_policy_without_secrets_is_ready() -> None:
    p = policy("p", "team", channels=[CHANNELS[2]])
    assert policy_readiness(p, {})[0] is True


@pytest.mark.parametrize(
    ("secrets", "reason", "fragments"),
    [
        ({"smtp": facts("username", "password")}, reasons.SECRET_NOT_FOUND, ["channel slack", "Secret slack", "url"]),
        (
            {"slack": facts("url", labels={}), "smtp": facts("username", "password")},
            reasons.SECRET_NOT_LABELLED,
            ["channel slack", "Secret slack", "incidentops.dev/channel-secret"],
        ),
        (
            {
                "slack": facts("url", labels={"incidentops.dev/channel-secret": "false"}),
                "smtp": facts("username", "password"),
            },
            reasons.SECRET_NOT_LABELLED,
            ["Secret slack"],
        ),
        (
            {"slack": facts("other"), "smtp": facts("username", "password")},
            reasons.SECRET_KEY_MISSING,
            ["channel slack", "Secret slack", "no key url"],
        ),
        ({"slack": facts("url"), "smtp": facts("username")}, reasons.SECRET_KEY_MISSING, ["channel mail", "password"]),
    ],
)
def test_problems_name_channel_secret_and_key(
    secrets: dict[str, SecretFacts | None], reason: str, fragments: list[str]
) -> None:
    p = policy("p", "team", channels=CHANNELS)
    ready, got_reason, message = policy_readiness(p, secrets)
    assert ready is False
    assert got_reason == reason
    for fragment in fragments:
        assert fragment in message


def test_every_problem_is_listed_with_the_first_reason() -> None:
    p = policy("p", "team", channels=CHANNELS)
    ready, reason, message = policy_readiness(p, {"slack": None, "smtp": facts(labels={})})
    assert (ready, reason) == (False, reasons.SECRET_NOT_FOUND)
    assert "channel slack: Secret slack (key url) not found" in message
    # Both keys of the unlabelled Secret on one line, not two.
    assert message.count("Secret smtp") == 1
    assert "keys username, password" in message
