"""Pure logic of the plugin: times, the episode rule, stamps, names, patches, the declared object."""

from __future__ import annotations

import datetime
import json
import random

import pytest
from pydantic import ValidationError

from incidentops.api import Incident
from incidentops.domain import lifecycle
from incidentops.plugin import logic

UTC = datetime.UTC
NOW = datetime.datetime(2024, 5, 1, 12, 0, 0, 750000, tzinfo=UTC)


# --- times --------------------------------------------------------------------------------


def test_rfc3339_is_utc_whole_seconds() -> None:
    assert logic.rfc3339(NOW) == "2024-05-01T12:00:00Z"
    east = datetime.datetime(2024, 5, 1, 14, 0, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
    assert logic.rfc3339(east) == "2024-05-01T12:00:00Z"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T12:00:00Z", datetime.datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T12:00:00.123456Z", datetime.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)),
        ("2024-05-01T14:00:00+02:00", datetime.datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("", None),
        (None, None),
        ("yesterday", None),
        (42, None),
    ],
)
def test_parse_time(text: object, expected: datetime.datetime | None) -> None:
    assert logic.parse_time(text) == expected


# --- the episode rule ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "started", "episode", "counts"),
    [
        ("2024-05-01T12:00:00Z", None, None, True),  # no episode known yet: nothing to predate
        ("2024-05-01T12:00:00Z", "2024-05-01T12:00:00Z", 2, True),  # not before: counts
        ("2024-05-01T12:00:01Z", "2024-05-01T12:00:00Z", 2, True),
        ("2024-05-01T11:59:59Z", "2024-05-01T12:00:00Z", 2, False),  # before the reopen: history
        ("2024-05-01T12:00:00Z", "2024-05-01T12:00:00.5Z", 3, False),  # fractions matter
        # Episode 1: every `at` counts, as the operator decides (a clock a little behind, a late record).
        ("2024-05-01T11:59:59Z", "2024-05-01T12:00:00Z", 1, True),
        # No episode number: the start alone decides.
        ("2024-05-01T11:59:59Z", "2024-05-01T12:00:00Z", None, False),
        ("garbage", "2024-05-01T12:00:00Z", 1, False),
        (None, None, None, False),
    ],
)
def test_counts_in_episode(at: str | None, started: str | None, episode: int | None, counts: bool) -> None:
    assert logic.counts_in_episode(at, started, episode) is counts


def test_the_plugin_and_the_operator_agree_on_the_episode_rule() -> None:
    start = datetime.datetime(2024, 5, 1, 12, tzinfo=UTC)
    for episode in (1, 2, 5):
        for offset in (-3600, -1, 0, 1, 3600):
            at = start + datetime.timedelta(seconds=offset)
            assert logic.counts_in_episode(logic.rfc3339(at), logic.rfc3339(start), episode) is (
                lifecycle.counts_in_episode(at, episode, start)
            )


def _incident(spec: dict | None = None, status: dict | None = None) -> dict:
    return {
        "metadata": {"name": "x", "resourceVersion": "7"},
        "spec": {"title": "t", **(spec or {})},
        **({"status": status} if status is not None else {}),
    }


def test_current_record() -> None:
    ack = {"by": "alice", "at": "2024-05-01T12:00:00Z"}
    assert logic.current_record(_incident(), "acknowledgement") is None
    assert logic.current_record(_incident({"acknowledgement": ack}), "acknowledgement") == ack
    same = _incident({"acknowledgement": ack}, {"episode": 1, "episodeStartedAt": "2024-05-01T11:00:00Z"})
    assert logic.current_record(same, "acknowledgement") == ack
    late = _incident({"acknowledgement": ack}, {"episode": 1, "episodeStartedAt": "2024-05-01T12:00:05Z"})
    assert logic.current_record(late, "acknowledgement") == ack  # episode 1: counts
    reopened = _incident({"acknowledgement": ack}, {"episode": 2, "episodeStartedAt": "2024-05-01T13:00:00Z"})
    assert logic.current_record(reopened, "acknowledgement") is None
    assert logic.current_record(_incident({"acknowledgement": "odd"}), "acknowledgement") is None


# --- stamps --------------------------------------------------------------------------------


