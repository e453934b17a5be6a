"""The operator's settings: environment variables (``INCIDENTOPS_*``) or CLI flags.

Where it sits: read once by ``cli.py`` at start-up and passed down; the domain
and the API never see it (import-linter forbids it), so their behaviour is a
function of the objects alone.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")  # a DNS-1123 label


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INCIDENTOPS_", extra="ignore")

    namespace: str = Field(
        default="incidentops",
        description="The operator's own namespace: its policies apply to every namespace, "
        "alert-born incidents are created here, and it is protected from actions by default.",
    )
    watch_namespaces: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Namespaces to watch for Incidents and EscalationPolicies; empty means the whole cluster.",
    )
    receiver_port: int = Field(default=8080, ge=0, le=65535, description="Port of the Alertmanager receiver.")
    metrics_port: int = Field(default=9090, ge=0, le=65535, description="Port of the Prometheus metrics endpoint.")
    bind_address: str = Field(default="0.0.0.0", description="Address the receiver and metrics servers bind to.")
    token_file: Path | None = Field(default=None, description="File with the receiver's current bearer token.")
    previous_token_file: Path | None = Field(
        default=None, description="File with the previous bearer token, still accepted during a rotation."
    )
    alert_namespace_label: bool = Field(
        default=False,
        description="Whether an alert's `namespace` label may place its incident in that namespace "
        "(otherwise every alert-born incident lives in the operator's namespace).",
    )
    receiver_max_body_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="Largest webhook body the receiver reads; larger ones are answered 413 "
        "(Alertmanager sends a group's alerts in one POST; its `max_alerts` caps them).",
    )
    receiver_write_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Time the receiver gives the API server to record a POST before answering 503 "
        "(Alertmanager then retries); keep it below the routes' `group_interval`.",
    )
    tls_cert_file: Path | None = Field(
        default=None,
        description="PEM certificate (chain) of the receiver; with tls_key_file it serves HTTPS. "
        "Reloaded when the file changes.",
    )
    tls_key_file: Path | None = Field(default=None, description="PEM private key of the receiver's certificate.")
    policy_recheck_seconds: float = Field(
        default=30,
        gt=0,
        description="How often every policy's Ready condition is checked again (its channel Secrets: missing, "
        "unlabelled or without their key), besides on every change of the policy and whenever a delivery "
        "meets a Secret problem or a channel's health changes.",
    )
    delivery_initial_delay_seconds: float = Field(
        default=1.0,
        ge=0,
        description="Backoff before the first retry of a notification that failed for a transient reason "
        "(5xx, 408, 429, a time-out, a channel Secret not there yet); it doubles each time, with jitter.",
    )
    delivery_max_delay_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Cap of the retry backoff: a channel that is down is tried again at least this often.",
    )
    delivery_max_age_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="A notification still not delivered this long after it became due is given up (Failed); "
        "until then it is retried under the same key, unless it becomes moot (acknowledged, resolved ...).",
    )
    delivery_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Time limit of one delivery attempt: the whole HTTP exchange, or the whole SMTP session.",
    )
    leader_election: bool = Field(
        default=True,
        description="Elect one leader per operator namespace with a coordination.k8s.io Lease; only the "
        "leader runs the handlers and the scheduler, every replica serves the receiver.",
    )
    lease_name: str = Field(default="incidentops-leader", description="Name of the Lease in the operator's namespace.")
    identity: str = Field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}",
        description="This replica's name in the Lease (default: host name and process id).",
    )
    lease_duration_seconds: float = Field(
        default=15, gt=0, description="How long a leader that stopped renewing keeps the Lease."
    )
    lease_renew_deadline_seconds: float = Field(
        default=10, gt=0, description="A leader that cannot renew within this stops leading (and exits)."
    )
    lease_retry_period_seconds: float = Field(default=2, gt=0, description="How often the Lease is renewed or tried.")
    cache_seconds: float = Field(
        default=5,
        ge=0,
        description="How long policies and channel Secrets read from the API server are reused; a policy's "
        "change drops its namespace's entry at once, a Secret's change is seen within this time.",
    )
    scheduler_concurrency: int = Field(
        default=16, ge=1, le=256, description="Incidents the scheduler processes at the same time."
    )
    kubeconfig: Path | None = Field(default=None, description="Kubeconfig to use; in-cluster config when unset.")
    api_timeout_seconds: float = Field(
        default=10,
        gt=0,
        description="Deadline of every Kubernetes API request, ours and Kopf's (watches keep their own "
        "timeouts): a frozen or unreachable API server fails a request within this, so it is retried "
        "instead of holding a look at an incident or a Lease renewal.",
    )

    @field_validator("watch_namespaces", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        # Environment variables carry lists as comma-separated text.
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("watch_namespaces")
    @classmethod
    def _exact(cls, value: list[str]) -> list[str]:
        # Kopf is told the exact namespaces (it does not list namespaces to match patterns against:
        # the operator has no right to), so a glob or a negation would silently watch nothing.
        for name in value:
            if not _NAMESPACE.fullmatch(name):
                raise ValueError(f"{name!r} is not a namespace name: watch namespaces are exact names, not patterns")
        return value
