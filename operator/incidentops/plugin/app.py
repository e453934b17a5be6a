"""The commands of ``kubectl incident``, and ``main``.

Every write is a JSON merge patch of ``spec`` guarded by the resourceVersion
read just before (see ``logic``); on 409 Conflict the command reads again and
decides again, so two people acknowledging at once leave one acknowledgement
and the second is told who was first. ``by`` is who the API server says the
caller is (SelfSubjectReview), never a name the caller typed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
from pydantic import ValidationError

from incidentops import kube
from incidentops.api import EscalationPolicy
from incidentops.domain import report as domain_report
from incidentops.domain import report_text
from incidentops.kube import INCIDENTS, Connection
from incidentops.plugin import args as cli_args
from incidentops.plugin import evidence, logic, receiver, render, scenario
from incidentops.plugin import postmortem as postmortems
from incidentops.plugin.connection import (
    INCIDENTS_RESOURCE,
    PluginError,
    Request,
    connect,
    explain,
    unreachable,
)

Body = dict[str, Any]
T = TypeVar("T")

WRITE_ATTEMPTS = 5


class Conflict(Exception):
    """The object changed since it was read (409): read again and decide again."""


class AlreadyExists(Exception):
    """An object of that name exists already (409 on create)."""


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass
class Session:
    """One invocation: the connection, the namespace in effect, and the clock."""

    conn: Connection
    namespace: str
    now: Callable[[], datetime.datetime] = _now
    _identity: str | None = field(default=None, repr=False)

    async def _call(self, request: Request, call: Awaitable[T]) -> T:
        try:
            return await call
        except kube.ApiError as exc:
            if exc.status == 409:
                raise (AlreadyExists if request.verb == "create" else Conflict)(explain(exc, request)) from exc
            raise PluginError(explain(exc, request)) from exc

    async def get(self, name: str) -> Body:
        return await self._call(
            Request("get", namespace=self.namespace, name=name),
            kube.read(self.conn.api, INCIDENTS, self.namespace, name),
        )

    def in_namespace(self, namespace: str) -> Session:
        """The same connection and clock, in ``namespace``."""
        return Session(self.conn, namespace, self.now)

    async def find(self, name: str) -> Body | None:
        """The incident, or None while it does not exist (404)."""
        try:
            return await kube.read(self.conn.api, INCIDENTS, self.namespace, name)
        except kube.ApiError as exc:
            if exc.status == 404:
                return None
            raise PluginError(explain(exc, Request("get", namespace=self.namespace, name=name))) from exc

    async def list_incidents(self, all_namespaces: bool) -> list[Body]:
        namespace = None if all_namespaces else self.namespace
        items = await self._call(
            Request("list", namespace=namespace), kube.list_objects(self.conn.api, INCIDENTS, namespace)
        )
        for item in items:  # a list's items carry no apiVersion/kind; -o json/yaml should show them
            item.setdefault("apiVersion", f"{INCIDENTS.group}/{INCIDENTS.version}")
            item.setdefault("kind", INCIDENTS.kind)
        return items

    async def patch(self, name: str, patch: Body) -> Body:
        return await self._call(
            Request("patch", namespace=self.namespace, name=name),
            kube.patch(self.conn.api, INCIDENTS, self.namespace, name, patch),
        )

    async def create(self, body: Body) -> Body:
        return await self._call(
            Request("create", namespace=self.namespace), kube.create(self.conn.api, INCIDENTS, self.namespace, body)
        )

    async def configmap(self, name: str) -> Body | None:
        """A ConfigMap of the namespace (a post-mortem draft), or None when it does not exist."""
        return await self._call(
            Request("get", "configmaps", self.namespace, name),
            kube.get_object(self.conn.api, kube.CONFIGMAPS, self.namespace, name),
        )

    async def events(self, body: Body) -> list[Body] | None:
        """The incident's Events, or None when they cannot be read (no right to: not worth failing over)."""
        meta = body.get("metadata") or {}
        selector = f"involvedObject.kind={INCIDENTS.kind},involvedObject.name={meta.get('name')}"
        if meta.get("uid"):
            selector += f",involvedObject.uid={meta['uid']}"
        try:
            return await kube.list_events(self.conn.api, self.namespace, selector)
        except kube.ApiError as exc:
            if exc.status in (403, 404):
                return None
            raise PluginError(explain(exc, Request("list", "events", self.namespace))) from exc

    async def policy(self, namespace: str, name: str) -> Body | None:
        """An EscalationPolicy, or None when it is gone or cannot be read (the report then uses the defaults)."""
        try:
            return await kube.read(self.conn.api, kube.POLICIES, namespace, name)
        except kube.ApiError as exc:
            if exc.status in (403, 404):
                return None
            raise PluginError(explain(exc, Request("get", "escalationpolicies", namespace, name))) from exc

    async def identity(self) -> str:
        """Who the API server says the caller is (SelfSubjectReview), asked once per invocation."""
        if self._identity is None:
            try:
                username = await kube.whoami(self.conn.api)
            except kube.ApiError as exc:
                if exc.status == 404:
                    raise PluginError(
                        "cannot tell who you are: the cluster does not serve SelfSubjectReview "
                        "(authentication.k8s.io/v1, Kubernetes 1.28 or later)"
                    ) from exc
                raise PluginError(
                    "cannot tell who you are: "
                    + explain(exc, Request("create", "selfsubjectreviews.authentication.k8s.io"))
                ) from exc
            if not username:
                raise PluginError("cannot tell who you are: the cluster's SelfSubjectReview named no user")
            self._identity = username
        return self._identity


