"""Resource types the fake API server serves, and the discovery documents built from them.

The built-in table is data: adding a resource is one ``_t(...)`` line.  Custom resources are
registered from CustomResourceDefinitions at run time (see ``Registry.register_crd``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Standard verbs of a read/write resource, as a real APIResourceList advertises them.
# https://kubernetes.io/docs/reference/using-api/api-concepts/#api-verbs
STANDARD_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
SUBRESOURCE_VERBS = ("get", "patch", "update")

AGGREGATED_DISCOVERY_MEDIA = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple = ()
    categories: tuple = ()
    status_subresource: bool = False  # main-resource writes ignore .status; /status writes only .status
    returns_deleted: bool = False  # DELETE answers with the object rather than a Status Success
    singular: str = ""
    verbs: tuple = STANDARD_VERBS
    crd: str | None = None  # name of the CustomResourceDefinition that defines it

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular_name(self) -> str:
        return self.singular or self.kind.lower()

    @property
    def key(self) -> tuple[str, str]:
        """Storage key: objects are shared across versions of one group/resource."""
        return (self.group, self.plural)

    @property
    def qualified_resource(self) -> str:
        # "configmaps" for the core group, "deployments.apps" otherwise (as in apiserver messages)
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind


def _t(gv: str, plural: str, kind: str, scope: str = "ns", short=(), cats=(), status=False, returns_deleted=False):
    group, _, version = gv.rpartition("/")
    return ResourceType(group=group, version=version, plural=plural, kind=kind, namespaced=(scope == "ns"),
                        short_names=tuple(short), categories=tuple(cats), status_subresource=status,
                        returns_deleted=returns_deleted)


# One line per built-in resource.  "cl" = cluster-scoped.
BUILTIN_TYPES: tuple[ResourceType, ...] = (
    _t("v1", "namespaces", "Namespace", "cl", ["ns"], status=True, returns_deleted=True),
    _t("v1", "configmaps", "ConfigMap", short=["cm"]),
    _t("v1", "secrets", "Secret"),
    _t("v1", "services", "Service", short=["svc"], cats=["all"], status=True, returns_deleted=True),
    _t("v1", "serviceaccounts", "ServiceAccount", short=["sa"]),
    _t("v1", "events", "Event", short=["ev"]),
    _t("v1", "persistentvolumeclaims", "PersistentVolumeClaim", short=["pvc"], status=True),
    _t("v1", "pods", "Pod", short=["po"], cats=["all"], status=True, returns_deleted=True),
    _t("v1", "persistentvolumes", "PersistentVolume", "cl", ["pv"], status=True),
    _t("apps/v1", "deployments", "Deployment", short=["deploy"], cats=["all"], status=True),
    _t("apps/v1", "statefulsets", "StatefulSet", short=["sts"], cats=["all"], status=True),
    _t("apps/v1", "daemonsets", "DaemonSet", short=["ds"], cats=["all"], status=True),
    _t("apps/v1", "replicasets", "ReplicaSet", short=["rs"], cats=["all"], status=True),
    _t("batch/v1", "jobs", "Job", cats=["all"], status=True),
    _t("batch/v1", "cronjobs", "CronJob", short=["cj"], cats=["all"], status=True),
    _t("rbac.authorization.k8s.io/v1", "roles", "Role"),
    _t("rbac.authorization.k8s.io/v1", "rolebindings", "RoleBinding"),
    _t("rbac.authorization.k8s.io/v1", "clusterroles", "ClusterRole", "cl"),
    _t("rbac.authorization.k8s.io/v1", "clusterrolebindings", "ClusterRoleBinding", "cl"),
    _t("networking.k8s.io/v1", "ingresses", "Ingress", short=["ing"], status=True),
    _t("networking.k8s.io/v1", "networkpolicies", "NetworkPolicy", short=["netpol"]),
    _t("policy/v1", "poddisruptionbudgets", "PodDisruptionBudget", short=["pdb"], status=True),
    _t("autoscaling/v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", short=["hpa"], cats=["all"],
       status=True),
    _t("apiextensions.k8s.io/v1", "customresourcedefinitions", "CustomResourceDefinition", "cl",
       ["crd", "crds"], ["api-extensions"], status=True),
    _t("coordination.k8s.io/v1", "leases", "Lease"),
    _t("events.k8s.io/v1", "events", "Event", short=["ev"]),
    _t("storage.k8s.io/v1", "storageclasses", "StorageClass", "cl", ["sc"]),
    _t("scheduling.k8s.io/v1", "priorityclasses", "PriorityClass", "cl", ["pc"]),
)

CRD_GROUP = "apiextensions.k8s.io"
CRD_PLURAL = "customresourcedefinitions"

_VERSION_RE = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(version: str) -> tuple:
    """Sort key: GA > beta > alpha, higher numbers first, then non-Kubernetes-style names alphabetically.

    https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definition-versioning/#version-priority
    """
    m = _VERSION_RE.match(version)
    if not m:
        return (3, 0, 0, version)
    major, stage, minor = int(m.group(1)), m.group(2), int(m.group(3) or 0)
    rank = {None: 0, "beta": 1, "alpha": 2}[stage]
    return (rank, -major, -minor, version)


def crd_types(crd: dict) -> list[ResourceType]:
    """Resource types served by a CustomResourceDefinition (one per served version)."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    out = []
    for v in spec.get("versions") or []:
        if not v.get("served", True):
            continue
        out.append(ResourceType(
            group=spec.get("group", ""), version=v["name"], plural=names.get("plural", ""),
            kind=names.get("kind", ""), namespaced=spec.get("scope", "Namespaced") == "Namespaced",
            short_names=tuple(names.get("shortNames") or ()), categories=tuple(names.get("categories") or ()),
            status_subresource="status" in ((v.get("subresources") or {})),
            returns_deleted=True, singular=names.get("singular") or names.get("kind", "").lower(),
            crd=(crd.get("metadata") or {}).get("name"),
        ))
    return out


