"""The EscalationPolicy kind: who is told what, when, how incidents are classified, and what the operator may do.

Where it sits: ``incidentops.api`` (pure models). Policies are kept in Git and
applied by Argo CD or Flux; the operator only writes their ``status`` (Ready,
with the reason a channel's Secret is unusable). ``crdgen`` turns
:class:`EscalationPolicySpec` and :class:`EscalationPolicyStatus` into
``crds/escalationpolicies.incidentops.dev.yaml``.

The defaults people rely on without writing them are here too:
:data:`DEFAULT_SLAS` (the severity table) and :data:`DEFAULT_CLASSIFICATION_RULES`.
"""

from __future__ import annotations

import dataclasses
import datetime
import zoneinfo
from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Self

from pydantic import AfterValidator, ConfigDict, Field, StringConstraints, model_validator

from incidentops.api.common import (
    API_VERSION,
    ApiModel,
    Condition,
    Duration,
    IncidentType,
    ItemName,
    LabelMap,
    LabelSelector,
    NamespaceName,
    ObjectMeta,
    ObjectName,
    SecretKeyRef,
    Severity,
    cel,
    exactly_one,
    list_type,
    parse_duration,
)
from incidentops.api.incident import ActionTemplate, Approval

__all__ = [
    "DEFAULT_CLASSIFICATION_RULES",
    "DEFAULT_SEVERITY",
    "DEFAULT_SLAS",
    "AfterBySeverity",
    "AlertsPolicy",
    "Approval",
    "BusinessHours",
    "Channel",
    "ChannelHealth",
    "ChannelState",
    "ChannelType",
    "Classification",
    "ClassificationMatch",
    "ClassificationRule",
    "ClockKind",
    "Communications",
    "During",
    "EffectiveSLA",
    "EmailChannel",
    "EscalationPolicy",
    "EscalationPolicySpec",
    "EscalationPolicyStatus",
    "EvidencePolicy",
    "Guards",
    "ImpactEscalation",
    "Level",
    "MonthlyReport",
    "MonthlyReportStatus",
    "PagerDutyChannel",
    "PolicySelector",
    "PostmortemPolicy",
    "PostmortemRequirement",
    "Remediation",
    "RemediationWhen",
    "Repeat",
    "ReportDelivery",
    "ReportSendState",
    "Reports",
    "ReportsStatus",
    "Severities",
    "SeveritySLA",
    "SlackChannel",
    "SmtpCredentialsRef",
    "SmtpServer",
    "Until",
    "WebhookChannel",
    "Weekday",
    "default_sla",
]

Url = Annotated[str, StringConstraints(min_length=1, max_length=2048, pattern=r"^https?://[^\s]+$")]
"""An http(s) URL."""

