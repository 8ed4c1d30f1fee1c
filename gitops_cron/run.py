"""Run: the stages of one reconcile in a straight line, from settings to summary.

Order matters for safety: nothing touches the cluster until the source is read
and parsed; the parent is widened before anything is applied; nothing is pruned
after any error; the parent is narrowed only after a prune with no failure.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from gitops_cron import applied, inventory
from gitops_cron.apply import ApplyOptions, Change, apply_all
from gitops_cron.config import Settings
from gitops_cron.errors import GitopsError, Interrupted, ManifestError, PruneRefused
from gitops_cron.kube import Kube, make_api_client
from gitops_cron.lock import RunLock
from gitops_cron.manifests import ObjectRef, Parsed, load_manifests
from gitops_cron.plan import Catalog, Plan, Scope, describe_plan, make_plan, namespace_in_scope, offline_catalog
from gitops_cron.prune import check_guards, kept_changes, prune_stale, select_stale
from gitops_cron.report import Summary, stage
from gitops_cron.source import checkout

log = logging.getLogger(__name__)


def reconcile(settings: Settings, workdir: Path, stopping: threading.Event, summary: Summary) -> int:
    """One run; returns the exit code, or raises a GitopsError that maps to one."""
    deadline = time.monotonic() + settings.timeout
    # Connecting and discovery only read, and they need nothing from git: they run while git clones.
    connecting = None if settings.plan else start_connecting(settings, deadline, stopping)
    with stage("source", summary.timings):
        source = checkout(settings.repo, settings.revision, settings.path, settings.git_credentials_dir,
                          settings.ssh_insecure_ignore_host_key, workdir, min(settings.clone_timeout, settings.timeout),
                          settings.max_file_bytes, stopping)
    summary.commit = source.commit
    log.info("source %s at commit %s", source.origin, source.commit or "(not a git work tree)")
    with stage("parse", summary.timings):
        parsed = load_manifests(source.files, settings.max_yaml_nodes)
    for location in parsed.skipped:
        log.info("%s skipped: not a Kubernetes object (no apiVersion and no kind)", location)
    errors = [*source.errors, *parsed.errors]
    log.info("read %d object(s) from %d file(s)", len(parsed.manifests), len(source.files))
    set_id = inventory.applyset_id(settings.inventory, settings.namespace)
    scope = Scope(settings.allow_namespaces, settings.deny_namespaces, settings.allow_kinds, settings.deny_kinds)
    if settings.plan:
        return print_plan(settings, parsed, errors, set_id, scope, summary)

    assert connecting is not None
    kube, catalog = connecting.result()
    summary.requests = kube.counts  # API requests by verb, for the summary line
    lock = None
    if not settings.dry_run:
        identity = f"{os.environ.get('HOSTNAME', 'gitops-cron')}-{uuid.uuid4().hex[:8]}"
        lock = RunLock(kube, settings.inventory, settings.namespace, settings.lock_duration, identity)
        holder = lock.acquire()
        if holder:
            summary.result = "skipped"
            summary.message = f"another run is in progress (lease/{settings.inventory} held by {holder})"
            log.info("%s; this run does nothing", summary.message)
            return 0
    try:
        return converge(kube, catalog, settings, parsed, errors, set_id, scope, lock, summary)
    finally:
        if lock is not None:
            lock.release()


def start_connecting(settings: Settings, deadline: float, stopping: threading.Event) -> Future[tuple[Kube, Catalog]]:
    """Client set-up and discovery on a thread of their own; the result (or error) is taken after the parse."""
    def connect() -> tuple[Kube, Catalog]:
        kube = Kube(make_api_client(settings.kubeconfig, settings.context, settings.concurrency + 2), deadline,
                    stopping)
        return kube, kube.discover()

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="connect")
    future = pool.submit(connect)
    pool.shutdown(wait=False)
    return future


def converge(kube: Kube, catalog: Catalog, settings: Settings, parsed: Parsed, errors: list[ManifestError],
             set_id: str, scope: Scope, lock: RunLock | None, summary: Summary) -> int:
    stopping = kube.stopping
    with stage("plan", summary.timings):
        plan = make_plan(parsed.manifests, catalog, set_id, settings.default_namespace, scope)
    errors = [*errors, *plan.errors]
    for error in errors:
        log.error("%s", error, extra={"location": error.location, "action": "failed"})
    summary.changes.extend(Change(e.location, "failed", e.reason, e.location) for e in errors)
    parent = inventory.read_parent(kube, settings.inventory, settings.namespace, set_id)
    desired_kinds = {d.resource.group_kind for d in plan.objects}
    desired_namespaces = {d.ref.namespace for d in plan.objects if d.ref.namespace}
    tracked_kinds = set(parent.group_kinds) | desired_kinds
    tracked_namespaces = set(parent.namespaces) | desired_namespaces | {settings.namespace}
    # A run confined by the scope policy never manages, so never needs to look, outside its namespaces
    # (and a namespaced RBAC profile would forbid it to).
    listed_namespaces = {ns for ns in tracked_namespaces if namespace_in_scope(ns, scope)}
    record = Recorder(kube, settings, set_id, parent, summary)
    try:
        if not settings.dry_run and not inventory.covers(parent, tracked_kinds, tracked_namespaces,
                                                          settings.namespace):
            # Widen first (KEP-3659): if this run dies half-way, the next still finds every member.
            record.uid = inventory.apply_parent(kube, settings.inventory, settings.namespace, set_id,
                                                settings.field_manager, tracked_kinds, tracked_namespaces,
                                                parent.status, parent.applied)
        with stage("inventory", summary.timings):
            members, gone = inventory.list_members(kube, catalog, set_id, tracked_kinds, listed_namespaces,
                                                   settings.concurrency)
        tracked_kinds -= set(gone) - desired_kinds  # a kind this run's CRD creates is not gone
        log.info("inventory %s: %d member(s) in %d kind(s)", set_id, len(members), len(tracked_kinds))
        planned_namespaces = frozenset(d.ref.name for d in plan.objects if d.ref.kind == "Namespace" and not d.ref.group)
        options = ApplyOptions(settings.field_manager, set_id, settings.dry_run, settings.recreate, settings.adopt,
                               settings.concurrency, planned_namespaces)
        known = {m.ref: m.resource_version for m in members}
        before, started = applied.decode(parent.applied), time.time()
        full = applied.full_apply_due(before, started, settings.full_apply_interval)
        not_sent = frozenset() if full else applied.unchanged_since_applied(plan.objects, known, before,
                                                                           settings.field_manager)
        if not_sent:
            log.info("%d object(s) unchanged in git and in the cluster since their last apply: not sent "
                     "(every object is sent again after --full-apply-interval)", len(not_sent))
        with stage("apply", summary.timings):
            changes = apply_all(kube, plan, known, options, stopping, not_sent)
        summary.changes.extend(changes)
        if settings.full_apply_interval > 0:
            record.applied = applied_record(before, plan, changes, not_sent, settings.field_manager,
                                            started if full else None)
        if stopping.is_set():
            not_applied = len(plan.objects) - len(changes)
            raise Interrupted(f"run interrupted: {not_applied} object(s) left for the next run; nothing pruned")
        failures = len(errors) + sum(c.failed for c in changes)
        if not settings.prune:
            log.info("prune disabled (--no-prune)")
        elif failures:
            summary.message = f"prune skipped: {failures} error(s) in this run"
            log.error("%s; nothing was deleted", summary.message)
        elif lock is not None and lock.lost.is_set():
            summary.message = "prune skipped: the run lock was lost"
            log.error("%s; nothing was deleted", summary.message)
            failures += 1
        else:
            with stage("prune", summary.timings):
                tracked_kinds, still_tracked, failures = prune(
                    kube, settings, plan, members, desired_kinds, desired_namespaces, summary)
            # Namespaces the scope policy kept us from looking at stay tracked: we cannot know they are empty.
            tracked_namespaces = still_tracked | (tracked_namespaces - listed_namespaces)
        summary.result = "converged" if not failures else "failed"
        record.finish(tracked_kinds, tracked_namespaces)
        return 1 if failures else 0
    except PruneRefused as error:
        summary.result, summary.message = "prune-refused", str(error)
        record.finish(tracked_kinds, tracked_namespaces)
        raise
    except GitopsError as error:
        summary.result, summary.message = ("interrupted" if isinstance(error, Interrupted) else "failed"), str(error)
        record.finish(tracked_kinds, tracked_namespaces, cleanup=True)
        raise


def prune(kube: Kube, settings: Settings, plan: Plan, members: list[inventory.Live], desired_kinds: set[str],
          desired_namespaces: set[str], summary: Summary) -> tuple[set[str], set[str], int]:
    """Deletes what left git; returns the kinds and namespaces the parent must still name, and failures."""
    selection = select_stale(members, {d.ref for d in plan.objects}, settings.field_manager,
                             settings.prune_protected)
    summary.changes.extend(kept_changes(selection))
    check_guards(selection, len(plan.objects), len(members), settings.allow_empty, settings.max_prune)
    changes = prune_stale(kube, selection, settings.propagation, settings.dry_run, settings.concurrency,
                          kube.stopping)
    summary.changes.extend(changes)
    failed = {c.subject for c in changes if c.failed}
    # Still ours to track: what we kept, and what we failed to delete (retried next run).
    remaining = [live for live, _ in selection.kept] + [live for live in selection.stale if str(live.ref) in failed]
    kinds = desired_kinds | {live.resource.group_kind for live in remaining}
    namespaces = desired_namespaces | {live.ref.namespace for live in remaining if live.ref.namespace}
    return kinds, namespaces | {settings.namespace}, len(failed)


def applied_record(before: applied.Record, plan: Plan, changes: list[Change], not_sent: frozenset[ObjectRef],
                   field_manager: str, full_apply_started: float | None) -> str:
    """The applied record after this run's applies, encoded for the parent. A full apply counts
    as done only if it reached every object (an interrupted one is redone next run)."""
    by_subject = {str(d.ref): d.ref for d in plan.objects}
    versions = {by_subject[c.subject]: c.resource_version for c in changes
                if c.resource_version and c.subject in by_subject}
    full_done = full_apply_started is not None and len(changes) == len(plan.objects)
    after = applied.updated(before, plan.objects, versions, not_sent, field_manager,
                            full_apply_started if full_done else before.full_apply_time)
    return applied.encode(after)


class Recorder:
    """Writes the run's outcome to the parent and emits its Event, once, whatever path the run ends on."""

    def __init__(self, kube: Kube, settings: Settings, set_id: str, parent: inventory.Parent, summary: Summary):
        self.kube, self.settings, self.set_id, self.summary = kube, settings, set_id, summary
        self.uid = parent.uid
        self.applied = parent.applied if settings.full_apply_interval > 0 else ""

    def finish(self, kinds: set[str], namespaces: set[str], cleanup: bool = False) -> None:
        if self.settings.dry_run:
            return
        kube = self.kube.for_cleanup() if cleanup or self.kube.out_of_time else self.kube
        summary, settings = self.summary, self.settings
        counts = summary.counts()
        message = (f"commit {summary.commit or 'unknown'}: " + " ".join(f"{k}={v}" for k, v in counts.items())
                   + (f"; {summary.message}" if summary.message else ""))
        try:
            status = inventory.status_annotations(summary.commit, summary.result, counts, message)
            self.uid = inventory.apply_parent(kube, settings.inventory, settings.namespace, self.set_id,
                                              settings.field_manager, kinds, namespaces, status,
                                              self.applied) or self.uid
            if summary.changed or summary.result != "converged":
                warning = summary.result != "converged"
                reason = {"converged": "ReconcileSucceeded", "prune-refused": "PruneRefused",
                          "interrupted": "ReconcileInterrupted"}.get(summary.result, "ReconcileFailed")
                inventory.emit_event(kube, settings.inventory, settings.namespace, self.uid, warning, reason, message)
        except GitopsError as error:
            log.error("secret/%s -n %s record of the run failed: %s", settings.inventory, settings.namespace, error)


