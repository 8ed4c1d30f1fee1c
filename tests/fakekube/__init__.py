"""An HTTP-level fake Kubernetes API server for wire-level tests (a test double, never shipped).

    from tests.fakekube import FakeKube, Fault

    with FakeKube(latency=0.0) as kube:               # 127.0.0.1:<free port>, daemon thread
        kube.write_kubeconfig(tmp_path / "kubeconfig")  # cluster/user/context "fake", bearer kube.token
        kube.put({...})                                 # seed an object as another field manager
        kube.get("apps/v1", "Deployment", "web", "default")
        kube.faults.add(Fault(method="PATCH", path=r"/configmaps/", status=503, times=2))
        kube.requests                                   # RecordedRequest log

Knobs: ``latency`` (s per request), ``crd_established_delay`` (s), ``aggregated_discovery`` (bool),
``namespace_finalization`` ("immediate" | "terminating"), ``forbid(verb, resource, namespace=None)``.

Run standalone: ``python -m tests.fakekube --port 0 --latency-ms 5 --kubeconfig PATH``.

Approximations of the real apiserver (deliberate): lists are atomic for apply (no list-map merge
keys); strategic merge patch is treated as JSON merge patch; no defaulting beyond Service clusterIP,
Secret type, Namespace phase/label/finalizers and CRD status; no garbage collector (propagationPolicy is
recorded, objects go at once; ownerReferences are stored as given); watch answers 405; continue tokens
page the current state rather than a snapshot; CRD versions share storage with no conversion.

Modules: ``resources`` (type table, discovery), ``store`` (objects, CRUD, CRDs), ``apply`` (field
management, merges, immutable fields), ``selectors``, ``errors`` (Status), ``faults``, ``server`` (HTTP).
"""

from .errors import ApiError
from .faults import Fault, FaultSet, RecordedRequest
from .resources import BUILTIN_TYPES, ResourceType
from .server import DEFAULT_USER, FakeKube

__all__ = ["FakeKube", "Fault", "FaultSet", "RecordedRequest", "ApiError", "ResourceType", "BUILTIN_TYPES",
           "DEFAULT_USER"]