def _out(line: str = "") -> None:
    print(line, file=sys.stdout, flush=True)


def _err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# --- commands ------------------------------------------------------------------------------------


async def cmd_list(session: Session, args: argparse.Namespace) -> int:
    return _print_list(session, args, await session.list_incidents(args.all_namespaces), "incidents")


def _print_list(session: Session, args: argparse.Namespace, items: list[Body], what: str) -> int:
    if args.output in ("json", "yaml"):
        _out(render.dump(render.as_list(items), args.output))
        return 0
    if not items:
        where = "any namespace" if args.all_namespaces else f"{session.namespace} namespace"
        _err(f"No {what} found in {where}.")
        return 0
    _out(render.incident_table(items, session.now(), all_namespaces=args.all_namespaces, wide=args.output == "wide"))
    return 0


async def cmd_describe(session: Session, args: argparse.Namespace) -> int:
    body = await session.get(args.name)
    if args.output:
        _out(render.dump(body, args.output))
        return 0
    events = await session.events(body)
    _out(render.describe(body, session.now(), events))
    return 0


async def cmd_mark(session: Session, args: argparse.Namespace) -> int:
    """ack, contain, resolve: idempotent within an episode, a new ``at`` after a reopen."""
    mark = logic.MARKS[args.command]
    for _ in range(WRITE_ATTEMPTS):
        body = await session.get(args.name)
        done = logic.current_record(body, mark.field)
        if done is not None:
            _out(
                f'incident "{args.name}" was already {mark.past} by {done.get("by")} at {done.get("at")} '
                f"({logic.relative(done.get('at'), session.now())}); nothing changed"
            )
            return 0
        by = await session.identity()
        at = logic.stamp(session.now(), not_before=(body.get("status") or {}).get("episodeStartedAt"))
        value = logic.mark_value(
            mark,
            by,
            at,
            note=getattr(args, "note", None),
            summary=getattr(args, "summary", None),
            root_cause=getattr(args, "root_cause", None),
        )
        try:
            await session.patch(args.name, logic.spec_patch(body["metadata"]["resourceVersion"], mark.field, value))
        except Conflict:
            continue  # somebody wrote in between: read again, maybe they did what we meant to
        _out(f'incident "{args.name}" {mark.past} by {by} at {value["at"]}')
        return 0
    raise PluginError(f'incident "{args.name}" kept changing while writing; try again')