def print_plan(settings: Settings, parsed: Parsed, errors: list[ManifestError], set_id: str, scope: Scope,
               summary: Summary) -> int:
    """`--plan`: what a run would apply and what the inventory would hold, with no cluster at all."""
    plan = make_plan(parsed.manifests, offline_catalog(parsed.manifests), set_id, settings.default_namespace, scope)
    errors = [*errors, *plan.errors]
    for error in errors:
        log.error("%s", error, extra={"location": error.location, "action": "failed"})
    summary.changes.extend(Change(e.location, "failed", e.reason, e.location) for e in errors)
    kinds = sorted({d.resource.group_kind for d in plan.objects})
    namespaces = sorted({d.ref.namespace for d in plan.objects if d.ref.namespace} - {settings.namespace})
    lines = [f"plan: {len(plan.objects)} object(s) in {len(plan.stages)} stage(s), apply order:",
             *describe_plan(plan),
             f"inventory: secret/{settings.inventory} -n {settings.namespace}",
             f"  {inventory.ID_LABEL}={set_id}",
             f"  {inventory.GROUP_KINDS}={','.join(kinds)}",
             f"  {inventory.NAMESPACES}={','.join(namespaces)}",
             f"plan checked offline: {len(errors)} error(s); scope of kinds outside the built-in table is assumed "
             "namespaced"]
    print("\n".join(lines), flush=True)
    summary.result = "planned" if not errors else "failed"
    return 1 if errors else 0
