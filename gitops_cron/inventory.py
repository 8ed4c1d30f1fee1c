"""Inventory: the ApplySet parent Secret (KEP-3659) and the live members it points at.

The parent records which kinds and namespaces hold members; members carry
`applyset.kubernetes.io/part-of=<id>`. The parent is widened to the union of old
and new before anything is applied, so a run that dies half-way loses track of
nothing, and narrowed only after a prune in which every deletion succeeded.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

from gitops_cron import __version__
from gitops_cron.errors import ClusterError
from gitops_cron.kube import ApiError, Kube
from gitops_cron.manifests import ObjectRef
from gitops_cron.plan import PART_OF_LABEL, ApiResource, Catalog

log = logging.getLogger(__name__)

ID_LABEL = "applyset.kubernetes.io/id"
TOOLING = "applyset.kubernetes.io/tooling"
GROUP_KINDS = "applyset.kubernetes.io/contains-group-kinds"
NAMESPACES = "applyset.kubernetes.io/additional-namespaces"
TOOLING_NAME = "gitops-cron"
STATUS_PREFIX = "gitops-cron.dev/last-run-"
APPLIED_KEY = "applied.json.gz"
SECRET = ApiResource("", "v1", "Secret", "secrets", True)
EVENT = ApiResource("", "v1", "Event", "events", True)


def applyset_id(name: str, namespace: str, kind: str = "Secret", group: str = "") -> str:
    """KEP-3659: `applyset-` + base64url(sha256("<name>.<namespace>.<kind>.<group>")) unpadded + `-v1`."""
    digest = hashlib.sha256(f"{name}.{namespace}.{kind}.{group}".encode()).digest()
    return "applyset-" + base64.urlsafe_b64encode(digest).decode().rstrip("=") + "-v1"


@dataclass(frozen=True)
class Parent:
    """What the parent said at the start of the run."""

    exists: bool
    uid: str
    group_kinds: frozenset[str]
    namespaces: frozenset[str]
    status: Mapping[str, str]
    applied: str = ""  # the applied record, as stored (see applied.py)


@dataclass(frozen=True)
class Live:
    """What pruning needs to know of one member found in the cluster."""

    ref: ObjectRef
    resource: ApiResource
    uid: str
    resource_version: str
    annotations: Mapping[str, str]
    applied_by: frozenset[str]
    controller: str
    deleting: bool


def split_list(value: str | None) -> frozenset[str]:
    return frozenset(item.strip() for item in (value or "").split(",") if item.strip())


def read_parent(kube: Kube, name: str, namespace: str, set_id: str) -> Parent:
    """The parent as it is; refuses a Secret of that name that another tool or ApplySet owns."""
    body = kube.get(SECRET, name, namespace)
    if body is None:
        return Parent(False, "", frozenset(), frozenset(), {})
    metadata = body.get("metadata") or {}
    labels, annotations = metadata.get("labels") or {}, metadata.get("annotations") or {}
    tooling = annotations.get(TOOLING, "")
    subject = f"secret/{name} -n {namespace}"
    if labels.get(ID_LABEL) != set_id:
        raise ClusterError(f"{subject} inventory failed: it exists but is not the ApplySet parent {set_id}; "
                           "choose another --inventory")
    if tooling and not tooling.startswith(TOOLING_NAME + "/"):
        # KEP-3659: a tool must not change an ApplySet that names another tool.
        raise ClusterError(f"{subject} inventory failed: it belongs to {tooling}, not {TOOLING_NAME}")
    status = {k: v for k, v in annotations.items() if k.startswith(STATUS_PREFIX)}
    return Parent(True, metadata.get("uid", ""), split_list(annotations.get(GROUP_KINDS)),
                  split_list(annotations.get(NAMESPACES)), status, (body.get("data") or {}).get(APPLIED_KEY, ""))


def covers(parent: Parent, group_kinds: Iterable[str], namespaces: Iterable[str], own_namespace: str) -> bool:
    """Whether the parent already names every kind and namespace given, so widening it would change nothing."""
    return (parent.exists and set(group_kinds) <= parent.group_kinds
            and set(namespaces) - {own_namespace, ""} <= parent.namespaces)


def apply_parent(kube: Kube, name: str, namespace: str, set_id: str, field_manager: str,
                 group_kinds: Iterable[str], namespaces: Iterable[str], status: Mapping[str, str],
                 applied: str) -> str:
    """Writes the parent with exactly these kinds, namespaces, status and applied record; returns its uid.

    Every field we own is sent each time: server-side apply removes the
    fields a manager stops sending, so a partial body would erase the rest.
    """
    body = {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {
            "name": name, "namespace": namespace,
            "labels": {ID_LABEL: set_id},
            "annotations": {
                TOOLING: f"{TOOLING_NAME}/v{__version__}",
                GROUP_KINDS: ",".join(sorted(set(group_kinds))),
                NAMESPACES: ",".join(sorted(set(namespaces) - {namespace, ""})),
                **status,
            },
        },
    }
    if applied:
        body["data"] = {APPLIED_KEY: applied}
    response = kube.apply(SECRET, name, namespace, json.dumps(body).encode(), field_manager, True, False)
    return (response.body.get("metadata") or {}).get("uid", "")


def list_members(kube: Kube, catalog: Catalog, set_id: str, group_kinds: Iterable[str],
                 namespaces: Iterable[str], concurrency: int) -> tuple[list[Live], list[str]]:
    """Every object labelled part of the set, in the kinds and namespaces given; and kinds that vanished."""
    calls: list[tuple[ApiResource, str]] = []
    gone: list[str] = []
    for group_kind in sorted(set(group_kinds)):
        resource = catalog.for_group_kind(group_kind)
        if resource is None:
            gone.append(group_kind)  # its CRD was removed, and every object of it with the CRD
            continue
        if resource.namespaced:
            calls.extend((resource, ns) for ns in sorted(set(namespaces)))
        else:
            calls.append((resource, ""))
    selector = f"{PART_OF_LABEL}={set_id}"

    def list_one(call: tuple[ApiResource, str]) -> tuple[ApiResource, list[dict[str, Any]]]:
        resource, namespace = call
        try:
            return resource, kube.list(resource, namespace, selector, metadata_only=True)
        except ApiError as error:
            where = f" in namespace {namespace}" if namespace else ""
            hint = ("; the RBAC profile does not cover it (with rbac/namespaced, set GITOPS_ALLOW_NAMESPACES)"
                    if error.status == 403 else "")
            raise ClusterError(f"{resource.group_kind} inventory listing{where} failed: {error}{hint}") from None

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        pages = list(pool.map(list_one, calls))
    members = [live_of(item, resource) for resource, items in pages for item in items]
    return members, gone


def live_of(item: dict[str, Any], resource: ApiResource) -> Live:
    """From the item's metadata alone (members are listed metadata-only)."""
    metadata = item.get("metadata") or {}
    controller = next((f"{o.get('kind')}/{o.get('name')}" for o in metadata.get("ownerReferences") or []
                       if o.get("controller")), "")
    applied_by = frozenset(entry.get("manager", "") for entry in metadata.get("managedFields") or []
                           if entry.get("operation") == "Apply")
    ref = ObjectRef(resource.group, resource.kind, metadata.get("namespace", "") if resource.namespaced else "",
                    metadata.get("name", ""))
    return Live(ref, resource, metadata.get("uid", ""), metadata.get("resourceVersion", ""),
                metadata.get("annotations") or {}, applied_by, controller, bool(metadata.get("deletionTimestamp")))