EmailAddress = Annotated[str, StringConstraints(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]
"""An e-mail address (no display name)."""

ChannelList = Annotated[list[ItemName], Field(max_length=16, json_schema_extra=list_type("set"))]

# --- selector ---------------------------------------------------------------------------------


class PolicySelector(LabelSelector):
    """Which incidents the policy applies to. Labels are matched against the incident's labels together
    with ``spec.source.labels``; every part given must match; an empty selector matches every incident."""

    severities: list[Severity] = Field(default_factory=list, max_length=4, json_schema_extra=list_type("set"))
    """Only incidents of these (effective) severities. Default: any."""

    types: list[IncidentType] = Field(default_factory=list, max_length=5, json_schema_extra=list_type("set"))
    """Only incidents of these (effective) types. Default: any."""


# --- business hours -----------------------------------------------------------------------------


class Weekday(StrEnum):
    """A day of the week."""

    MON = "Mon"
    TUE = "Tue"
    WED = "Wed"
    THU = "Thu"
    FRI = "Fri"
    SAT = "Sat"
    SUN = "Sun"

    @property
    def number(self) -> int:
        """0 for Monday ... 6 for Sunday, as ``datetime.weekday()``."""
        return list(Weekday).index(self)


ClockTime = Annotated[str, StringConstraints(min_length=5, max_length=5, pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
"""A time of day, ``HH:MM`` (24-hour clock)."""


def _check_time_zone(name: str) -> str:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as Europe/Berlin)") from exc
    return name


TimeZoneName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$"),
    AfterValidator(_check_time_zone),
]
"""An IANA time zone name, e.g. ``Europe/Berlin``, ``America/New_York``, ``UTC``."""


class BusinessHours(ApiModel):
    """When people work: ``during: businessHours`` levels page only then, and ``clock: business`` response
    times count only these hours. In the policy's own time zone, so a change to or from summer time moves
    the hours with the clocks on the wall."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [cel("self.start < self.end", "businessHours.start must be before end")]
        }
    )

    time_zone: TimeZoneName
    """The IANA time zone the hours are in, e.g. ``Europe/Berlin``. An unknown name makes the policy's Ready
    condition False (SpecInvalid)."""

    days: list[Weekday] = Field(
        default_factory=lambda: [Weekday.MON, Weekday.TUE, Weekday.WED, Weekday.THU, Weekday.FRI],
        min_length=1,
        max_length=7,
        json_schema_extra=list_type("set"),
    )
    """The working days. Default Mon to Fri."""

    start: ClockTime = "09:00"
    """When the working day starts, local time. Default 09:00."""

    end: ClockTime = "17:00"
    """When the working day ends, local time (after ``start``). Default 17:00."""

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.start >= self.end:
            raise ValueError("businessHours.start must be before end")
        return self

    def zone(self) -> zoneinfo.ZoneInfo:
        """The time zone."""
        return zoneinfo.ZoneInfo(self.time_zone)

    def opening(self) -> datetime.time:
        """The start of the working day."""
        return datetime.time.fromisoformat(self.start)

    def closing(self) -> datetime.time:
        """The end of the working day."""
        return datetime.time.fromisoformat(self.end)

    def day_length(self) -> datetime.timedelta:
        """How long a working day is (``end - start``, as on the wall clock)."""
        base = datetime.date(2000, 1, 3)
        return datetime.datetime.combine(base, self.closing()) - datetime.datetime.combine(base, self.opening())

    def weekdays(self) -> frozenset[int]:
        """The working days, as ``datetime.weekday()`` numbers."""
        return frozenset(day.number for day in self.days)


# --- severities ---------------------------------------------------------------------------------


class PostmortemRequirement(StrEnum):
    """Whether a resolved incident needs a post-mortem before it can close."""

    REQUIRED = "required"
    OPTIONAL = "optional"


class ClockKind(StrEnum):
    """What a response time counts."""

    WALL = "wall"
    BUSINESS = "business"


class SeveritySLA(ApiModel):
    """Response times for one severity. An unset field takes the default of the table in :data:`DEFAULT_SLAS`."""

    acknowledge_within: Duration | None = None
    """Acknowledge within this long of the episode's start, or the SLA is breached (Acknowledge)."""

    resolve_within: Duration | None = None
    """Resolve within this long of the episode's start, or the SLA is breached (Resolve)."""

    update_every: Duration | None = None
    """Post a status update (``spec.statusUpdate``) at least this often while open."""

    postmortem: PostmortemRequirement | None = None
    """required: the incident closes only once the post-mortem is done; optional: it is drafted, not awaited."""

    postmortem_within: Duration | None = None
    """A required post-mortem is due this long after resolution."""

    clock: ClockKind | None = None
    """What ``acknowledgeWithin`` and ``updateEvery`` count: ``wall`` (every hour) or ``business`` (only the
    policy's ``businessHours``, which it needs). ``resolveWithin`` always counts every hour. Default:
    ``business`` for P3 and P4 when the policy has ``businessHours`` (the seeds' "next business day" and
    "every 4 hours during business hours"), ``wall`` otherwise."""


@dataclasses.dataclass(frozen=True)
class EffectiveSLA:
    """The response times for one severity, after defaults."""

    acknowledge_within: datetime.timedelta
    resolve_within: datetime.timedelta
    update_every: datetime.timedelta
    postmortem_required: bool
    postmortem_within: datetime.timedelta
    business_clock: bool = False
    """``acknowledge_within`` and ``update_every`` count business hours only."""


_POSTMORTEM_WITHIN_FALLBACK = "168h"

DEFAULT_SLAS: Mapping[Severity, SeveritySLA] = MappingProxyType(
    {
        Severity.P1: SeveritySLA(
            acknowledge_within="15m",
            resolve_within="4h",
            update_every="15m",
            postmortem=PostmortemRequirement.REQUIRED,
            postmortem_within="48h",
        ),
        Severity.P2: SeveritySLA(
            acknowledge_within="1h",
            resolve_within="24h",
            update_every="1h",
            postmortem=PostmortemRequirement.REQUIRED,
            postmortem_within="72h",
        ),
        Severity.P3: SeveritySLA(
            acknowledge_within="4h",
            resolve_within="72h",
            update_every="4h",
            postmortem=PostmortemRequirement.OPTIONAL,
            postmortem_within=_POSTMORTEM_WITHIN_FALLBACK,
        ),
        Severity.P4: SeveritySLA(
            acknowledge_within="24h",
            resolve_within="168h",
            update_every="24h",
            postmortem=PostmortemRequirement.OPTIONAL,
            postmortem_within=_POSTMORTEM_WITHIN_FALLBACK,
        ),
    }
)
"""The default response times, from the seeds' incident-response plans:

== =========== ======= ======= ==============
\\  acknowledge resolve updates post-mortem
== =========== ======= ======= ==============
P1 15m         4h      15m     required, 48h
P2 1h          24h     1h      required, 72h
P3 4h          72h     4h      optional
P4 24h         168h    24h     optional
== =========== ======= ======= ==============

(P3 and P4 post-mortems, when a policy requires them, are due after 168h.)
"""


def default_sla(severity: Severity) -> EffectiveSLA:
    """The default response times for ``severity`` (the table of :data:`DEFAULT_SLAS`)."""
    return Severities().effective(severity)


class Severities(ApiModel):
    """Response times per severity; a severity or field left out takes the default (see the table)."""

    p1: SeveritySLA | None = Field(None, alias="P1")
    """P1: default acknowledge 15m, resolve 4h, updates every 15m, post-mortem required within 48h."""

    p2: SeveritySLA | None = Field(None, alias="P2")
    """P2: default acknowledge 1h, resolve 24h, updates every 1h, post-mortem required within 72h."""

    p3: SeveritySLA | None = Field(None, alias="P3")
    """P3: default acknowledge 4h, resolve 72h, updates every 4h, post-mortem optional."""

    p4: SeveritySLA | None = Field(None, alias="P4")
    """P4: default acknowledge 24h, resolve 168h, updates every 24h, post-mortem optional."""

    def get(self, severity: Severity) -> SeveritySLA | None:
        """The policy's own entry for ``severity``, if any."""
        value: SeveritySLA | None = getattr(self, severity.value.lower())
        return value

    def effective(self, severity: Severity, business_hours: BusinessHours | None = None) -> EffectiveSLA:
        """The response times for ``severity``: the policy's values, defaults for the rest.

        With ``business_hours`` (the policy's), P3 and P4 count business time by default, and P4's default
        acknowledge and update times are one business day (the length of the policy's day).
        """
        own = self.get(severity) or SeveritySLA()
        default = DEFAULT_SLAS[severity]

        def pick(name: str) -> Any:
            value = getattr(own, name)
            return getattr(default, name) if value is None else value

        clock = own.clock or (
            ClockKind.BUSINESS
            if business_hours is not None and severity in (Severity.P3, Severity.P4)
            else ClockKind.WALL
        )
        business = clock is ClockKind.BUSINESS and business_hours is not None
        acknowledge = parse_duration(pick("acknowledge_within"))
        update = parse_duration(pick("update_every"))
        if business and severity is Severity.P4 and business_hours is not None:
            day = business_hours.day_length()
            acknowledge = day if own.acknowledge_within is None else acknowledge
            update = day if own.update_every is None else update
        return EffectiveSLA(
            acknowledge_within=acknowledge,
            resolve_within=parse_duration(pick("resolve_within")),
            update_every=update,
            postmortem_required=pick("postmortem") is PostmortemRequirement.REQUIRED,
            postmortem_within=parse_duration(pick("postmortem_within")),
            business_clock=business,
        )


# --- levels -----------------------------------------------------------------------------------------


class Until(StrEnum):
    """How long a level keeps its place in the chain."""

    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class During(StrEnum):
    """When a level may notify."""

    ALWAYS = "always"
    BUSINESS_HOURS = "businessHours"


class AfterBySeverity(ApiModel):
    """A level's delay per severity; a level with no entry for the incident's severity is skipped."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "has(self.P1) || has(self.P2) || has(self.P3) || has(self.P4)",
                    "afterBySeverity names at least one of P1, P2, P3 and P4",
                )
            ]
        }
    )

    p1: Duration | None = Field(None, alias="P1")
    """The delay for P1 incidents."""

    p2: Duration | None = Field(None, alias="P2")
    """The delay for P2 incidents."""

    p3: Duration | None = Field(None, alias="P3")
    """The delay for P3 incidents."""

    p4: Duration | None = Field(None, alias="P4")
    """The delay for P4 incidents."""

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if not self.delays():
            raise ValueError("afterBySeverity names at least one of P1, P2, P3 and P4")
        return self

    def delays(self) -> dict[Severity, str]:
        """The delays given, by severity."""
        return {s: v for s in Severity if (v := getattr(self, s.value.lower())) is not None}


_LEVEL_DELAY, _check_level_delay = exactly_one("after", "afterBySeverity", what="a level")


class Level(ApiModel):
    """A step of the escalation chain: notify these channels this long after the episode started.

    Holds both the paging chain (on-call, then the team lead, ``until:
    acknowledged``) and the stakeholder chain (the CTO after 2h of a P1,
    ``until: resolved``).
    """

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [_LEVEL_DELAY]})

    name: ItemName
    """Names the level, unique in the policy; it appears in ``status.escalation.levelName`` and messages."""

    after: Duration | None = None
    """The delay from the episode's start, whatever the severity."""

    after_by_severity: AfterBySeverity | None = None
    """Instead of ``after``: the delay per severity; severities not named skip the level."""

    until: Until = Until.ACKNOWLEDGED
    """acknowledged: the level is paged only while the incident is unacknowledged, and repeats with
    ``repeat``; resolved: a stakeholder level, notified once per episode however it is acknowledged (if
    still unresolved when due). Default acknowledged."""

    notify: ChannelList = Field(min_length=1)
    """The channels to notify, by name; they must be defined in ``channels``."""

    during: During = During.ALWAYS
    """always: notify when due; businessHours: a notification due outside the policy's ``businessHours``
    (which the policy then needs) waits for the next working hour. Default always."""

    @model_validator(mode="after")
    def _one_delay(self) -> Self:
        _check_level_delay(self)
        return self

    def delay_for(self, severity: Severity) -> datetime.timedelta | None:
        """The delay of this level for an incident of ``severity``; None: the level is skipped."""
        if self.after is not None:
            return parse_duration(self.after)
        assert self.after_by_severity is not None
        value = self.after_by_severity.delays().get(severity)
        return None if value is None else parse_duration(value)

    def delays(self) -> list[datetime.timedelta]:
        """Every delay this level can have."""
        if self.after is not None:
            return [parse_duration(self.after)]
        assert self.after_by_severity is not None
        return [parse_duration(v) for v in self.after_by_severity.delays().values()]


class Repeat(ApiModel):
    """Repeat the paging chain while the incident stays unacknowledged."""

    times: int = Field(ge=1, le=100)
    """How many more rounds after the first: round k (0 to ``times``) starts at episode start + k x
    ``every``. Only ``until: acknowledged`` levels repeat. EscalationExhausted turns True only when the last
    people paged have had their time: ``acknowledgeWithin`` of the severity after the last page of the last
    round, and at least until the last round would have repeated; never in the look that sends the last
    page."""

    every: Duration
    """The time between rounds; longer than the delay of every level that repeats."""


class Communications(ApiModel):
    """Where the communications role (who writes the status updates) is reached."""

    notify: ChannelList = Field(min_length=1)
    """The channels that get the "update due" reminders besides the responders."""


# --- channels -------------------------------------------------------------------------------------------


class ChannelType(StrEnum):
    """The kinds of channel, one module each in ``incidentops.notify``."""

    SLACK = "slack"
    PAGERDUTY = "pagerduty"
    WEBHOOK = "webhook"
    EMAIL = "email"


class SlackChannel(ApiModel):
    """A Slack incoming webhook."""

    webhook_secret_ref: SecretKeyRef
    """The Secret key holding the incoming-webhook URL (the URL is itself the credential)."""


class PagerDutyChannel(ApiModel):
    """A PagerDuty service, through the Events API v2 (trigger, acknowledge, resolve, deduplicated by incident)."""

    routing_key_secret_ref: SecretKeyRef
    """The Secret key holding the integration's routing key."""

    url: Url | None = None
    """The Events API endpoint. Default https://events.pagerduty.com/v2/enqueue."""


_WEBHOOK_URL, _check_webhook_url = exactly_one("url", "urlSecretRef", what="a webhook")


class WebhookChannel(ApiModel):
    """A JSON POST to any HTTP endpoint."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [_WEBHOOK_URL]})

    url: Url | None = None
    """The endpoint, when it is not a secret."""

    url_secret_ref: SecretKeyRef | None = None
    """Instead of ``url``: the Secret key holding the endpoint."""

    hmac_secret_ref: SecretKeyRef | None = None
    """The Secret key holding an HMAC key: the body is signed with HMAC-SHA256 in the
    ``X-Incidentops-Signature`` header. Default: unsigned."""

    @model_validator(mode="after")
    def _one_url(self) -> Self:
        _check_webhook_url(self)
        return self


class SmtpCredentialsRef(ApiModel):
    """A Secret holding an SMTP user name and password."""

    name: ObjectName
    """Name of the Secret, in the policy's namespace (labelled ``incidentops.dev/channel-secret: "true"``)."""

    username_key: Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")] = (
        "username"
    )
    """The key holding the user name. Default ``username``."""

    password_key: Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")] = (
        "password"
    )
    """The key holding the password. Default ``password``."""

    def secret_key_refs(self) -> list[SecretKeyRef]:
        """The two keys, as secretKeyRefs."""
        return [SecretKeyRef(name=self.name, key=key) for key in (self.username_key, self.password_key)]


