"""Plan: parsed objects + the server's catalog of kinds → an ordered plan of stages.

Pure functions over plain data: no I/O here, so `--plan` and `--dry-run` print the
same plan a real run would follow. Each stage is applied concurrently; stages
go in order, and pruning walks them backwards.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Iterable, Mapping
from urllib.parse import quote

from gitops_cron.errors import ManifestError
from gitops_cron.manifests import Manifest, ObjectRef

PART_OF_LABEL = "applyset.kubernetes.io/part-of"
CRD_GROUP = "apiextensions.k8s.io"
CRD_KIND = "CustomResourceDefinition"

# Kinds in apply order, one stage per line. Prerequisites come first (a Pod needs
# its ServiceAccount, ConfigMaps and Secrets; a RoleBinding its Role), workloads
# next, then what points at workloads. Pruning uses the reverse.
STAGES: tuple[tuple[tuple[str, str], ...], ...] = (
    ((CRD_GROUP, CRD_KIND),),
    (("", "Namespace"),),
    (("storage.k8s.io", "StorageClass"), ("scheduling.k8s.io", "PriorityClass"), ("", "PersistentVolume"),
     ("rbac.authorization.k8s.io", "ClusterRole"), ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
     ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
     ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"), ("networking.k8s.io", "IngressClass")),
    (("", "ResourceQuota"), ("", "LimitRange"), ("", "ServiceAccount"), ("", "Secret"), ("", "ConfigMap"),
     ("", "PersistentVolumeClaim"), ("rbac.authorization.k8s.io", "Role"),
     ("rbac.authorization.k8s.io", "RoleBinding"), ("", "Service"), ("networking.k8s.io", "NetworkPolicy"),
     ("policy", "PodDisruptionBudget")),
    (("", "Pod"), ("apps", "ReplicaSet"), ("apps", "Deployment"), ("apps", "StatefulSet"),
     ("apps", "DaemonSet"), ("batch", "Job"), ("batch", "CronJob"), ("", "ReplicationController")),
    (("autoscaling", "HorizontalPodAutoscaler"), ("networking.k8s.io", "Ingress")),
)
KIND_RANK: dict[tuple[str, str], tuple[int, int]] = {
    group_kind: (stage, position)
    for stage, kinds in enumerate(STAGES) for position, group_kind in enumerate(kinds)
}
CLUSTER_STAGE = 2
NAMESPACED_STAGE = 5  # namespaced kinds not in the table (mostly custom resources) go last
# Built-in cluster-scoped kinds, for `--plan`, which must know scope without a server.
OFFLINE_CLUSTER_SCOPED = {group_kind for group_kind in KIND_RANK if KIND_RANK[group_kind][0] <= CLUSTER_STAGE} | {
    ("", "Node"), ("certificates.k8s.io", "CertificateSigningRequest"), ("storage.k8s.io", "CSIDriver"),
    ("node.k8s.io", "RuntimeClass"), ("apiregistration.k8s.io", "APIService"),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"),
}


@dataclass(frozen=True)
class ApiResource:
    """A kind as the server serves it: where to send requests and whether it lives in a namespace."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_kind(self) -> str:
        """The ApplySet spelling: `Kind.group`, or `Kind` for the core group (KEP-3659)."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    def path(self, namespace: str = "", name: str = "") -> str:
        """Names are percent-encoded: `?` or `#` in one must not end the path."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        return f"{base}/{quote(name, safe=':@')}" if name else base


@dataclass(frozen=True)
class Catalog:
    """The kinds a server serves, by (group, version, kind), with each group-kind's preferred version."""

    by_gvk: Mapping[tuple[str, str, str], ApiResource]
    preferred: Mapping[tuple[str, str], ApiResource]

    @classmethod
    def of(cls, resources: Iterable[ApiResource]) -> "Catalog":
        """Earlier resources are preferred: discovery lists each group's versions in preference order."""
        by_gvk: dict[tuple[str, str, str], ApiResource] = {}
        preferred: dict[tuple[str, str], ApiResource] = {}
        for resource in resources:
            by_gvk.setdefault((resource.group, resource.version, resource.kind), resource)
            preferred.setdefault((resource.group, resource.kind), resource)
        return cls(by_gvk, preferred)


    def for_group_kind(self, group_kind: str) -> ApiResource | None:
        kind, _, group = group_kind.partition(".")
        return self.preferred.get((group, kind))


