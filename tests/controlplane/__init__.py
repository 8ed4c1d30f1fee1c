"""The "control plane" test tier: a real etcd + kube-apiserver as local processes.

Sits between the fake API server (fast, but only as faithful as we made it)
and a full cluster (needs Docker).  Use it to check what the real apiserver
does with server-side apply, ApplySet pruning, RBAC and validation.

Usage lives in :mod:`tests.controlplane.fixture`; ``python -m tests.controlplane``
starts one by hand.
"""

from tests.controlplane.fixture import ControlPlane, control_plane, find_assets

__all__ = ["ControlPlane", "control_plane", "find_assets"]