class SmtpServer(ApiModel):
    """The SMTP server that sends the mail."""

    host: Annotated[str, StringConstraints(min_length=1, max_length=253)]
    """Host name or address."""

    port: int = Field(587, ge=1, le=65535)
    """Port. Default 587."""

    starttls: bool = True
    """Upgrade the connection with STARTTLS (required when true). Default true."""

    credentials_secret_ref: SmtpCredentialsRef | None = None
    """Log in with these credentials. Default: no login."""


class EmailChannel(ApiModel):
    """E-mail through an SMTP server."""

    to: list[EmailAddress] = Field(min_length=1, max_length=16, json_schema_extra=list_type("set"))
    """Recipients."""

    from_: EmailAddress = Field(alias="from")
    """The sender address."""

    smtp: SmtpServer
    """The SMTP server."""


_CHANNEL_TYPE, _check_channel_type = exactly_one(*(t.value for t in ChannelType), what="a channel")


class Channel(ApiModel):
    """Somewhere to send notifications. Credentials are only ever read from Secrets labelled
    ``incidentops.dev/channel-secret: "true"`` in the policy's namespace."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [_CHANNEL_TYPE]})

    name: ItemName
    """Names the channel, unique in the policy; levels, notifyOnBreach and impactEscalation refer to it."""

    slack: SlackChannel | None = None
    """A Slack incoming webhook."""

    pagerduty: PagerDutyChannel | None = None
    """A PagerDuty service."""

    webhook: WebhookChannel | None = None
    """A generic JSON webhook."""

    email: EmailChannel | None = None
    """E-mail."""

    @model_validator(mode="after")
    def _one_type(self) -> Self:
        _check_channel_type(self)
        return self

    @property
    def type(self) -> ChannelType:
        """Which type of channel this is."""
        for channel_type in ChannelType:
            if getattr(self, channel_type.value) is not None:
                return channel_type
        raise AssertionError("a validated channel always has a type")  # pragma: no cover

    def secret_key_refs(self) -> list[SecretKeyRef]:
        """Every Secret key the channel reads."""
        if self.slack is not None:
            return [self.slack.webhook_secret_ref]
        if self.pagerduty is not None:
            return [self.pagerduty.routing_key_secret_ref]
        if self.webhook is not None:
            return [ref for ref in (self.webhook.url_secret_ref, self.webhook.hmac_secret_ref) if ref is not None]
        if self.email is not None and self.email.smtp.credentials_secret_ref is not None:
            return self.email.smtp.credentials_secret_ref.secret_key_refs()
        return []


# --- classification -----------------------------------------------------------------------------------


class ClassificationMatch(ApiModel):
    """What a classification rule matches."""

    labels: LabelMap = Field(min_length=1, max_length=16)
    """Labels that must all be present with these values (incident labels together with the alert labels)."""


class ClassificationRule(ApiModel):
    """Sets the severity and/or type of an incident that has none in its spec; the first matching rule
    that sets a field wins for that field."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("has(self.severity) || has(self.type)", "a classification rule sets severity, type or both")
            ]
        }
    )

    match: ClassificationMatch
    """What the rule matches."""

    severity: Severity | None = None
    """The severity to give."""

    type: IncidentType | None = None
    """The type to give."""

    @model_validator(mode="after")
    def _sets_something(self) -> Self:
        if self.severity is None and self.type is None:
            raise ValueError("a classification rule sets severity, type or both")
        return self

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether every label of the rule's match is in ``labels`` with the same value."""
        return all(labels.get(key) == value for key, value in self.match.labels.items())