async def cmd_update(session: Session, args: argparse.Namespace) -> int:
    for _ in range(WRITE_ATTEMPTS):
        body = await session.get(args.name)
        previous = (body.get("spec") or {}).get("statusUpdate") or {}
        by = await session.identity()
        at = logic.stamp(session.now(), after=previous.get("at") if isinstance(previous, dict) else None)
        value = logic.status_update_value(args.message, by, at)
        try:
            await session.patch(args.name, logic.spec_patch(body["metadata"]["resourceVersion"], "statusUpdate", value))
        except Conflict:
            continue
        _out(f'status update posted to incident "{args.name}" by {by} at {value["at"]}')
        return 0
    raise PluginError(f'incident "{args.name}" kept changing while writing; try again')


async def _create(session: Session, name: str | None, title: str, build: Callable[[str], Body]) -> Body:
    """Create the incident ``build`` makes for a name: ``name``, or one drawn from ``title`` (another
    suffix when a drawn name is taken)."""
    for _ in range(1 if name else WRITE_ATTEMPTS):
        candidate = name or logic.generate_name(title)
        try:
            body = build(candidate)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
            raise PluginError(f"invalid incident: {problems}") from exc
        try:
            return await session.create(body)
        except AlreadyExists as exc:
            if name:
                raise PluginError(f'incident "{name}" already exists in namespace "{session.namespace}"') from exc
            continue  # a generated name collided: draw another suffix
    raise PluginError("could not find a free name for the incident; pass --name")


def _print_created(created: Body, output: str | None, line: str) -> None:
    if output == "name":
        _out(f"{INCIDENTS.kind.lower()}.{INCIDENTS.group}/{created['metadata']['name']}")  # as kubectl -o name
    elif output:
        _out(render.dump(created, output))
    else:
        _out(line)


async def cmd_declare(session: Session, args: argparse.Namespace) -> int:
    def build(name: str) -> Body:
        return logic.declare_body(
            name,
            session.namespace,
            title=args.title,
            severity=args.severity,
            incident_type=args.incident_type,
            description=args.description,
            drill=args.drill,
            policy=args.policy,
        )

    created = await _create(session, args.name, args.title, build)
    details = ", ".join(x for x in (args.severity, args.incident_type, "DRILL" if args.drill else None) if x)
    _print_created(
        created,
        args.output,
        f'incident "{created["metadata"]["name"]}" declared in namespace "{session.namespace}" ({details})',
    )
    return 0


async def cmd_actions(session: Session, args: argparse.Namespace) -> int:
    body = await session.get(args.name)
    if args.output:
        _out(render.dump((body.get("status") or {}).get("actions") or [], args.output))
        return 0
    _out(render.action_ledger(body, session.now()))
    return 0


async def _add_entries(
    session: Session,
    name: str,
    field: str,
    actions_of: Callable[[Body], list[str]],
    refusal: Callable[[Body, str], str | None],
) -> list[str]:
    """Add an entry ``{action, by, at}`` to ``spec.<field>`` for each action ``actions_of`` the incident names
    (each checked by ``refusal`` first), under the resourceVersion read; the actions written."""
    for _ in range(WRITE_ATTEMPTS):
        body = await session.get(name)
        actions = actions_of(body)
        for action in actions:
            problem = refusal(body, action)
            if problem is not None:
                raise PluginError(problem)
        if not actions:
            return []
        by = await session.identity()
        at = session.now()
        entries = (body.get("spec") or {}).get(field) or []
        for action in actions:
            entries = logic.with_entry({"spec": {field: entries}}, field, action, by, at)
        try:
            await session.patch(
                name, {"metadata": {"resourceVersion": body["metadata"]["resourceVersion"]}, "spec": {field: entries}}
            )
        except Conflict:
            continue
        return actions
    raise PluginError(f'incident "{name}" kept changing while writing; try again')


async def cmd_approve(session: Session, args: argparse.Namespace) -> int:
    # The API server refuses a caller without the right to patch the incident (403), and says so.
    await _add_entries(session, args.name, "approvals", lambda _: [args.action], logic.approval_refusal)
    _out(f'action "{args.action}" of incident "{args.name}" approved by {await session.identity()}')
    return 0


async def cmd_undo(session: Session, args: argparse.Namespace) -> int:
    await _add_entries(session, args.name, "undo", lambda _: [args.action], logic.undo_refusal)
    _out(f'undo of action "{args.action}" of incident "{args.name}" asked by {await session.identity()}')
    return 0