def status_annotations(commit: str | None, result: str, counts: Mapping[str, int], message: str) -> dict[str, str]:
    """The last run, as `kubectl describe secret` shows it."""
    return {
        STATUS_PREFIX + "commit": commit or "unknown",
        STATUS_PREFIX + "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        STATUS_PREFIX + "result": result,
        STATUS_PREFIX + "counts": " ".join(f"{k}={v}" for k, v in counts.items()),
        STATUS_PREFIX + "message": message[:1000],
    }


def emit_event(kube: Kube, name: str, namespace: str, uid: str, warning: bool, reason: str, message: str) -> None:
    """One core/v1 Event on the parent, so `kubectl describe secret` and event exporters see the run."""
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    event = {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": f"{name}.{uuid.uuid4().hex[:16]}", "namespace": namespace},
        "involvedObject": {"apiVersion": "v1", "kind": "Secret", "name": name, "namespace": namespace, "uid": uid},
        "reason": reason, "message": message[:1000], "type": "Warning" if warning else "Normal",
        "source": {"component": TOOLING_NAME}, "reportingComponent": TOOLING_NAME,
        "reportingInstance": TOOLING_NAME, "action": "Reconcile",
        "firstTimestamp": now, "lastTimestamp": now, "count": 1,
    }
    try:
        kube.request("POST", EVENT.path(namespace), body=event)
    except ApiError as error:
        log.warning("event %s on secret/%s -n %s failed: %s", reason, name, namespace, error.message)
