"""Apply: the ordered plan → one `Change` per object, by server-side apply.

Stages go in order; the objects of a stage go concurrently. Whether an object
was created, configured or left unchanged is read from the apply response and
the inventory listing (its resourceVersion before the run), so no object costs
more than its one request; objects the applied record shows unchanged cost none.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Mapping

from gitops_cron.errors import ClusterError, Interrupted
from gitops_cron.kube import ApiError, Kube
from gitops_cron.manifests import ObjectRef
from gitops_cron.plan import CRD_GROUP, CRD_KIND, PART_OF_LABEL, ApiResource, Desired, Plan

log = logging.getLogger(__name__)

RECREATE_ANNOTATION = "gitops-cron.dev/recreate"
CRD = ApiResource(CRD_GROUP, "v1", CRD_KIND, "customresourcedefinitions", False)
ESTABLISH_TIMEOUT = 60.0
GONE_TIMEOUT = 60.0


@dataclass(frozen=True)
class Change:
    """What happened to one object: created, configured, unchanged, recreated, failed, pruned, skipped."""

    subject: str
    action: str
    detail: str = ""
    location: str = ""
    resource_version: str = ""  # the object's, as our apply left it (not in a dry run)

    @property
    def failed(self) -> bool:
        return self.action == "failed"


@dataclass(frozen=True)
class ApplyOptions:
    field_manager: str
    set_id: str
    dry_run: bool
    recreate: bool
    adopt: bool
    concurrency: int
    planned_namespaces: frozenset[str] = frozenset()


def apply_all(kube: Kube, plan: Plan, known: Mapping[ObjectRef, str], options: ApplyOptions,
              stopping: threading.Event, not_sent: frozenset[ObjectRef] = frozenset()) -> list[Change]:
    """Applies stage after stage; `known` maps our current members to their resourceVersion, and
    `not_sent` are members the applied record shows unchanged since our last apply."""
    changes: list[Change] = []
    established: dict[str, str | None] = {}

    def start(desired: Desired) -> Change | None:
        if desired.ref in not_sent:
            return Change(str(desired.ref), "unchanged", location=desired.location)
        # Once the run is terminating, objects not yet started are left for the next run.
        return None if stopping.is_set() else apply_one(kube, desired, known, options, established)

    with ThreadPoolExecutor(max_workers=options.concurrency) as pool:
        for stage in plan.stages:
            if stopping.is_set():
                break
            for crd_name in sorted({name for desired in stage for name in desired.waits_for} - set(established)):
                established[crd_name] = wait_established(kube, crd_name, options.dry_run, changes)
            for change in pool.map(start, stage):
                if change is not None:
                    log_change(change, options.dry_run)
                    changes.append(change)
    return changes


def log_change(change: Change, dry_run: bool) -> None:
    prefix = "DRY-RUN " if dry_run else ""
    extra = {"subject": change.subject, "action": change.action, "location": change.location}
    if change.failed:
        log.error("%s%s failed: %s (%s)", prefix, change.subject, change.detail, change.location, extra=extra)
    elif change.action == "unchanged":
        log.debug("%s%s unchanged", prefix, change.subject, extra=extra)
    else:
        detail = f" ({change.detail})" if change.detail else ""
        log.info("%s%s %s%s", prefix, change.subject, change.action, detail, extra=extra)


def wait_established(kube: Kube, name: str, dry_run: bool, changes: list[Change]) -> str | None:
    """None once the CRD serves its kind; otherwise why its custom resources cannot be applied."""
    if dry_run:
        return "its CustomResourceDefinition is only applied in dry-run mode, so the kind does not exist yet"
    if any(c.subject == str(ObjectRef(CRD_GROUP, CRD_KIND, "", name)) and c.failed for c in changes):
        return f"its CustomResourceDefinition {name} failed to apply"
    deadline = time.monotonic() + ESTABLISH_TIMEOUT
    while True:
        crd = kube.get(CRD, name) or {}
        conditions = (crd.get("status") or {}).get("conditions") or []
        if any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
            if served_in_discovery(kube, crd.get("spec") or {}):
                log.info("%s established", ObjectRef(CRD_GROUP, CRD_KIND, "", name))
                return None
        if time.monotonic() >= deadline:
            return f"its CustomResourceDefinition {name} was not Established within {ESTABLISH_TIMEOUT:.0f}s"
        if kube.stopping.wait(0.25):
            raise Interrupted(f"waiting for {ObjectRef(CRD_GROUP, CRD_KIND, '', name)} interrupted: terminating")


def served_in_discovery(kube: Kube, spec: dict[str, Any]) -> bool:
    """Established is not enough: the API server serves the new kind only once its discovery
    document lists it (a request a moment earlier can 404)."""
    plural = (spec.get("names") or {}).get("plural")
    for version in spec.get("versions") or []:
        if not version.get("served", True):
            continue
        try:
            listing = kube.request("GET", f"/apis/{spec.get('group')}/{version.get('name')}").body
        except ApiError:
            return False
        if plural not in {r.get("name") for r in listing.get("resources") or []}:
            return False
    return True


def apply_one(kube: Kube, desired: Desired, known: Mapping[ObjectRef, str], options: ApplyOptions,
              established: Mapping[str, str | None]) -> Change:
    subject = str(desired.ref)
    blocked = next((established[n] for n in desired.waits_for if established.get(n)), None)
    if blocked:
        action = "skipped" if options.dry_run else "failed"
        return Change(subject, action, f"not applied: {blocked}", desired.location)
    try:
        return apply_checked(kube, desired, known, options)
    except ApiError as error:
        return Change(subject, "failed", explain(error), desired.location)
    except ClusterError as error:
        return Change(subject, "failed", str(error), desired.location)
    except Interrupted as error:
        return Change(subject, "failed", f"not applied: {error}", desired.location)


def apply_checked(kube: Kube, desired: Desired, known: Mapping[ObjectRef, str], options: ApplyOptions) -> Change:
    """Members are applied with force (git wins over drift). An object we do not yet own is first
    applied without force: a conflict then tells us someone else holds it, and we look before taking it."""
    resource, ref, body = desired.resource, desired.ref, desired.payload
    subject = str(ref)
    member = ref in known
    # A dry-run answer keeps the old resourceVersion, so a dry run compares bodies instead.
    live_before = kube.get(resource, ref.name, ref.namespace) if options.dry_run and member else None
    try:
        response = kube.apply(resource, ref.name, ref.namespace, body, options.field_manager, member, options.dry_run)
    except ApiError as error:
        if error.status == 409 and not member:
            refusal = foreign_owner(kube, desired, options)
            if refusal:
                return Change(subject, "failed", refusal, desired.location)
            response = kube.apply(resource, ref.name, ref.namespace, body, options.field_manager, True, options.dry_run)
        elif error.status == 422 and immutable_fields(error):
            return recreate_or_fail(kube, desired, error, options)
        elif options.dry_run and error.status == 404 and ref.namespace in options.planned_namespaces:
            # The dry run did not really create the namespace this object goes into.
            return Change(subject, "created", "dry run: its namespace is created by this run",
                          desired.location)
        else:
            raise
    version = "" if options.dry_run else (response.body.get("metadata") or {}).get("resourceVersion", "")
    if response.status == 201:
        return Change(subject, "created", location=desired.location, resource_version=version)
    if options.dry_run:
        unchanged = live_before is not None and comparable(live_before) == comparable(response.body)
    else:
        unchanged = member and known[ref] == version
    return Change(subject, "unchanged" if unchanged else "configured", location=desired.location,
                  resource_version=version)


def comparable(body: dict[str, Any]) -> dict[str, Any]:
    """The object without the bookkeeping a dry-run answer may differ in."""
    metadata = {k: v for k, v in (body.get("metadata") or {}).items() if k not in ("managedFields", "resourceVersion")}
    return {**body, "metadata": metadata}


def foreign_owner(kube: Kube, desired: Desired, options: ApplyOptions) -> str | None:
    """Why we must not take this object over, or None when we may."""
    live = kube.get(desired.resource, desired.ref.name, desired.ref.namespace) or {}
    owner = ((live.get("metadata") or {}).get("labels") or {}).get(PART_OF_LABEL)
    if owner and owner != options.set_id and not options.adopt:
        return (f"belongs to another inventory ({PART_OF_LABEL}={owner}); not taken over "
                "(set --adopt to take it over)")
    return None


def immutable_fields(error: ApiError) -> list[str]:
    fields = [c.get("field", "") for c in error.causes if "immutable" in str(c.get("message", ""))]
    if not fields and "immutable" in error.message:
        fields = ["(see message)"]
    return fields


def explain(error: ApiError) -> str:
    fields = immutable_fields(error) if error.status == 422 else []
    if fields:
        return (f"field is immutable: {', '.join(fields)}; annotate {RECREATE_ANNOTATION}: \"true\" "
                f"or set --recreate to delete and recreate it")
    return str(error)


def recreate_or_fail(kube: Kube, desired: Desired, error: ApiError, options: ApplyOptions) -> Change:
    """Deletes and re-creates an object whose change hits an immutable field, when the user opted in."""
    subject = str(desired.ref)
    annotations = (desired.body.get("metadata") or {}).get("annotations") or {}
    if not (options.recreate or str(annotations.get(RECREATE_ANNOTATION, "")).lower() == "true"):
        return Change(subject, "failed", explain(error), desired.location)
    fields = ", ".join(immutable_fields(error))
    if options.dry_run:
        return Change(subject, "recreated", f"would delete and recreate for {fields}", desired.location)
    resource, ref = desired.resource, desired.ref
    live = kube.get(resource, ref.name, ref.namespace)
    if live is not None:
        uid = (live.get("metadata") or {}).get("uid")
        # Background: the object goes at once and the garbage collector removes its dependents
        # (old ReplicaSets, Pods) after it; Foreground would hold the name until they are gone.
        kube.delete(resource, ref.name, ref.namespace, "Background", {"uid": uid} if uid else None, False)
        deadline = time.monotonic() + GONE_TIMEOUT
        while kube.get(resource, ref.name, ref.namespace) is not None:
            if time.monotonic() >= deadline:
                return Change(subject, "failed", f"deleted for recreation but still present after {GONE_TIMEOUT:.0f}s",
                              desired.location)
            if kube.stopping.wait(0.25):
                raise Interrupted(f"{subject} recreation interrupted: terminating")
    response = kube.apply(resource, ref.name, ref.namespace, desired.payload, options.field_manager, True, False)
    return Change(subject, "recreated", f"immutable {fields} changed", desired.location,
                  (response.body.get("metadata") or {}).get("resourceVersion", ""))