async def cmd_release(session: Session, args: argparse.Namespace) -> int:
    released = await _add_entries(session, args.name, "undo", logic.quarantines, logic.undo_refusal)
    if not released:
        _out(f'incident "{args.name}" has no quarantine in place; nothing changed')
        return 0
    _out(f'release of {", ".join(released)} of incident "{args.name}" asked by {await session.identity()}')
    return 0


async def cmd_evidence(session: Session, args: argparse.Namespace) -> int:
    body = await session.get(args.name)
    if args.verify or args.extract:
        return await evidence.run(
            session.conn.api, session.namespace, body, verify=args.verify, extract=args.extract, out=_out, err=_err
        )
    records = evidence.records(body)
    if args.output:
        _out(render.dump(records, args.output))
    elif not records:
        _err(f'No evidence recorded for incident "{args.name}".')
    else:
        _out(render.evidence_table(records, session.now()))
    return 0


# --- drills ---------------------------------------------------------------------------------------

POLL_INTERVAL = 0.5


@dataclass(frozen=True)
class DrillStart:
    """``drill start``, checked before the cluster is reached: the scenario, where, and the receiver."""

    scenario: scenario.Scenario
    namespace: str | None  # the scenario's, else -n; None: the context's (alerts: the receiver decides)
    url: str | None = None
    token: str | None = None


def prepare_drill(args: argparse.Namespace) -> DrillStart:
    """Read and check the scenario and the flags it needs; :class:`PluginError` says what is wrong."""
    try:
        drill = scenario.load(args.scenario)
    except scenario.ScenarioError as exc:
        raise PluginError(str(exc)) from None
    if drill.namespace and args.namespace and drill.namespace != args.namespace:
        raise PluginError(
            f'the scenario\'s namespace "{drill.namespace}" does not match the namespace "{args.namespace}" of -n'
        )
    namespace = drill.namespace or args.namespace
    if drill.alerts is None:
        if args.receiver or args.token_file:
            raise PluginError("--receiver and --token-file are for a scenario with alerts; this one has none")
        return DrillStart(drill, namespace)
    if not args.receiver or not args.token_file:
        raise PluginError(
            "the scenario has alerts: give the operator's receiver and its token, --receiver URL --token-file FILE"
            " (with the chart: kubectl -n NS port-forward svc/RELEASE-receiver 8080, and the token of the Secret"
            " RELEASE-receiver-token)"
        )
    if args.name:
        raise PluginError("--name is for a scenario without alerts: the receiver names an alert-born incident")
    return DrillStart(drill, namespace, receiver.alerts_url(args.receiver), receiver.read_token(args.token_file))


def _kept(sent: Body, body: Body) -> list[str]:
    """Notes on what of ``sent`` the API server did not keep in ``body``'s spec (pruned: an older CRD)."""
    spec = body.get("spec") or {}
    if scenario.DRILL_TARGETS_FIELD in sent and scenario.DRILL_TARGETS_FIELD not in spec:
        return [
            f"note: this cluster's Incident API does not keep spec.{scenario.DRILL_TARGETS_FIELD} (its CRD"
            " predates drill targets): the drill runs without them"
        ]
    return []


async def _poll(check: Callable[[], Awaitable[T | None]], deadline: float) -> T | None:
    """``check`` until it returns something, or None once ``deadline`` (monotonic) has passed."""
    while True:
        found = await check()
        if found is not None or time.monotonic() >= deadline:
            return found
        await asyncio.sleep(min(POLL_INTERVAL, max(0.0, deadline - time.monotonic())))


async def _add_to_drill(session: Session, name: str, extra: Body) -> Body:
    """Add ``extra`` to the spec of drill ``name``, never to an incident that is not a drill."""
    for _ in range(WRITE_ATTEMPTS * 2):  # the operator and the receiver write its status meanwhile
        body = await session.get(name)
        if not (body.get("spec") or {}).get("drill"):
            raise PluginError(f'incident "{name}" is not a drill: its actions would not be dry runs; nothing added')
        try:
            return await session.patch(
                name, {"metadata": {"resourceVersion": body["metadata"]["resourceVersion"]}, "spec": extra}
            )
        except Conflict:
            continue
    raise PluginError(f'incident "{name}" kept changing while writing; try again')


