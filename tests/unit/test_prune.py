"""Prune selection and every guard: which members go, which stay, and why."""

import pytest

from gitops_cron.errors import PruneRefused
from gitops_cron.inventory import Live
from gitops_cron.manifests import ObjectRef
from gitops_cron.plan import ApiResource
from gitops_cron.prune import check_guards, select_stale

RESOURCES = {
    "ConfigMap": ApiResource("", "v1", "ConfigMap", "configmaps", True),
    "Deployment": ApiResource("apps", "v1", "Deployment", "deployments", True),
    "Namespace": ApiResource("", "v1", "Namespace", "namespaces", False),
    "PersistentVolumeClaim": ApiResource("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", True),
    "CustomResourceDefinition": ApiResource("apiextensions.k8s.io", "v1", "CustomResourceDefinition",
                                            "customresourcedefinitions", False),
    "Widget": ApiResource("example.com", "v1", "Widget", "widgets", True),
}


def live(kind, name, namespace="demo", annotations=None, applied_by=("gitops-cron",), controller="", deleting=False):
    resource = RESOURCES[kind]
    ns = namespace if resource.namespaced else ""
    return Live(ObjectRef(resource.group, kind, ns, name), resource, f"uid-{name}", "1", annotations or {},
                frozenset(applied_by), controller, deleting)


def select(*members, desired=(), prune_protected=False):
    return select_stale(members, set(desired), "gitops-cron", prune_protected)


def test_members_still_in_git_are_not_stale():
    kept = live("ConfigMap", "keep")
    gone = live("ConfigMap", "gone")
    selection = select(kept, gone, desired={kept.ref})
    assert selection.stale == (gone,)


@pytest.mark.parametrize("member, reason", [
    (live("ConfigMap", "a", annotations={"gitops-cron.dev/prune": "disabled"}), "gitops-cron.dev/prune"),
    (live("ConfigMap", "a", annotations={"argocd.argoproj.io/sync-options": "ServerSideApply=true,Prune=false"}),
     "argocd.argoproj.io/sync-options"),
    (live("ConfigMap", "a", annotations={"kustomize.toolkit.fluxcd.io/prune": "disabled"}),
     "kustomize.toolkit.fluxcd.io/prune"),
    (live("ConfigMap", "a", applied_by=("some-operator",)), "not applied by field manager gitops-cron"),
    (live("ConfigMap", "a", applied_by=()), "not applied by field manager gitops-cron"),
    (live("Deployment", "a", controller="HelmRelease/x"), "controlled by HelmRelease/x"),
    (live("Namespace", "demo"), "Namespace is kept unless annotated"),
    (live("CustomResourceDefinition", "widgets.example.com"), "CustomResourceDefinition is kept"),
    (live("PersistentVolumeClaim", "data"), "PersistentVolumeClaim is kept"),
    (live("ConfigMap", "a", deleting=True), "already being deleted"),
])
def test_members_that_must_stay_are_kept_with_the_reason(member, reason):
    selection = select(member)
    assert selection.stale == ()
    assert len(selection.kept) == 1 and reason in selection.kept[0][1]


def test_protected_kinds_go_when_annotated_or_allowed():
    annotated = live("Namespace", "demo", annotations={"gitops-cron.dev/prune": "enabled"})
    assert select(annotated).stale == (annotated,)
    plain = live("PersistentVolumeClaim", "data")
    assert select(plain, prune_protected=True).stale == (plain,)


def test_stale_members_come_in_reverse_apply_order():
    members = [live("Namespace", "demo", annotations={"gitops-cron.dev/prune": "enabled"}),
               live("CustomResourceDefinition", "widgets.example.com", annotations={"gitops-cron.dev/prune": "enabled"}),
               live("ConfigMap", "cfg"), live("Deployment", "web"), live("Widget", "w")]
    order = [m.ref.kind for m in select(*members).stale]
    assert order == ["Widget", "Deployment", "ConfigMap", "Namespace", "CustomResourceDefinition"]


def test_empty_repository_with_members_is_refused_unless_allowed():
    selection = select(live("ConfigMap", "a"))
    with pytest.raises(PruneRefused, match="git holds no objects"):
        check_guards(selection, desired_count=0, member_count=1, allow_empty=False, max_prune=100)
    check_guards(selection, desired_count=0, member_count=1, allow_empty=True, max_prune=100)


def test_more_than_max_prune_is_refused():
    selection = select(*[live("ConfigMap", f"c{i}") for i in range(3)])
    with pytest.raises(PruneRefused, match="3 objects would be deleted, more than --max-prune 2") as raised:
        check_guards(selection, desired_count=5, member_count=8, allow_empty=False, max_prune=2)
    assert raised.value.exit_code == 4
    check_guards(selection, desired_count=5, member_count=8, allow_empty=False, max_prune=3)
