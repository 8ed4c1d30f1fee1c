"""Prune: live members minus desired objects → deletions, behind every guard we know of.

Finding what to prune (`select_stale`, `check_guards`) is pure and separate from
deleting it (`prune_stale`), so a dry run is "find, then print". A label alone
is not proof of ownership: operators copy labels onto what they generate. An
object is deleted only when our field manager applied it, no controller owns
it, and nobody opted it out.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterable

from gitops_cron.apply import Change
from gitops_cron.errors import ClusterError, Interrupted, PruneRefused
from gitops_cron.inventory import Live
from gitops_cron.kube import ApiError, Kube
from gitops_cron.manifests import ObjectRef
from gitops_cron.plan import rank_of

log = logging.getLogger(__name__)

PRUNE_ANNOTATION = "gitops-cron.dev/prune"
OPT_OUTS = (
    (PRUNE_ANNOTATION, "disabled"),
    ("argocd.argoproj.io/sync-options", "Prune=false"),
    ("kustomize.toolkit.fluxcd.io/prune", "disabled"),
)
# Deleting these destroys far more than themselves: every object in a namespace,
# every custom resource of a CRD, the data on a volume.
PROTECTED = {("", "Namespace"), ("apiextensions.k8s.io", "CustomResourceDefinition"),
             ("", "PersistentVolume"), ("", "PersistentVolumeClaim")}


@dataclass(frozen=True)
class Selection:
    """Members to delete, in delete order, and members kept with the reason."""

    stale: tuple[Live, ...]
    kept: tuple[tuple[Live, str], ...]


def opted_out(live: Live) -> str | None:
    for key, value in OPT_OUTS:
        if value.lower() in [part.strip().lower() for part in str(live.annotations.get(key, "")).split(",")]:
            return f"annotated {key}: {value}"
    return None


def keep_reason(live: Live, field_manager: str, prune_protected: bool) -> str | None:
    """Why a member that left git must stay, or None when it may be deleted."""
    if live.deleting:
        return "already being deleted"
    reason = opted_out(live)
    if reason:
        return reason
    if field_manager not in live.applied_by:
        return f"carries our label but was not applied by field manager {field_manager}"
    if live.controller:
        return f"controlled by {live.controller}"
    group_kind = (live.ref.group, live.ref.kind)
    allowed = str(live.annotations.get(PRUNE_ANNOTATION, "")).lower() == "enabled"
    if group_kind in PROTECTED and not (allowed or prune_protected):
        return f"{live.ref.kind} is kept unless annotated {PRUNE_ANNOTATION}: enabled or --prune-protected is set"
    return None


def select_stale(members: Iterable[Live], desired: set[ObjectRef], field_manager: str,
                 prune_protected: bool) -> Selection:
    """Members not in git, split into what to delete (reverse apply order) and what to keep."""
    stale: list[Live] = []
    kept: list[tuple[Live, str]] = []
    for live in members:
        if live.ref in desired:
            continue
        reason = keep_reason(live, field_manager, prune_protected)
        if reason:
            kept.append((live, reason))
        else:
            stale.append(live)
    stale.sort(key=lambda live: (rank_of(live.resource), live.ref.namespace, live.ref.name), reverse=True)
    return Selection(tuple(stale), tuple(kept))


def check_guards(selection: Selection, desired_count: int, member_count: int, allow_empty: bool,
                 max_prune: int) -> None:
    """Raises PruneRefused when deleting would more likely be a mistake than an intent."""
    if desired_count == 0 and member_count > 0 and not allow_empty:
        raise PruneRefused(f"prune refused: git holds no objects but the inventory has {member_count}; "
                           "an emptied repository is more often a mistake (set --allow-empty to prune everything)")
    if len(selection.stale) > max_prune:
        raise PruneRefused(f"prune refused: {len(selection.stale)} objects would be deleted, "
                           f"more than --max-prune {max_prune}")


def prune_stale(kube: Kube, selection: Selection, propagation: str, dry_run: bool, concurrency: int,
                stopping: threading.Event) -> list[Change]:
    """Deletes stage by stage in reverse apply order; preconditions make sure we delete what we judged."""
    changes: list[Change] = []
    stages: dict[int, list[Live]] = {}
    for live in selection.stale:
        stages.setdefault(rank_of(live.resource)[0], []).append(live)
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for stage in sorted(stages, reverse=True):
            if stopping.is_set():
                raise Interrupted("prune interrupted: terminating before the next stage")
            for change in pool.map(lambda live: delete_one(kube, live, propagation, dry_run), stages[stage]):
                prefix = "DRY-RUN " if dry_run else ""
                extra = {"subject": change.subject, "action": change.action}
                if change.failed:
                    log.error("%s%s prune failed: %s", prefix, change.subject, change.detail, extra=extra)
                else:
                    log.info("%s%s pruned", prefix, change.subject, extra=extra)
                changes.append(change)
    return changes


def delete_one(kube: Kube, live: Live, propagation: str, dry_run: bool) -> Change:
    subject = str(live.ref)
    # uid: never delete a same-named object created since we listed; resourceVersion: nor one
    # changed since (its labels or annotations may no longer say it is ours to delete).
    preconditions = {"uid": live.uid, "resourceVersion": live.resource_version}
    try:
        kube.delete(live.resource, live.ref.name, live.ref.namespace, propagation, preconditions, dry_run)
    except ApiError as error:
        if error.status == 404:
            return Change(subject, "pruned", "already gone")
        return Change(subject, "failed", str(error))
    except (ClusterError, Interrupted) as error:
        return Change(subject, "failed", str(error))
    return Change(subject, "pruned")


def kept_changes(selection: Selection) -> list[Change]:
    changes = [Change(str(live.ref), "skipped", reason) for live, reason in selection.kept]
    for change in changes:
        log.info("%s kept: %s", change.subject, change.detail, extra={"subject": change.subject, "action": "skipped"})
    return changes
