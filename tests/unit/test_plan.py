"""Ordering, resolution, scope policy and labelling: pure functions over dicts."""

import pytest

from gitops_cron.manifests import Manifest
from gitops_cron.plan import (PART_OF_LABEL, STAGES, ApiResource, Catalog, Scope, check_scope, make_plan, rank_of)

CORE = [("Namespace", "namespaces", False), ("ConfigMap", "configmaps", True), ("Secret", "secrets", True),
        ("ServiceAccount", "serviceaccounts", True), ("Service", "services", True)]
CATALOG = Catalog.of([ApiResource("", "v1", k, p, n) for k, p, n in CORE] + [
    ApiResource("apps", "v1", "Deployment", "deployments", True),
    ApiResource("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False),
    ApiResource("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False),
    ApiResource("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", False),
])
SET_ID = "applyset-test-v1"


def obj(api_version, kind, name, namespace=None, **extra):
    metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
    return Manifest({"apiVersion": api_version, "kind": kind, "metadata": metadata, **extra}, f"{kind}.yaml:1")


CRD = obj("apiextensions.k8s.io/v1", "CustomResourceDefinition", "widgets.example.com", spec={
    "group": "example.com", "scope": "Namespaced", "names": {"kind": "Widget", "plural": "widgets"},
    "versions": [{"name": "v1", "served": True, "storage": True}]})


def plan_of(*manifests, scope=Scope(), catalog=CATALOG):
    return make_plan(manifests, catalog, SET_ID, "default", scope)


def test_order_is_crds_namespaces_cluster_then_namespaced_prerequisites_workloads_custom():
    plan = plan_of(obj("example.com/v1", "Widget", "w", "demo"), obj("apps/v1", "Deployment", "web", "demo"),
                   obj("v1", "ConfigMap", "cfg", "demo"), obj("rbac.authorization.k8s.io/v1", "ClusterRole", "r"),
                   obj("v1", "ServiceAccount", "sa", "demo"), obj("v1", "Namespace", "demo"), CRD)
    assert plan.errors == ()
    assert [[d.ref.kind for d in stage] for stage in plan.stages] == [
        ["CustomResourceDefinition"], ["Namespace"], ["ClusterRole"], ["ServiceAccount", "ConfigMap"],
        ["Deployment"], ["Widget"]]


@pytest.mark.parametrize("earlier, later", [
    (("", "ServiceAccount"), ("apps", "Deployment")), (("", "Secret"), ("apps", "StatefulSet")),
    (("rbac.authorization.k8s.io", "ClusterRole"), ("rbac.authorization.k8s.io", "ClusterRoleBinding")),
    (("apiextensions.k8s.io", "CustomResourceDefinition"), ("", "Namespace")),
])
def test_rank_orders_prerequisites_first_and_reverse_is_delete_order(earlier, later):
    def rank(group_kind):
        return rank_of(ApiResource(group_kind[0], "v1", group_kind[1], "x", True))
    assert rank(earlier) < rank(later)
    assert sorted([rank(later), rank(earlier)], reverse=True) == [rank(later), rank(earlier)]


def test_custom_resource_of_a_crd_in_the_same_repo_waits_for_it():
    plan = plan_of(CRD, obj("example.com/v1", "Widget", "w", "demo"))
    widget = plan.stages[-1][0]
    assert widget.resource == ApiResource("example.com", "v1", "Widget", "widgets", True)
    assert widget.waits_for == ("widgets.example.com",)


def test_unknown_kind_is_an_error_naming_its_file():
    plan = plan_of(obj("example.com/v1", "Gadget", "g", "demo"), obj("v1", "ConfigMap", "c"))
    assert [d.ref.name for d in plan.objects] == ["c"]
    assert [str(e) for e in plan.errors] == [
        "Gadget.yaml:1: Gadget example.com/v1 is not a kind this cluster knows (is its CustomResourceDefinition installed?)"]


def test_unserved_version_names_the_served_one():
    plan = plan_of(obj("apps/v1beta1", "Deployment", "web", "demo"))
    assert "it serves Deployment as apps/v1" in str(plan.errors[0])


def test_namespaced_objects_get_the_default_namespace_and_every_object_our_label():
    plan = plan_of(obj("v1", "ConfigMap", "c"), obj("v1", "Namespace", "n", namespace="ignored"))
    by_kind = {d.ref.kind: d for d in plan.objects}
    assert by_kind["ConfigMap"].ref.namespace == "default"
    assert by_kind["ConfigMap"].body["metadata"]["namespace"] == "default"
    assert "namespace" not in by_kind["Namespace"].body["metadata"]
    assert all(d.body["metadata"]["labels"][PART_OF_LABEL] == SET_ID for d in plan.objects)


def test_planning_does_not_mutate_the_parsed_document():
    manifest = obj("v1", "ConfigMap", "c")
    manifest.body["metadata"]["labels"] = {"app": "c"}
    desired = plan_of(manifest).objects[0]
    assert manifest.body["metadata"] == {"name": "c", "labels": {"app": "c"}}
    assert desired.body["metadata"]["labels"] == {"app": "c", PART_OF_LABEL: SET_ID}


def test_default_namespace_can_collide_with_an_explicit_one():
    plan = plan_of(obj("v1", "ConfigMap", "c"), obj("v1", "ConfigMap", "c", "default"))
    assert len(plan.objects) == 1 and "also defined" in str(plan.errors[0])


DEPLOYMENT = ApiResource("apps", "v1", "Deployment", "deployments", True)
BINDING = ApiResource("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False)


@pytest.mark.parametrize("resource, namespace, scope, refused", [
    (BINDING, "", Scope(deny_kinds=("ClusterRoleBinding",)), "denied by --deny-kinds"),
    (BINDING, "", Scope(deny_kinds=("clusterrolebinding.rbac.authorization.k8s.io",)), "denied by --deny-kinds"),
    (DEPLOYMENT, "team-a", Scope(allow_kinds=("ConfigMap",)), "not in --allow-kinds"),
    (DEPLOYMENT, "team-c", Scope(allow_namespaces=("team-a", "team-b")), "not in --allow-namespaces"),
    (DEPLOYMENT, "kube-system", Scope(deny_namespaces=("kube-system",)), "denied by --deny-namespaces"),
    (BINDING, "", Scope(allow_namespaces=("team-a",)), "refused while --allow-namespaces is set"),
    (DEPLOYMENT, "team-a", Scope(allow_namespaces=("team-a",), allow_kinds=("Deployment.apps",)), None),
    (DEPLOYMENT, "team-a", Scope(), None),
])
def test_scope_policy(resource, namespace, scope, refused):
    reason = check_scope(resource, namespace, scope)
    assert (reason is None) if refused is None else (refused in reason)


def test_scope_violation_is_an_error_for_that_object_only():
    plan = plan_of(obj("v1", "ConfigMap", "a", "team-a"), obj("v1", "ConfigMap", "b", "team-c"),
                   scope=Scope(allow_namespaces=("team-a",)))
    assert [d.ref.name for d in plan.objects] == ["a"]
    assert "configmap/b -n team-c refused: namespace team-c is not in --allow-namespaces" in str(plan.errors[0])


def test_every_stage_kind_is_listed_once():
    kinds = [gk for stage in STAGES for gk in stage]
    assert len(kinds) == len(set(kinds))


def test_paths_percent_encode_names_so_a_question_mark_cannot_end_the_path():
    configmaps = ApiResource("", "v1", "ConfigMap", "configmaps", True)
    assert configmaps.path("demo", "a?b#c d") == "/api/v1/namespaces/demo/configmaps/a%3Fb%23c%20d"
    roles = ApiResource("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False)
    assert roles.path("", "system:controller:x") == "/apis/rbac.authorization.k8s.io/v1/clusterroles/system:controller:x"