@dataclass(frozen=True)
class Desired:
    """One object to apply: where it goes, the body to send (part-of label added), and where it came from."""

    ref: ObjectRef
    resource: ApiResource
    body: dict[str, Any]
    location: str
    waits_for: tuple[str, ...] = ()

    def __str__(self) -> str:
        return str(self.ref)

    @cached_property
    def payload(self) -> bytes:
        """The body as sent, serialized once: the apply sends these bytes and the applied record fingerprints them."""
        return json.dumps(self.body, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Plan:
    """Stages in apply order and the objects that could not be planned."""

    stages: tuple[tuple[Desired, ...], ...]
    errors: tuple[ManifestError, ...] = field(default=())

    @property
    def objects(self) -> tuple[Desired, ...]:
        return tuple(desired for stage in self.stages for desired in stage)


@dataclass(frozen=True)
class Scope:
    """The scope policy: which namespaces and kinds a repository may touch."""

    allow_namespaces: tuple[str, ...] = ()
    deny_namespaces: tuple[str, ...] = ()
    allow_kinds: tuple[str, ...] = ()
    deny_kinds: tuple[str, ...] = ()


def rank_of(resource: ApiResource) -> tuple[int, int]:
    known = KIND_RANK.get((resource.group, resource.kind))
    if known is not None:
        return known
    return (NAMESPACED_STAGE, 0) if resource.namespaced else (CLUSTER_STAGE, len(STAGES[CLUSTER_STAGE]))


def kind_matches(patterns: Iterable[str], resource: ApiResource) -> bool:
    """`Kind` matches the kind in any group; `Kind.group` only in that group. Case-insensitive."""
    kind, full = resource.kind.lower(), resource.group_kind.lower()
    return any(p.lower() in (kind, full) for p in patterns)


def namespace_in_scope(namespace: str, scope: Scope) -> bool:
    return namespace not in scope.deny_namespaces and (not scope.allow_namespaces or namespace in scope.allow_namespaces)


def check_scope(resource: ApiResource, namespace: str, scope: Scope) -> str | None:
    """Why the scope policy refuses this object, or None when it is allowed."""
    if scope.deny_kinds and kind_matches(scope.deny_kinds, resource):
        return f"kind {resource.group_kind} is denied by --deny-kinds"
    if scope.allow_kinds and not kind_matches(scope.allow_kinds, resource):
        return f"kind {resource.group_kind} is not in --allow-kinds"
    if resource.namespaced:
        if namespace in scope.deny_namespaces:
            return f"namespace {namespace} is denied by --deny-namespaces"
        if scope.allow_namespaces and namespace not in scope.allow_namespaces:
            return f"namespace {namespace} is not in --allow-namespaces"
    elif scope.allow_namespaces:
        # Confined to namespaces, a repository may not reach cluster-wide objects.
        return f"cluster-scoped {resource.group_kind} is refused while --allow-namespaces is set"
    return None


def resources_from_crds(manifests: Iterable[Manifest]) -> dict[tuple[str, str, str], tuple[ApiResource, str]]:
    """Kinds that CRDs in the repository will define, with the CRD's name, so their objects plan in one run."""
    defined: dict[tuple[str, str, str], tuple[ApiResource, str]] = {}
    for manifest in manifests:
        if manifest.group != CRD_GROUP or manifest.kind != CRD_KIND:
            continue
        spec = manifest.body.get("spec") or {}
        names = spec.get("names") or {}
        group, kind, plural = spec.get("group"), names.get("kind"), names.get("plural")
        if not (isinstance(group, str) and isinstance(kind, str) and isinstance(plural, str)):
            continue
        for version in spec.get("versions") or []:
            if isinstance(version, dict) and version.get("served", True) and isinstance(version.get("name"), str):
                resource = ApiResource(group, version["name"], kind, plural, spec.get("scope") != "Cluster")
                defined[(group, version["name"], kind)] = (resource, manifest.name)
    return defined


def make_plan(manifests: Iterable[Manifest], catalog: Catalog, applyset_id: str,
              default_namespace: str, scope: Scope) -> Plan:
    """Resolves, scopes, labels and orders every object; what cannot be planned becomes an error."""
    manifests = list(manifests)
    from_crds = resources_from_crds(manifests)
    planned: list[tuple[tuple[int, int, str, str], Desired]] = []
    errors: list[ManifestError] = []
    seen: dict[ObjectRef, str] = {}
    for manifest in manifests:
        version = manifest.api_version.rsplit("/", 1)[-1]
        gvk = (manifest.group, version, manifest.kind)
        waits_for: tuple[str, ...] = ()
        resource = catalog.by_gvk.get(gvk)
        if resource is None and gvk in from_crds:
            # A kind this run's CRD will create: apply it once the CRD is Established.
            resource, crd_name = from_crds[gvk]
            waits_for = (crd_name,)
        if resource is None:
            errors.append(ManifestError(manifest.location, unknown_kind(manifest, catalog)))
            continue
        namespace = (manifest.namespace or default_namespace) if resource.namespaced else ""
        ref = ObjectRef(resource.group, resource.kind, namespace, manifest.name)
        if ref in seen:
            # Only now visible: one document named the default namespace, another left it out.
            errors.append(ManifestError(manifest.location, f"{ref} is also defined at {seen[ref]}"))
            continue
        seen[ref] = manifest.location
        refused = check_scope(resource, namespace, scope)
        if refused:
            errors.append(ManifestError(manifest.location, f"{ref} refused: {refused}"))
            continue
        body = labelled_body(manifest.body, namespace, applyset_id)
        desired = Desired(ref, resource, body, manifest.location, waits_for)
        stage, position = rank_of(resource)
        planned.append(((stage, position, namespace, manifest.name), desired))
    planned.sort(key=lambda item: item[0])
    stages: dict[int, list[Desired]] = {}
    for (stage, *_), desired in planned:
        stages.setdefault(stage, []).append(desired)
    return Plan(tuple(tuple(stages[s]) for s in sorted(stages)), tuple(errors))


def unknown_kind(manifest: Manifest, catalog: Catalog) -> str:
    served = sorted(r.api_version for (g, k), r in catalog.preferred.items()
                    if g == manifest.group and k == manifest.kind)
    subject = f"{manifest.kind} {manifest.api_version}"
    if served:
        return f"{subject} is not served by this cluster (it serves {manifest.kind} as {', '.join(served)})"
    return f"{subject} is not a kind this cluster knows (is its CustomResourceDefinition installed?)"


def labelled_body(body: Mapping[str, Any], namespace: str, applyset_id: str) -> dict[str, Any]:
    """The document with the namespace settled and our part-of label set. Only the dicts on the path
    to what changes are copied: the rest is shared with the Manifest, which nothing mutates (a deep
    copy of every body was most of the plan stage: 0.5 s for 10,000 objects)."""
    result = dict(body)
    metadata = result["metadata"] = dict(result.get("metadata") or {})
    if namespace:
        metadata["namespace"] = namespace
    else:
        metadata.pop("namespace", None)  # cluster-scoped: a namespace in the file means nothing
    labels = metadata.get("labels")
    metadata["labels"] = {**(labels if isinstance(labels, dict) else {}), PART_OF_LABEL: applyset_id}
    return result


def offline_catalog(manifests: Iterable[Manifest]) -> Catalog:
    """A catalog for `--plan`: every apiVersion/kind in the files, scoped by the built-in table."""
    resources = []
    for manifest in manifests:
        version = manifest.api_version.rsplit("/", 1)[-1]
        namespaced = (manifest.group, manifest.kind) not in OFFLINE_CLUSTER_SCOPED
        plural = manifest.kind.lower() + ("es" if manifest.kind.lower().endswith("s") else "s")
        resources.append(ApiResource(manifest.group, version, manifest.kind, plural, namespaced))
    return Catalog.of(resources)


def describe_plan(plan: Plan) -> list[str]:
    """Lines for the plan printout: one per stage and one per object, in apply order."""
    lines = []
    for number, stage in enumerate(plan.stages, 1):
        lines.append(f"stage {number}: {len(stage)} object(s)")
        lines.extend(f"  {desired.ref} ({desired.location})" for desired in stage)
    return lines