DEFAULT_CLASSIFICATION_RULES: tuple[ClassificationRule, ...] = tuple(
    ClassificationRule(match=ClassificationMatch(labels={"severity": label}), severity=severity)
    for label, severity in (
        ("critical", Severity.P1),
        ("error", Severity.P2),
        ("warning", Severity.P3),
        ("info", Severity.P4),
    )
)
"""The rules used when a policy gives none: alert label ``severity`` critical -> P1, error -> P2,
warning -> P3, info -> P4."""

DEFAULT_SEVERITY = Severity.P3
"""The severity of an incident no rule classifies, when the policy names none."""


class Classification(ApiModel):
    """How an incident without ``spec.severity`` (or ``spec.type``) is classified. The highest-priority
    candidate policy classifies; ``status.severity`` and ``status.type`` hold the result."""

    rules: list[ClassificationRule] | None = Field(None, max_length=32, json_schema_extra=list_type("atomic"))
    """Rules, in order. Default (when left out): label ``severity`` critical -> P1, error -> P2,
    warning -> P3, info -> P4. An empty list means no rules."""

    default_severity: Severity = DEFAULT_SEVERITY
    """The severity when no rule gives one. Default P3."""

    def effective_rules(self) -> tuple[ClassificationRule, ...]:
        """The rules in force: the policy's, or the defaults when it gives none."""
        return DEFAULT_CLASSIFICATION_RULES if self.rules is None else tuple(self.rules)