async def _declare_drill(session: Session, args: argparse.Namespace, start: DrillStart) -> int:
    drill = start.scenario
    if start.namespace:
        session = session.in_namespace(start.namespace)
    extra = scenario.declare_extra(drill)

    def build(name: str) -> Body:
        return logic.declare_body(
            name,
            session.namespace,
            title=drill.title,
            severity=drill.severity.value,
            incident_type=drill.type.value if drill.type else None,
            description=drill.description,
            drill=True,
            policy=drill.policy,
            extra=extra,
        )

    created = await _create(session, args.name, f"drill {drill.title}", build)
    for note in _kept(extra, created):
        _err(note)
    details = ", ".join(x for x in (drill.severity.value, drill.type.value if drill.type else None, "DRILL") if x)
    _print_created(
        created,
        args.output,
        f'drill "{created["metadata"]["name"]}" declared in namespace "{session.namespace}" ({details})',
    )
    return 0


async def _alert_drill(session: Session, args: argparse.Namespace, start: DrillStart) -> int:
    drill = start.scenario
    assert drill.alerts is not None and start.url is not None and start.token is not None
    payload = scenario.webhook_payload(drill, session.now(), scenario.run_id(), start.namespace)
    deadline = time.monotonic() + (args.timeout or 0)
    opened = await receiver.post(
        start.url, start.token, payload, ca_file=args.receiver_ca, request_timeout=args.request_timeout or None
    )
    where = session.in_namespace(opened.namespace)
    body = await _poll(lambda: where.find(opened.name), deadline)
    if body is None:
        raise PluginError(
            f'the receiver named incident "{opened.name}" in namespace "{opened.namespace}", which did not appear'
            f" within {args.timeout:g}s"
        )
    if not (body.get("spec") or {}).get("drill"):
        raise PluginError(
            f'the receiver opened incident "{opened.name}" in namespace "{opened.namespace}" without marking it a'
            " drill (an operator older than drills?): it pages and acts as a REAL incident. Nothing was added to"
            f' it; resolve it: kubectl incident resolve {opened.name} -n {opened.namespace} --summary "a drill"'
        )
    extra = scenario.after_intake(drill)
    if extra:
        body = await _add_to_drill(where, opened.name, extra)
        for note in _kept(extra, body):
            _err(note)

    async def classified() -> Body | None:
        found = await where.find(opened.name)
        return found if found is not None and (found.get("status") or {}).get("severity") else None

    body = await _poll(classified, deadline) or body
    severity = (body.get("status") or {}).get("severity")
    if not severity:
        verdict = "not classified yet (is the operator running?)"
    elif severity == drill.severity.value:
        verdict = f"classified {severity}, as the scenario expects"
    else:
        verdict = f"classified {severity}, the scenario expects {drill.severity.value}"
        _err(f"warning: {verdict}: check the alerts' labels and the policy's classification")
    alerts = len(payload["alerts"])
    _print_created(
        body,
        args.output,
        f'drill "{opened.name}" started in namespace "{opened.namespace}": {alerts} alert(s) posted to'
        f" {start.url} ({'created' if opened.created else 'an existing incident'}); {verdict}",
    )
    return 0


async def cmd_drill(session: Session, args: argparse.Namespace) -> int:
    if args.drill_command == "list":
        items = await session.list_incidents(args.all_namespaces)
        return _print_list(session, args, [i for i in items if (i.get("spec") or {}).get("drill")], "drills")
    start: DrillStart = args.prepared
    if start.scenario.alerts is None:
        return await _declare_drill(session, args, start)
    return await _alert_drill(session, args, start)


async def _policies(session: Session, names: set[str]) -> tuple[dict[str, EscalationPolicy], list[str]]:
    """The policies the incidents name (``namespace/name``), read one by one (no list right needed); those
    that cannot be read, for a note (their incidents are held to the default targets)."""
    found: dict[str, EscalationPolicy] = {}
    missing: list[str] = []
    for ref in sorted(names):
        namespace, _, name = ref.partition("/")
        body = await session.policy(namespace, name)
        try:
            found[ref] = EscalationPolicy.model_validate(body)
        except ValidationError:
            missing.append(ref)
    return found, missing