def test_stamp_is_now_in_whole_seconds() -> None:
    assert logic.stamp(NOW) == datetime.datetime(2024, 5, 1, 12, tzinfo=UTC)


def test_stamp_is_never_before_the_episode_start() -> None:
    # The episode started within the current second (or on a clock a little ahead): the new `at`
    # must still count for it.
    assert logic.stamp(NOW, not_before="2024-05-01T12:00:00.2Z") == datetime.datetime(2024, 5, 1, 12, 0, 1, tzinfo=UTC)
    assert logic.stamp(NOW, not_before="2024-05-01T12:00:03Z") == datetime.datetime(2024, 5, 1, 12, 0, 3, tzinfo=UTC)
    assert logic.stamp(NOW, not_before="2024-05-01T11:00:00Z") == datetime.datetime(2024, 5, 1, 12, tzinfo=UTC)
    stamped = logic.stamp(NOW, not_before="2024-05-01T12:00:00.2Z")
    assert logic.counts_in_episode(logic.rfc3339(stamped), "2024-05-01T12:00:00.2Z", 2)


def test_stamp_is_after_the_previous_update() -> None:
    assert logic.stamp(NOW, after="2024-05-01T12:00:00Z") == datetime.datetime(2024, 5, 1, 12, 0, 1, tzinfo=UTC)
    assert logic.stamp(NOW, after="2024-05-01T11:59:59Z") == datetime.datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert logic.stamp(NOW, after=None) == datetime.datetime(2024, 5, 1, 12, tzinfo=UTC)


# --- patches ---------------------------------------------------------------------------------


def test_ack_patch_carries_the_resource_version_and_the_whole_record() -> None:
    at = logic.stamp(NOW)
    value = logic.mark_value(logic.ACK, "alice", at, note="on it")
    patch = logic.spec_patch("42", "acknowledgement", value)
    assert patch == {
        "metadata": {"resourceVersion": "42"},
        "spec": {"acknowledgement": {"by": "alice", "at": "2024-05-01T12:00:00Z", "note": "on it"}},
    }


def test_absent_optional_keys_are_written_as_null() -> None:
    # A merge patch merges objects: an earlier episode's note must not survive a re-acknowledgement.
    at = logic.stamp(NOW)
    assert logic.mark_value(logic.CONTAIN, "bob", at) == {"by": "bob", "at": "2024-05-01T12:00:00Z", "note": None}
    assert (
        json.loads(json.dumps(logic.spec_patch("1", "containment", logic.mark_value(logic.CONTAIN, "b", at))))["spec"][
            "containment"
        ]["note"]
        is None
    )


def test_resolution_record() -> None:
    at = logic.stamp(NOW)
    assert logic.mark_value(logic.RESOLVE, "carol", at, summary="rolled back", root_cause="bad config") == {
        "by": "carol",
        "at": "2024-05-01T12:00:00Z",
        "summary": "rolled back",
        "rootCause": "bad config",
    }
    assert logic.mark_value(logic.RESOLVE, "carol", at, summary="s")["rootCause"] is None
    assert "note" not in logic.mark_value(logic.RESOLVE, "carol", at, summary="s")


def test_status_update_record() -> None:
    assert logic.status_update_value("still down", "dave", logic.stamp(NOW)) == {
        "message": "still down",
        "by": "dave",
        "at": "2024-05-01T12:00:00Z",
    }


def test_marks() -> None:
    assert {m.command: m.field for m in logic.MARKS.values()} == {
        "ack": "acknowledgement",
        "contain": "containment",
        "resolve": "resolution",
    }


def test_patched_spec_is_valid_for_the_api_models() -> None:
    at = logic.stamp(NOW)
    spec = {
        "title": "t",
        "acknowledgement": logic.mark_value(logic.ACK, "alice", at, note="n"),
        "containment": logic.mark_value(logic.CONTAIN, "alice", at),
        "resolution": logic.mark_value(logic.RESOLVE, "alice", at, summary="s"),
        "statusUpdate": logic.status_update_value("m", "alice", at),
    }
    incident = Incident.model_validate({"metadata": {"name": "x"}, "spec": spec})
    assert incident.spec.acknowledgement is not None and incident.spec.acknowledgement.by == "alice"