# --- the rest of the spec --------------------------------------------------------------------------------


class AlertsPolicy(ApiModel):
    """How alert-born incidents follow their alerts."""

    auto_resolve: bool = True
    """Resolve the incident (in status, reason AlertsResolved) when every alert of its group has resolved.
    Default true."""

    reopen_window: Duration = "1h"
    """After resolution, alerts of the group firing again within this long reopen the incident (a new
    episode); after it, the group firing again makes a new incident, which names this one in
    ``spec.source.previous``, and this one closes once any required post-mortem is done. Default 1h."""


class MonthlyReport(ApiModel):
    """The monthly incident report: on the first day of each month the operator sends the previous month's
    report of the incidents this policy governs (``kubectl incident report --month``, as Markdown) to these
    channels. Due at the start of the business day (``businessHours.start``) in the policy's time zone, or at
    midnight UTC without business hours; the month is the calendar month of that time zone. Sent once per
    month: ``status.reports.monthly`` records the month before the report goes out, and every copy of it
    carries the same key."""

    notify: ChannelList = Field(min_length=1)
    """The channels to send it to: Slack, webhook or e-mail channels defined in ``channels`` (PagerDuty takes
    pages, not reports)."""


class Reports(ApiModel):
    """Periodic reports of the incidents the policy governs."""

    monthly: MonthlyReport | None = None
    """The previous month's report, on the first day of each month. Default: none."""


class RemediationWhen(ApiModel):
    """Which incidents a remediation applies to; every part given must match. Default: every incident."""

    severities: list[Severity] = Field(default_factory=list, max_length=4, json_schema_extra=list_type("set"))
    """Only incidents of these (effective) severities."""

    types: list[IncidentType] = Field(default_factory=list, max_length=5, json_schema_extra=list_type("set"))
    """Only incidents of these (effective) types."""

    labels: LabelMap | None = Field(None, max_length=16)
    """Only incidents with these labels (incident labels together with the alert labels)."""


class Remediation(ApiModel):
    """Actions the operator takes by itself on matching incidents (recorded in the incident's
    ``status.actions``, never written into its spec). Targets default to the incident's targets."""

    when: RemediationWhen = Field(default_factory=RemediationWhen)
    """Which incidents. Default: every incident the policy applies to."""

    actions: list[ActionTemplate] = Field(min_length=1, max_length=8, json_schema_extra=list_type("map", "name"))
    """The actions, in order."""

    approval: Approval = Approval.NONE
    """none: run at once; required: wait (phase AwaitingApproval) until someone approves on the incident.
    Default none."""