async def cmd_report(session: Session, args: argparse.Namespace) -> int:
    now = session.now()
    if args.month is not None:
        period = domain_report.month_period(*args.month)
    else:
        since = args.since or "30d"
        period = domain_report.since_period(domain_report.parse_since(since), now, since)
    items = await session.list_incidents(args.all_namespaces)
    names = {ref for item in items if isinstance(ref := (item.get("status") or {}).get("escalationPolicy"), str)}
    policies, missing = await _policies(session, names)
    if missing:
        _err(f"Note: policies {', '.join(missing)} could not be read; their incidents are held to the default targets.")
    scope = "all namespaces" if args.all_namespaces else f"namespace {session.namespace}"
    result = domain_report.build(items, period, now, policies=policies, scope=scope)
    if args.output == "json":
        _out(render.dump(result.model_dump(mode="json"), "json"))
    else:
        _out(report_text.markdown(result).rstrip("\n"))
    return 0


async def cmd_postmortem(session: Session, args: argparse.Namespace) -> int:
    """Print the draft (or a drill's assessment); or ask for a draft, add action items, complete it."""
    items = [postmortems.parse_action_item(text) for text in args.action_item or []]
    writes = args.draft or args.complete or args.url is not None or bool(items)
    if not writes:
        body = await session.get(args.name)
        ref = postmortems.draft_ref(body)
        if ref is None:
            raise PluginError(postmortems.no_draft(body))
        found = await session.configmap(ref)
        text = ((found or {}).get("data") or {}).get(postmortems.document_key(body, args.output))
        if not isinstance(text, str):
            raise PluginError(f'the draft ConfigMap "{ref}" of incident "{args.name}" is gone or holds no draft')
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()
        return 0
    for _ in range(WRITE_ATTEMPTS):
        body = await session.get(args.name)
        value = postmortems.postmortem_value(body, draft=args.draft, complete=args.complete, url=args.url, items=items)
        if value is None:
            _out(f'incident "{args.name}": the post-mortem already says so; nothing changed')
            return 0
        try:
            await session.patch(args.name, logic.spec_patch(body["metadata"]["resourceVersion"], "postmortem", value))
        except Conflict:
            continue
        done = "completed" if value.get("completed") else "draft requested" if args.draft else "updated"
        _out(f'post-mortem of incident "{args.name}" {done} by {await session.identity()}')
        return 0
    raise PluginError(f'incident "{args.name}" kept changing while writing; try again')


COMMANDS: dict[str, Callable[[Session, argparse.Namespace], Awaitable[int]]] = {
    "list": cmd_list,
    "describe": cmd_describe,
    "declare": cmd_declare,
    "ack": cmd_mark,
    "contain": cmd_mark,
    "resolve": cmd_mark,
    "update": cmd_update,
    "actions": cmd_actions,
    "approve": cmd_approve,
    "undo": cmd_undo,
    "release": cmd_release,
    "evidence": cmd_evidence,
    "drill": cmd_drill,
    "report": cmd_report,
    "postmortem": cmd_postmortem,
}


async def run(args: argparse.Namespace) -> int:
    conn: Connection | None = None
    if args.command == "drill" and args.drill_command == "start":
        args.prepared = prepare_drill(args)  # a bad scenario is said before any cluster is reached
    try:
        conn = await connect(args.kubeconfig, args.context, args.request_timeout or None)
        session = Session(conn, args.namespace or conn.namespace)
        return await COMMANDS[args.command](session, args)
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise PluginError(unreachable(conn, exc)) from exc
    finally:
        if conn is not None:
            await conn.close()


def main(argv: Sequence[str] | None = None) -> int:
    """``kubectl incident``: 0 on success, 1 on a failure explained on stderr, 2 on misuse."""
    try:
        args = cli_args.parse(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # argparse printed the usage and the problem (or --help)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    try:
        return asyncio.run(run(args))
    except PluginError as exc:
        _err(f"Error: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130


__all__ = ["INCIDENTS_RESOURCE", "Session", "main"]