@dataclass
class Registry:
    """Served resource types, indexed by (group, version, plural) and (group, version, kind)."""

    by_gvr: dict = field(default_factory=dict)
    by_gvk: dict = field(default_factory=dict)
    builtin_groups: list = field(default_factory=list)  # discovery order of built-in groups

    def __post_init__(self):
        for t in BUILTIN_TYPES:
            self.add(t)
            if t.group not in self.builtin_groups:
                self.builtin_groups.append(t.group)

    def add(self, t: ResourceType) -> None:
        self.by_gvr[(t.group, t.version, t.plural)] = t
        self.by_gvk[(t.group, t.version, t.kind)] = t

    def remove_crd(self, crd_name: str) -> list[ResourceType]:
        gone = [t for t in self.by_gvr.values() if t.crd == crd_name]
        for t in gone:
            self.by_gvr.pop((t.group, t.version, t.plural), None)
            self.by_gvk.pop((t.group, t.version, t.kind), None)
        return gone

    def gvr(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self.by_gvr.get((group, version, plural))

    def gvk(self, api_version: str, kind: str) -> ResourceType | None:
        group, _, version = api_version.rpartition("/")
        return self.by_gvk.get((group, version, kind))

    def groups(self) -> dict[str, list[str]]:
        """group -> served versions, preferred first; built-in groups in table order, then CRD groups."""
        versions: dict[str, set] = {}
        for (g, v, _p) in self.by_gvr:
            versions.setdefault(g, set()).add(v)
        order = [g for g in self.builtin_groups if g in versions]
        order += sorted(g for g in versions if g not in self.builtin_groups)
        return {g: sorted(versions[g], key=version_priority) for g in order}

    def types_in(self, group: str, version: str) -> list[ResourceType]:
        return [t for (g, v, _p), t in self.by_gvr.items() if g == group and v == version]


# ---------------------------------------------------------------------------------------------
# Discovery documents
# https://kubernetes.io/docs/concepts/overview/kubernetes-api/#discovery-api

def api_versions(server_address: str) -> dict:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]}


def _group_doc(group: str, versions: list[str]) -> dict:
    gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": gvs, "preferredVersion": dict(gvs[0])}


def api_group_list(reg: Registry) -> dict:
    groups = [_group_doc(g, vs) for g, vs in reg.groups().items() if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(reg: Registry, group: str) -> dict | None:
    vs = reg.groups().get(group)
    if not vs or not group:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_doc(group, vs)}


def api_resource_list(reg: Registry, group: str, version: str) -> dict | None:
    types = reg.types_in(group, version)
    if not types:
        return None
    resources = []
    for t in sorted(types, key=lambda t: t.plural):
        r = {"name": t.plural, "singularName": t.singular_name, "namespaced": t.namespaced, "kind": t.kind,
             "verbs": list(t.verbs)}
        if t.short_names:
            r["shortNames"] = list(t.short_names)
        if t.categories:
            r["categories"] = list(t.categories)
        resources.append(r)
        if t.status_subresource:
            resources.append({"name": f"{t.plural}/status", "singularName": "", "namespaced": t.namespaced,
                              "kind": t.kind, "verbs": list(SUBRESOURCE_VERBS)})
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}


def aggregated_discovery(reg: Registry, core: bool) -> dict:
    """APIGroupDiscoveryList for /api (core=True) or /apis.

    https://kubernetes.io/docs/concepts/overview/kubernetes-api/#aggregated-discovery (KEP-3352)
    """
    items = []
    for g, vs in reg.groups().items():
        if (g == "") != core:
            continue
        versions = []
        for v in vs:
            resources = []
            for t in sorted(reg.types_in(g, v), key=lambda t: t.plural):
                r = {"resource": t.plural, "responseKind": {"group": "", "version": "", "kind": t.kind},
                     "scope": "Namespaced" if t.namespaced else "Cluster", "singularResource": t.singular_name,
                     "verbs": list(t.verbs)}
                if t.short_names:
                    r["shortNames"] = list(t.short_names)
                if t.categories:
                    r["categories"] = list(t.categories)
                if t.status_subresource:
                    r["subresources"] = [{"subresource": "status",
                                          "responseKind": {"group": "", "version": "", "kind": t.kind},
                                          "verbs": list(SUBRESOURCE_VERBS)}]
                resources.append(r)
            versions.append({"version": v, "resources": resources, "freshness": "Current"})
        items.append({"metadata": {"name": g} if g else {}, "versions": versions})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items}


def wants_media(accept: str, as_kind: str, group: str, version: str | None = None) -> bool:
    """True when the Accept header lists application/json;g=<group>;v=<version>;as=<as_kind>."""
    for rng in (accept or "").split(","):
        parts = [p.strip() for p in rng.split(";")]
        if parts[0].lower() not in ("application/json", "*/*", "application/*"):
            continue
        params = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        if params.get("as") == as_kind and params.get("g") == group and (version is None or params.get("v") == version):
            return True
    return False