class ImpactEscalation(ApiModel):
    """Notify more people when the estimated cost of an incident passes a threshold."""

    above: int = Field(ge=0)
    """The threshold for ``spec.impact.estimatedCost``, in whole currency units (e.g. 1000 for the team lead,
    100000 for the board)."""

    notify: ChannelList = Field(min_length=1)
    """The channels to notify, once per incident, when the cost passes the threshold."""


class EvidencePolicy(ApiModel):
    """What happens to evidence."""

    retain_on_delete: bool = True
    """Keep the evidence ConfigMaps when the incident is deleted (they are not owned by it). Default true."""

    before_actions: bool = True
    """Take a snapshot of the targets (events, manifests, logs) before a rollback or a quarantine changes
    them, so what was running is on record. Default true."""


class PostmortemPolicy(ApiModel):
    """How post-mortem drafts and drill assessments are written."""

    template_config_map: ObjectName | None = None
    """A ConfigMap in the policy's namespace whose keys ``postmortem.md.j2`` and ``assessment.md.j2`` (either
    or both) replace the shipped Jinja2 templates (sandboxed; the same variables, see docs/postmortems.md). A
    template that is missing or fails to render falls back to the shipped one, and the timeline says why.
    Default: the shipped templates."""


class Guards(ApiModel):
    """Limits on what the operator does by itself."""

    max_actions_per_hour: int = Field(10, ge=0, le=1000)
    """At most this many actions per hour for incidents under this policy; more are Skipped (RateLimited).
    Default 10."""

    dry_run: bool = False
    """Plan every action, execute none. Default false."""

    protected_namespaces: list[NamespaceName] = Field(
        default_factory=list, max_length=64, json_schema_extra=list_type("set")
    )
    """Namespaces no action touches, besides the operator's own, which is always protected."""

    allow_git_ops_managed: bool = False
    """Allow actions on objects Argo CD or Flux manage (which would revert them). Default false."""