# --- names -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "slug"),
    [
        ("Checkout returns 502!", "checkout-returns-502"),
        ("  --Héllo   Wörld--  ", "hello-world"),
        ("DB_primary.down", "db-primary-down"),
        ("!!!", ""),
        ("日本語", ""),
    ],
)
def test_slugify(title: str, slug: str) -> None:
    assert logic.slugify(title) == slug


def test_slugify_cuts_long_titles_at_a_word() -> None:
    slug = logic.slugify("payments api returns errors for every card payment in the european region")
    assert len(slug) <= logic.SLUG_MAX
    assert slug == "payments-api-returns-errors-for-every"


def test_slugify_cuts_one_long_word() -> None:
    assert logic.slugify("a" * 100) == "a" * logic.SLUG_MAX


def test_generate_name() -> None:
    rng = random.Random(7)
    name = logic.generate_name("Checkout returns 502", rng)
    assert name.startswith("checkout-returns-502-")
    suffix = name.rsplit("-", 1)[1]
    assert len(suffix) == logic.SUFFIX_LENGTH and set(suffix) <= set(logic.SUFFIX_ALPHABET)
    assert logic.generate_name("Checkout returns 502", random.Random(7)) == name  # the rng decides the suffix
    assert logic.generate_name("!!!", rng).startswith("incident-")


@pytest.mark.parametrize(
    "title", ["x", "A" * 256, "ends with dash -", "-" * 50, "Ünïcödé ☃ title", "a b " * 60, "9 lives"]
)
def test_generated_names_are_dns_1123_labels(title: str) -> None:
    for seed in range(20):
        name = logic.generate_name(title, random.Random(seed))
        assert len(name) <= 63
        assert logic.DNS_1123_LABEL.fullmatch(name), name
        assert logic.is_valid_name(name)


def test_is_valid_name() -> None:
    assert logic.is_valid_name("checkout-down")
    assert logic.is_valid_name("checkout.down")
    assert not logic.is_valid_name("Checkout")
    assert not logic.is_valid_name("-x")
    assert not logic.is_valid_name("x" * 254)


# --- declare -------------------------------------------------------------------------------------


def test_declare_body_minimal() -> None:
    body = logic.declare_body("x-abcde", "ops", title="Checkout down", severity="P1")
    assert body == {
        "apiVersion": "incidentops.dev/v1alpha1",
        "kind": "Incident",
        "metadata": {"name": "x-abcde", "namespace": "ops"},
        "spec": {"title": "Checkout down", "severity": "P1", "source": {"kind": "manual"}},
    }


def test_declare_body_full() -> None:
    spec = logic.declare_body(
        "x",
        "ops",
        title="t",
        severity="P2",
        incident_type="security",
        description="d",
        drill=True,
        policy="payments",
    )["spec"]
    assert spec["type"] == "security" and spec["description"] == "d" and spec["drill"] is True
    assert spec["escalationPolicyRef"] == {"name": "payments"}
    ref = logic.declare_body("x", "ops", title="t", severity="P2", policy="incidentops/default")["spec"]
    assert ref["escalationPolicyRef"] == {"name": "default", "namespace": "incidentops"}


def test_declare_body_is_checked_against_the_models() -> None:
    with pytest.raises(ValidationError):
        logic.declare_body("x", "ops", title="t", severity="P9")
    with pytest.raises(ValidationError):
        logic.declare_body("x", "ops", title="t", severity="P1", policy="Not A Name")


# --- durations for people ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (45, "45s"),
        (60, "1m"),
        (250, "4m10s"),
        (600, "10m"),
        (3599, "59m"),
        (3600, "1h"),
        (12000, "3h20m"),
        (86400 * 2 + 3600 * 4, "2d4h"),
        (86400 * 400, "400d"),
        (-5, "0s"),
    ],
)
def test_human_duration(seconds: int, text: str) -> None:
    assert logic.human_duration(datetime.timedelta(seconds=seconds)) == text


def test_relative_and_age() -> None:
    assert logic.relative("2024-05-01T11:55:00Z", NOW) == "5m ago"
    assert logic.relative("2024-05-01T12:10:00Z", NOW) == "in 9m59s"
    assert logic.relative(None, NOW) == "<unknown>"
    assert logic.age("2024-05-01T11:00:00Z", NOW) == "1h"
    assert logic.age(None, NOW) == "<unknown>"
