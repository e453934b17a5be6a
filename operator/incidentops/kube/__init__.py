"""The one layer that talks to the Kubernetes API (import-linter keeps kubernetes_asyncio in here).

Where it sits: below the handlers, the scheduler, the receiver and the plugin,
beside ``actions`` and ``notify``, above ``domain`` and ``api``. Its parts:

- ``client.py``: builds the clients, each with a deadline on every request
  (the operator's from one kubeconfig or the ServiceAccount; the plugin's as
  kubectl reads kubeconfigs);
- ``objects.py``: our resources (read, list, create, patch, the status write
  under a resourceVersion precondition), Secrets, Events, Pods, ReplicaSets,
  the caller's identity, the server's version;
- ``generic.py``: any built-in kind as plain JSON (what actions change and evidence reads), with
  writes under a resourceVersion precondition;
- ``evidence.py``: what evidence reads beyond that: a container's log as the bytes the kubelet served;
- ``lease.py``: the Lease of leader election;
- ``errors.py``: what a failure is (temporary, permanent, other) and how to say it.

Callers use this package's names only, never its modules: tests replace these
functions to stand in for the API server.
"""

from incidentops.kube.client import (
    DEFAULT_TIMEOUT,
    ApiClient,
    Connection,
    KubeconfigError,
    api_client,
    connect,
    kubeconfig_paths,
)
from incidentops.kube.errors import (
    ApiError,
    ErrorKind,
    StatusConflictError,
    api_status,
    describe,
    error_kind,
    is_status,
    retry_after,
    server_message,
)
from incidentops.kube.evidence import read_pod_log
from incidentops.kube.generic import (
    CONFIGMAPS,
    DEPLOYMENTS,
    ENDPOINTSLICES,
    EVENTS,
    INGRESSES,
    NETWORKPOLICIES,
    PODS,
    REPLICASETS,
    SERVICES,
    STATEFULSETS,
    Kind,
    create_object,
    delete_object,
    get_metadata,
    get_object,
    json_patch,
    json_pointer,
    label_selector,
    list_of,
    pod_log,
    precondition_failed,
    replace_object,
    test_resource_version,
)
from incidentops.kube.lease import LeaseRecord, create_lease, read_lease, replace_lease
from incidentops.kube.objects import (
    INCIDENTS,
    POLICIES,
    Body,
    Resource,
    Secret,
    StatusMutation,
    create,
    list_events,
    list_objects,
    patch,
    post_event,
    read,
    read_pod,
    read_replica_set,
    read_secret,
    server_version,
    unserved,
    whoami,
    write_status,
)

__all__ = [
    "CONFIGMAPS",
    "DEFAULT_TIMEOUT",
    "DEPLOYMENTS",
    "ENDPOINTSLICES",
    "EVENTS",
    "INCIDENTS",
    "INGRESSES",
    "NETWORKPOLICIES",
    "PODS",
    "POLICIES",
    "REPLICASETS",
    "SERVICES",
    "STATEFULSETS",
    "ApiClient",
    "ApiError",
    "Body",
    "Connection",
    "ErrorKind",
    "Kind",
    "KubeconfigError",
    "LeaseRecord",
    "Resource",
    "Secret",
    "StatusConflictError",
    "StatusMutation",
    "api_client",
    "api_status",
    "connect",
    "create",
    "create_lease",
    "create_object",
    "delete_object",
    "describe",
    "error_kind",
    "get_metadata",
    "get_object",
    "is_status",
    "json_patch",
    "json_pointer",
    "kubeconfig_paths",
    "label_selector",
    "list_events",
    "list_objects",
    "list_of",
    "patch",
    "pod_log",
    "post_event",
    "precondition_failed",
    "read",
    "read_lease",
    "read_pod",
    "read_pod_log",
    "read_replica_set",
    "read_secret",
    "replace_lease",
    "replace_object",
    "retry_after",
    "server_message",
    "server_version",
    "test_resource_version",
    "unserved",
    "whoami",
    "write_status",
]