class EscalationPolicySpec(ApiModel):
    """Who is told what and when, how incidents are classified, and what the operator may do."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.levels) || self.levels.all(l, l.notify.all(c,"
                    " has(self.channels) && self.channels.exists(ch, ch.name == c)))",
                    "levels[].notify names a channel that is not defined in channels",
                ),
                cel(
                    "!has(self.notifyOnBreach) || self.notifyOnBreach.all(c,"
                    " has(self.channels) && self.channels.exists(ch, ch.name == c))",
                    "notifyOnBreach names a channel that is not defined in channels",
                ),
                cel(
                    "!has(self.impactEscalation) || self.impactEscalation.all(i, i.notify.all(c,"
                    " has(self.channels) && self.channels.exists(ch, ch.name == c)))",
                    "impactEscalation[].notify names a channel that is not defined in channels",
                ),
                cel(
                    "!has(self.reports) || !has(self.reports.monthly) || self.reports.monthly.notify.all(c,"
                    " has(self.channels) && self.channels.exists(ch, ch.name == c && !has(ch.pagerduty)))",
                    "reports.monthly.notify names a channel that is not defined in channels, or a PagerDuty one",
                ),
                cel(
                    "!has(self.communications) || self.communications.notify.all(c,"
                    " has(self.channels) && self.channels.exists(ch, ch.name == c))",
                    "communications.notify names a channel that is not defined in channels",
                ),
                cel(
                    "has(self.businessHours) || !has(self.levels)"
                    " || self.levels.all(l, !has(l.during) || l.during == 'always')",
                    "a level with during: businessHours needs the policy's businessHours",
                ),
                cel(
                    "has(self.businessHours) || !has(self.severities) || ("
                    + " && ".join(
                        f"(!has(self.severities.{s}) || !has(self.severities.{s}.clock)"
                        f" || self.severities.{s}.clock == 'wall')"
                        for s in ("P1", "P2", "P3", "P4")
                    )
                    + ")",
                    "clock: business needs the policy's businessHours",
                ),
                cel(
                    "!has(self.repeat) || !has(self.levels) || self.levels.all(l,"
                    " (has(l.until) && l.until == 'resolved')"
                    " || ((!has(l.after) || duration(l.after) < duration(self.repeat.every))"
                    " && (!has(l.afterBySeverity)"
                    " || ((!has(l.afterBySeverity.P1) || duration(l.afterBySeverity.P1) < duration(self.repeat.every))"
                    " && (!has(l.afterBySeverity.P2) || duration(l.afterBySeverity.P2) < duration(self.repeat.every))"
                    " && (!has(l.afterBySeverity.P3) || duration(l.afterBySeverity.P3) < duration(self.repeat.every))"
                    " && (!has(l.afterBySeverity.P4) || duration(l.afterBySeverity.P4) < duration(self.repeat.every))"
                    "))))",
                    "repeat.every must be longer than the after and afterBySeverity delays of every level"
                    " that repeats (until: acknowledged)",
                ),
            ]
        }
    )

    selector: PolicySelector | None = None
    """Which incidents the policy applies to, among those of its namespace (or of every namespace, for a
    policy in the operator's namespace). Default: all of them. Among candidates the highest ``priority`` wins,
    then the name; with none, a policy named ``default`` in the operator's namespace applies."""

    priority: int = Field(0, ge=-1000, le=1000)
    """Higher wins among candidate policies. Default 0."""

    severities: Severities | None = None
    """Response times per severity. Default: the table in the documentation (P1: acknowledge 15m,
    resolve 4h, ...)."""

    levels: list[Level] = Field(default_factory=list, max_length=16, json_schema_extra=list_type("map", "name"))
    """The escalation chain, counted from the start of each episode. An acknowledgement or a containment
    stops the ``until: acknowledged`` levels. The incident's condition EscalationExhausted turns True only
    when nobody acknowledged and the last people paged have had the time the policy gives anyone to answer:
    ``acknowledgeWithin`` of the severity after the last page (counted in business time with ``clock:
    business``), and with ``repeat`` at least until the last round would have repeated."""

    repeat: Repeat | None = None
    """Repeat the paging levels while unacknowledged. Default: one round."""

    channels: list[Channel] = Field(default_factory=list, max_length=16, json_schema_extra=list_type("map", "name"))
    """Where notifications go."""

    notify_on_breach: list[ItemName] | None = Field(None, max_length=16, json_schema_extra=list_type("set"))
    """The channels told about SLA breaches. Default: the channels the incident's levels have notified in
    the episode (or, before any has, those of the first level that applies to its severity)."""

    communications: Communications | None = None
    """Where the communications role is reached: "update due" reminders go there as well as to the
    responders (the ``until: acknowledged`` levels reached), never to stakeholder levels. Default: the
    responders only."""

    business_hours: BusinessHours | None = None
    """When people work, for ``during: businessHours`` levels and ``clock: business`` response times.
    Default: none (every hour counts)."""

    classification: Classification | None = None
    """How unclassified incidents get a severity and type. Default: by the alert label ``severity``, else P3."""

    alerts: AlertsPolicy = Field(default_factory=AlertsPolicy)
    """How alert-born incidents follow their alerts."""

    remediation: list[Remediation] = Field(default_factory=list, max_length=16, json_schema_extra=list_type("atomic"))
    """Actions the operator takes by itself (see docs/actions.md)."""

    impact_escalation: list[ImpactEscalation] = Field(
        default_factory=list, max_length=8, json_schema_extra=list_type("atomic")
    )
    """Cost thresholds that notify more people (not yet acted on: impact escalation is not built yet)."""

    reports: Reports | None = None
    """Periodic reports of the incidents this policy governs (those whose ``status.escalationPolicy`` names
    it). Default: none."""

    evidence: EvidencePolicy = Field(default_factory=EvidencePolicy)
    """What happens to evidence (and to post-mortem drafts: ``retainOnDelete`` keeps them too)."""

    postmortems: PostmortemPolicy | None = None
    """How post-mortem drafts and drill assessments are written. Default: the shipped templates."""

    guards: Guards = Field(default_factory=Guards)
    """Limits on the operator's own actions."""

    @model_validator(mode="after")
    def _cross_field(self) -> Self:
        defined = {channel.name for channel in self.channels}
        if any(c not in defined for level in self.levels for c in level.notify):
            raise ValueError("levels[].notify names a channel that is not defined in channels")
        if any(c not in defined for c in self.notify_on_breach or []):
            raise ValueError("notifyOnBreach names a channel that is not defined in channels")
        if any(c not in defined for rule in self.impact_escalation for c in rule.notify):
            raise ValueError("impactEscalation[].notify names a channel that is not defined in channels")
        if self.communications is not None and any(c not in defined for c in self.communications.notify):
            raise ValueError("communications.notify names a channel that is not defined in channels")
        monthly = self.reports.monthly if self.reports is not None else None
        if monthly is not None and any(
            (ch := self.channel(c)) is None or ch.pagerduty is not None for c in monthly.notify
        ):
            raise ValueError(
                "reports.monthly.notify names a channel that is not defined in channels, or a PagerDuty one"
            )
        if self.business_hours is None:
            if any(level.during is During.BUSINESS_HOURS for level in self.levels):
                raise ValueError("a level with during: businessHours needs the policy's businessHours")
            severities = self.severities or Severities()
            if any((sla := severities.get(s)) is not None and sla.clock is ClockKind.BUSINESS for s in Severity):
                raise ValueError("clock: business needs the policy's businessHours")
        if self.repeat is not None:
            every = parse_duration(self.repeat.every)
            for level in self.levels:
                if level.until is Until.ACKNOWLEDGED and any(delay >= every for delay in level.delays()):
                    raise ValueError(
                        "repeat.every must be longer than the after and afterBySeverity delays of every level"
                        " that repeats (until: acknowledged)"
                    )
        return self

    # Helpers for the domain and the handlers.

    def channel(self, name: str) -> Channel | None:
        """The channel called ``name``."""
        return next((channel for channel in self.channels if channel.name == name), None)

    def secret_key_refs(self) -> list[tuple[str, SecretKeyRef]]:
        """Every (channel name, secretKeyRef) the policy's channels read, for the operator to check."""
        return [(channel.name, ref) for channel in self.channels for ref in channel.secret_key_refs()]

    def sla_for(self, severity: Severity) -> EffectiveSLA:
        """The response times for ``severity``, defaults filled in."""
        return (self.severities or Severities()).effective(severity, self.business_hours)

    def effective_classification(self) -> Classification:
        """The classification in force (the defaults when the policy gives none)."""
        return self.classification or Classification()


class ChannelState(StrEnum):
    """How deliveries to a channel fare."""

    HEALTHY = "Healthy"
    FAILING = "Failing"


class ChannelHealth(ApiModel):
    """How deliveries to one channel fare; written when that changes, never per delivery."""

    name: ItemName
    """The channel."""

    state: ChannelState
    """Healthy: its latest attempt delivered. Failing: it refused a notification for good, or its last
    attempts in a row failed (the notifications are retried meanwhile)."""

    since: datetime.datetime
    """When it entered this state."""

    message: Annotated[str, StringConstraints(max_length=1024)] | None = None
    """While Failing: the error that made it Failing (never a secret value)."""


class ReportSendState(StrEnum):
    """Where a periodic report is."""

    SENDING = "Sending"
    SENT = "Sent"


class ReportDelivery(ApiModel):
    """The report to one channel."""

    name: ItemName
    """The channel."""

    key: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    """Idempotency key: a hash of (policy uid, month, channel), the same for every copy sent."""

    outcome: Annotated[str, StringConstraints(max_length=16, pattern=r"^[A-Za-z]+$")]
    """Pending (not delivered yet), Sent or Failed."""

    attempts: int = Field(0, ge=0)
    """Attempts so far."""

    at: datetime.datetime | None = None
    """When it was last attempted."""

    message: Annotated[str, StringConstraints(max_length=1024)] | None = None
    """The error of the last failed attempt (never a secret value)."""


class MonthlyReportStatus(ApiModel):
    """The monthly report's record: written before the report goes out, so a restart neither skips a month
    nor sends one under a second key."""

    period: Annotated[str, StringConstraints(pattern=r"^[0-9]{4}-[0-9]{2}$", max_length=7)] | None = None
    """The month being sent, or last sent (``2026-11``)."""

    state: ReportSendState | None = None
    """Sending: recorded, being delivered (after a restart the next leader sends it again, under the same
    keys); Sent: every channel delivered or failed for good."""

    recorded_at: datetime.datetime | None = None
    """When ``period`` was recorded Sending: a channel that keeps failing is retried for
    ``delivery_max_age_seconds`` from then (or from the due time, if later)."""

    last_sent: Annotated[str, StringConstraints(pattern=r"^[0-9]{4}-[0-9]{2}$", max_length=7)] | None = None
    """The latest month whose report was sent."""

    sent_at: datetime.datetime | None = None
    """When that report was sent."""

    channels: list[ReportDelivery] = Field(
        default_factory=list, max_length=16, json_schema_extra=list_type("map", "name")
    )
    """The report of ``period`` to each channel."""


class ReportsStatus(ApiModel):
    """The periodic reports' records."""

    monthly: MonthlyReportStatus | None = None
    """The monthly report."""


class EscalationPolicyStatus(ApiModel):
    """What the operator observed about the policy."""

    observed_generation: int | None = Field(None, ge=0)
    """The ``metadata.generation`` last checked."""

    conditions: list[Condition] = Field(default_factory=list, max_length=8, json_schema_extra=list_type("map", "type"))
    """Ready: True when every channel's Secret exists, is labelled ``incidentops.dev/channel-secret: "true"``
    and has its key, and no channel keeps failing; False with the reason otherwise (SecretNotFound,
    SecretNotLabelled, SecretKeyMissing; NotificationsFailing, the message naming each failing channel and
    its error). Checked on every change of the policy, periodically (the operator's setting
    ``policy_recheck_seconds``), and when a delivery meets a problem with a Secret or a channel's health
    changes."""

    channels: list[ChannelHealth] = Field(
        default_factory=list, max_length=16, json_schema_extra=list_type("map", "name")
    )
    """The health of each channel that was sent to since the operator started or the policy changed."""

    active_incidents: int | None = Field(None, ge=0)
    """Open incidents under this policy."""

    reports: ReportsStatus | None = None
    """The periodic reports: which month was sent, to which channel, under which key."""


class EscalationPolicy(ApiModel):
    """An escalation policy: response times, the escalation chain, channels, classification, remediation."""

    KIND: ClassVar[str] = "EscalationPolicy"
    PLURAL: ClassVar[str] = "escalationpolicies"
    SINGULAR: ClassVar[str] = "escalationpolicy"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("escpol",)
    PRINTER_COLUMNS: ClassVar[tuple[dict[str, Any], ...]] = (
        {
            "name": "Ready",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
            "description": "Whether every channel can be used.",
        },
        {
            "name": "Reason",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
            "description": "Why (not) ready.",
        },
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        {
            "name": "Active",
            "type": "integer",
            "jsonPath": ".status.activeIncidents",
            "priority": 1,
            "description": "Open incidents under this policy.",
        },
    )

    api_version: str = API_VERSION
    kind: str = "EscalationPolicy"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: EscalationPolicySpec = Field(default_factory=EscalationPolicySpec)
    status: EscalationPolicyStatus = Field(default_factory=EscalationPolicyStatus)
