"""Lock: one run at a time per inventory, held as a coordination.k8s.io Lease.

`concurrencyPolicy: Forbid` does not stop a run started by hand from
overlapping a scheduled one, and two runs applying and pruning different
commits undo each other. The Lease is renewed while the run lasts; one left by
a run that died expires after its duration and is taken over.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta, timezone
from typing import Any

from gitops_cron.errors import GitopsError
from gitops_cron.kube import ApiError, Kube
from gitops_cron.plan import ApiResource

log = logging.getLogger(__name__)

LEASE = ApiResource("coordination.k8s.io", "v1", "Lease", "leases", True)


def micro_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


class RunLock:
    """A Lease named like the inventory, in its namespace."""

    def __init__(self, kube: Kube, name: str, namespace: str, duration: float, identity: str) -> None:
        self.kube = kube
        self.name = name
        self.namespace = namespace
        self.duration = max(1, int(duration))
        self.identity = identity
        self.lease: dict[str, Any] | None = None
        self.lost = threading.Event()
        self.done = threading.Event()
        self.renewer: threading.Thread | None = None

    def acquire(self) -> str | None:
        """None when the lock is ours; otherwise who holds it."""
        now = datetime.now(timezone.utc)
        spec = {"holderIdentity": self.identity, "leaseDurationSeconds": self.duration,
                "acquireTime": micro_time(now), "renewTime": micro_time(now)}
        current = self.kube.get(LEASE, self.name, self.namespace)
        try:
            if current is None:
                body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                        "metadata": {"name": self.name, "namespace": self.namespace}, "spec": spec}
                self.lease = self.kube.request("POST", LEASE.path(self.namespace), body=body).body
            else:
                holder = held_by(current, now)
                if holder:
                    return holder
                self.lease = self.put({**current, "spec": {**(current.get("spec") or {}), **spec}})
        except ApiError as error:
            if error.status == 409:
                return "another run that took it a moment ago"
            raise
        self.renewer = threading.Thread(target=self.renew, name="lease-renewer", daemon=True)
        self.renewer.start()
        return None

    def put(self, lease: dict[str, Any]) -> dict[str, Any]:
        # resourceVersion in the body makes this a compare-and-swap: 409 if anyone wrote in between.
        return self.kube.request("PUT", LEASE.path(self.namespace, self.name), body=lease).body

    def renew(self) -> None:
        interval = self.duration / 3
        while not self.done.wait(interval):
            try:
                lease = dict(self.lease or {})
                lease["spec"] = {**(lease.get("spec") or {}), "renewTime": micro_time(datetime.now(timezone.utc))}
                self.lease = self.put(lease)
            except GitopsError as error:
                log.error("lease/%s -n %s renewal failed: %s; the run will not prune", self.name, self.namespace, error)
                self.lost.set()
                return

    def release(self) -> None:
        """Gives the lock up at once so the next run need not wait for it to expire."""
        self.done.set()
        if self.renewer is not None:
            self.renewer.join(timeout=5)
        if self.lease is None or self.lost.is_set():
            return
        cleanup = self.kube.for_cleanup()
        lease = dict(self.lease)
        lease["spec"] = {k: v for k, v in (lease.get("spec") or {}).items() if k not in ("holderIdentity", "renewTime")}
        try:
            cleanup.request("PUT", LEASE.path(self.namespace, self.name), body=lease)
        except GitopsError as error:
            log.warning("lease/%s -n %s release failed: %s; it expires in %ds", self.name, self.namespace,
                        error, self.duration)


def held_by(lease: dict[str, Any], now: datetime) -> str | None:
    """The live holder of a lease, or None when it is free or expired."""
    spec = lease.get("spec") or {}
    holder = spec.get("holderIdentity")
    renewed = parse_time(spec.get("renewTime")) or parse_time(spec.get("acquireTime"))
    if not holder or renewed is None:
        return None
    expires = renewed + timedelta(seconds=spec.get("leaseDurationSeconds") or 0)
    if expires <= now:
        return None
    return f"{holder}, renewed {max(0, int((now - renewed).total_seconds()))}s ago"
