"""The reconcile job end to end against a real kube-apiserver: real git, reconcile.py as a subprocess.

The same scenarios as tests/wire/test_reconcile.py, answered by the real server
instead of tests/fakekube. Every test has its own inventory, parent namespace and
object namespaces (the server is shared by the session); the RBAC profile tests
are the only ones that use the default inventory `gitops-cron` in `gitops`,
because the profiles' own Role names exactly that.
"""

from __future__ import annotations

import base64
import copy
import gzip
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.conftest import ROOT, GitRepo
from tests.controlplane.conftest import ID_LABEL, MERGE_PATCH, PART_OF, Cluster, Job, unique
from tests.controlplane.fixture import ControlPlane
from tests.wire import manifests_text as text

pytestmark = pytest.mark.controlplane

GROUP_KINDS = "applyset.kubernetes.io/contains-group-kinds"
NAMESPACES = "applyset.kubernetes.io/additional-namespaces"
TOOLING = "applyset.kubernetes.io/tooling"
CRD_GROUP = "example.gitops-cron.dev"
BASE = [("v1", "Namespace", "", None), ("v1", "ConfigMap", "settings", ""), ("apps/v1", "Deployment", "web", ""),
        ("v1", "Service", "web", "")]


def base_repo(git_repo: GitRepo, ns: str) -> str:
    return git_repo.write({"00-namespace.yaml": text.namespace(ns),
                           "app/configmap.yaml": text.configmap("settings", namespace=ns),
                           "app/deployment.yaml": text.deployment("web", namespace=ns),
                           "app/service.yaml": text.service("web", namespace=ns)})


def base_objects(cluster: Cluster, ns: str) -> dict[str, dict[str, Any] | None]:
    """The four objects of base_repo as the server has them, keyed by kind."""
    return {kind: cluster.get(api_version, kind, name or ns, None if kind == "Namespace" else ns)
            for api_version, kind, name, _ in BASE}


def versions(objects: dict[str, dict[str, Any] | None]) -> dict[str, str]:
    return {kind: live["metadata"]["resourceVersion"] for kind, live in objects.items() if live}


def parent(cluster: Cluster, job: Job) -> dict[str, Any]:
    live = cluster.get("v1", "Secret", job.inventory, job.namespace)
    assert live is not None, f"no parent secret/{job.inventory} -n {job.namespace}"
    return live


def applied_by(live: dict[str, Any]) -> set[tuple[str, str]]:
    return {(entry["manager"], entry["operation"]) for entry in live["metadata"].get("managedFields") or []}


def unique_crd(group: str) -> tuple[str, str]:
    """manifests_text.CRD in a group of its own (CRD names are cluster-wide), and its full name."""
    return text.CRD.replace(CRD_GROUP, group), f"widgets.{group}"


def widget(name: str, namespace: str, group: str, size: int = 1) -> str:
    return text.widget(name, namespace=namespace, size=size).replace(CRD_GROUP, group)


# -- converge, no-op, prune ---------------------------------------------------------------------------------------


def test_first_run_creates_everything_labelled_with_the_parents_id(cluster: Cluster, git_repo: GitRepo,
                                                                   job: Job) -> None:
    ns = unique("demo")
    commit = base_repo(git_repo, ns)
    result = job(git_repo.url)
    assert result.exit_code == 0, result.output
    the_parent = parent(cluster, job)
    set_id = the_parent["metadata"]["labels"][ID_LABEL]
    assert set_id.startswith("applyset-") and set_id.endswith("-v1")
    for kind, live in base_objects(cluster, ns).items():
        assert live is not None, kind
        assert live["metadata"]["labels"][PART_OF] == set_id, kind
        assert ("gitops-cron", "Apply") in applied_by(live), (kind, live["metadata"]["managedFields"])
    assert result.lines_with(f"namespace/{ns} created")
    assert result.lines_with(f"deployment.apps/web -n {ns} created")
    annotations = the_parent["metadata"]["annotations"]
    assert annotations[GROUP_KINDS] == "ConfigMap,Deployment.apps,Namespace,Service"
    assert annotations[NAMESPACES] == ns
    assert annotations[TOOLING].startswith("gitops-cron/v")
    assert annotations["gitops-cron.dev/last-run-commit"] == commit
    assert annotations["gitops-cron.dev/last-run-result"] == "converged"
    assert ("gitops-cron", "Apply") in applied_by(the_parent)
    events = cluster.core.list_namespaced_event(job.namespace).items
    assert [e.reason for e in events] == ["ReconcileSucceeded"]
    assert events[0].involved_object.uid == the_parent["metadata"]["uid"]
    assert result.lines_with(f"summary commit={commit} result=converged created=4")


def test_second_run_with_no_change_writes_nothing(cluster: Cluster, git_repo: GitRepo, job: Job) -> None:
    ns = unique("demo")
    base_repo(git_repo, ns)
    assert job(git_repo.url).exit_code == 0
    before = versions(base_objects(cluster, ns))
    parent_annotations = parent(cluster, job)["metadata"]["annotations"]
    assert len(before) == 4
    result = job(git_repo.url)
    assert result.exit_code == 0, result.output
    assert versions(base_objects(cluster, ns)) == before
    assert result.lines_with("created=0 configured=0 unchanged=4 recreated=0 pruned=0 failed=0")
    assert parent(cluster, job)["metadata"]["annotations"][GROUP_KINDS] == parent_annotations[GROUP_KINDS]
    # Nothing changed and nothing failed: still the first run's Event only.
    assert [e.reason for e in cluster.core.list_namespaced_event(job.namespace).items] == ["ReconcileSucceeded"]


def test_removed_file_and_then_a_whole_kind_are_pruned(cluster: Cluster, git_repo: GitRepo, job: Job) -> None:
    ns = unique("demo")
    base_repo(git_repo, ns)
    assert job(git_repo.url).exit_code == 0
    git_repo.remove("app/service.yaml")
    result = job(git_repo.url)
    assert result.exit_code == 0, result.output
    assert result.lines_with(f"service/web -n {ns} pruned")
    assert cluster.get("v1", "Service", "web", ns) is None
    assert cluster.get("apps/v1", "Deployment", "web", ns) is not None
    assert cluster.get("v1", "ConfigMap", "settings", ns) is not None
    assert parent(cluster, job)["metadata"]["annotations"][GROUP_KINDS] == "ConfigMap,Deployment.apps,Namespace"

    git_repo.remove("app/deployment.yaml")
    result = job(git_repo.url)
    assert result.exit_code == 0, result.output
    assert result.lines_with(f"deployment.apps/web -n {ns} pruned")
    assert cluster.get("apps/v1", "Deployment", "web", ns) is None
    assert parent(cluster, job)["metadata"]["annotations"][GROUP_KINDS] == "ConfigMap,Namespace"
    assert result.lines_with("created=0 configured=0 unchanged=2 recreated=0 pruned=1 failed=0")


def test_crd_and_its_custom_resource_converge_in_one_run(cluster: Cluster, git_repo: GitRepo, job: Job) -> None:
    ns = unique("demo")
    group = f"{unique('g')}.{CRD_GROUP}"
    crd, crd_name = unique_crd(group)
    git_repo.write({"crd.yaml": crd, "ns.yaml": text.namespace(ns), "widget.yaml": widget("blue", ns, group)})
    result = job(git_repo.url)
    assert result.exit_code == 0, result.output
    assert result.lines_with(f"customresourcedefinition.apiextensions.k8s.io/{crd_name} created")
    assert result.lines_with(f"widget.{group}/blue -n {ns} created")
    live = cluster.get(f"{group}/v1", "Widget", "blue", ns)
    assert live is not None and live["spec"]["size"] == 1
    assert live["metadata"]["labels"][PART_OF] == parent(cluster, job)["metadata"]["labels"][ID_LABEL]
    assert f"Widget.{group}" in parent(cluster, job)["metadata"]["annotations"][GROUP_KINDS].split(",")
    again = job(git_repo.url)
    assert again.exit_code == 0, again.output
    assert again.lines_with("created=0 configured=0 unchanged=3")


# -- other writers ------------------------------------------------------------------------------------------------


def test_drift_made_with_kubectl_patch_is_put_back(cluster: Cluster, git_repo: GitRepo, job: Job) -> None:
    ns = unique("demo")
    base_repo(git_repo, ns)
    assert job(git_repo.url).exit_code == 0
    # What `kubectl patch --type merge` sends.
    patched = cluster.core.patch_namespaced_config_map("settings", ns, {"data": {"key": "changed by hand"}},
                                                       field_manager="kubectl-patch", _content_type=MERGE_PATCH)
    assert patched.data["key"] == "changed by hand"
    assert ("kubectl-patch", "Update") in {(m.manager, m.operation) for m in patched.metadata.managed_fields}
    result = job(git_repo.url)
    assert result.exit_code == 0, result.output
    assert result.lines_with(f"configmap/settings -n {ns} configured")
    assert result.lines_with("created=0 configured=1 unchanged=3")
    live = cluster.get("v1", "ConfigMap", "settings", ns)
    assert live["data"]["key"] == "value"
    # force=true took the field back: kubectl-patch owns nothing any more, so its entry is gone.
    assert applied_by(live) == {("gitops-cron", "Apply")}


def summary_of(result) -> dict[str, Any]:
    """The summary event of a `--log-format json` run."""
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    return next(line["summary"] for line in lines if "summary" in line)


def test_only_edited_objects_and_secrets_are_sent_once_applied(cluster: Cluster, git_repo: GitRepo, job: Job) -> None:
    """The applied record on the real server: a no-op apply keeps the resourceVersion, any other
    writer's edit changes it, so an untouched object needs no request and an edited one is sent."""
    ns = unique("demo")
    base_repo(git_repo, ns)
    git_repo.write({"app/secret.yaml": text.secret("db", ns, "s3cr3t")})
    assert job(git_repo.url).exit_code == 0
    before = versions(base_objects(cluster, ns))
    quiet = job(git_repo.url, "--log-format", "json")
    assert quiet.exit_code == 0, quiet.output
    assert summary_of(quiet)["requests"]["PATCH"] == 2  # the Secret, and the parent's record of the run
    assert summary_of(quiet)["unchanged"] == 5
    assert versions(base_objects(cluster, ns)) == before
    client.AppsV1Api(cluster.api).patch_namespaced_deployment("web", ns, {"spec": {"replicas": 3}},
                                                              field_manager="kubectl-patch", _content_type=MERGE_PATCH)
    edited = job(git_repo.url, "--log-format", "json")
    assert edited.exit_code == 0, edited.output
    assert summary_of(edited)["requests"]["PATCH"] == 3
    assert summary_of(edited)["configured"] == 1
    live = cluster.get("apps/v1", "Deployment", "web", ns)
    assert live["spec"]["replicas"] == 1
    data = parent(cluster, job)["data"]["applied.json.gz"]
    record = json.loads(gzip.decompress(base64.b64decode(data)))
    assert record["objects"][f"apps/Deployment/{ns}/web"][0] == live["metadata"]["resourceVersion"]
    assert not [key for key in record["objects"] if "/Secret/" in key]


def test_a_name_with_a_question_mark_reaches_its_own_url_not_another_objects(cluster: Cluster, git_repo: GitRepo,
                                                                            job: Job) -> None:
    """Unencoded, `settings?x` would be a PATCH of `settings` with a query; encoded, the server judges
    the name itself (and refuses it: ConfigMap names are DNS subdomains)."""
    ns = unique("demo")
    base_repo(git_repo, ns)
    assert job(git_repo.url).exit_code == 0
    before = cluster.get("v1", "ConfigMap", "settings", ns)
    git_repo.write({"app/odd.yaml": text.configmap("settings?x", namespace=ns, data={"key": "hijacked"})})
    result = job(git_repo.url)
    assert result.exit_code == 1
    # The server judged the name: without the encoding it would have judged a PATCH of `settings`
    # whose query string lost the fieldManager.
    assert result.lines_with(f'failed: HTTP 422 Invalid: ConfigMap "settings?x" is invalid: metadata.name')
    after = cluster.get("v1", "ConfigMap", "settings", ns)
    assert after["data"] == {"key": "value"}
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_object_merely_carrying_our_label_survives_and_is_reported_kept(cluster: Cluster, git_repo: GitRepo,
                                                                         job: Job) -> None:
    ns = unique("demo")
    base_repo(git_repo, ns)
    assert job(git_repo.url).exit_code == 0
    set_id = parent(cluster, job)["metadata"]["labels"][ID_LABEL]
    copied = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="generated", namespace=ns, labels={PART_OF: set_id}),
                                data={"made": "by an operator"})
    cluster.core.create_namespaced_config_map(ns, copied, field_manager="some-operator")
    result = job(git_repo.url)
    assert result.exit_code == 0, result.output
    assert result.lines_with(f"configmap/generated -n {ns} kept: carries our label but was not applied by field "
                             "manager gitops-cron")
    live = cluster.get("v1", "ConfigMap", "generated", ns)
    assert live is not None and live["data"] == {"made": "by an operator"}
    assert applied_by(live) == {("some-operator", "Update")}
    assert result.lines_with("pruned=0 failed=0 skipped=1")


# -- immutable fields ---------------------------------------------------------------------------------------------


def test_immutable_selector_fails_then_is_recreated_when_annotated(cluster: Cluster, git_repo: GitRepo,
                                                                    job: Job) -> None:
    ns = unique("demo")
    base_repo(git_repo, ns)
    assert job(git_repo.url).exit_code == 0
    old_uid = cluster.get("apps/v1", "Deployment", "web", ns)["metadata"]["uid"]
    git_repo.write({"app/deployment.yaml": text.deployment("web", namespace=ns, app="web2")})
    result = job(git_repo.url)
    assert result.exit_code == 1, result.output
    assert result.lines_with(f"deployment.apps/web -n {ns} failed: field is immutable: spec.selector")
    assert result.lines_with("prune skipped: 1 error(s)")
    assert cluster.get("apps/v1", "Deployment", "web", ns)["spec"]["selector"]["matchLabels"] == {"app": "web"}

    git_repo.write({"app/deployment.yaml": text.deployment("web", namespace=ns, app="web2",
                                                           annotations={"gitops-cron.dev/recreate": "true"})})
    result = job(git_repo.url)
    assert result.exit_code == 0, result.output
    assert result.lines_with(f"deployment.apps/web -n {ns} recreated")
    live = cluster.get("apps/v1", "Deployment", "web", ns)
    assert live["spec"]["selector"]["matchLabels"] == {"app": "web2"}
    assert live["metadata"]["uid"] != old_uid
    assert not live["metadata"].get("deletionTimestamp") and not live["metadata"].get("finalizers")


# -- dry run ------------------------------------------------------------------------------------------------------


def test_dry_run_applies_nothing(cluster: Cluster, git_repo: GitRepo, job: Job) -> None:
    ns = unique("demo")
    base_repo(git_repo, ns)
    assert job(git_repo.url).exit_code == 0
    parent_before = parent(cluster, job)["metadata"]
    before = versions(base_objects(cluster, ns))
    git_repo.write({"app/configmap.yaml": text.configmap("settings", namespace=ns, data={"key": "new"}),
                    "app/extra.yaml": text.configmap("extra", namespace=ns),
                    "app/s.yaml": text.secret("pw", ns, "hunter2-secret")})
    result = job(git_repo.url, "--dry-run")
    assert result.exit_code == 0, result.output
    assert versions(base_objects(cluster, ns)) == before
    assert cluster.get("v1", "ConfigMap", "extra", ns) is None
    assert cluster.get("v1", "Secret", "pw", ns) is None
    assert cluster.get("v1", "ConfigMap", "settings", ns)["data"]["key"] == "value"
    parent_after = parent(cluster, job)["metadata"]
    assert parent_after["annotations"] == parent_before["annotations"]
    assert parent_after["resourceVersion"] == parent_before["resourceVersion"]
    assert result.lines_with(f"DRY-RUN configmap/settings -n {ns} configured")
    assert result.lines_with(f"DRY-RUN configmap/extra -n {ns} created")
    assert result.lines_with(f"DRY-RUN secret/pw -n {ns} created")
    assert result.lines_with("DRY-RUN summary") and result.lines_with("created=2 configured=1 unchanged=3")
    assert "hunter2-secret" not in result.output


def test_dry_run_prunes_nothing_and_lists_what_would_be_pruned(cluster: Cluster, git_repo: GitRepo,
                                                               job: Job) -> None:
    ns = unique("demo")
    base_repo(git_repo, ns)
    assert job(git_repo.url).exit_code == 0
    parent_before = parent(cluster, job)["metadata"]
    service_version = cluster.get("v1", "Service", "web", ns)["metadata"]["resourceVersion"]
    git_repo.remove("app/service.yaml")
    result = job(git_repo.url, "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.lines_with(f"DRY-RUN service/web -n {ns} pruned")
    assert parent(cluster, job)["metadata"]["annotations"] == parent_before["annotations"]
    live = cluster.get("v1", "Service", "web", ns)
    assert live is not None, "--dry-run deleted service/web"
    assert live["metadata"]["resourceVersion"] == service_version


# -- RBAC profiles ------------------------------------------------------------------------------------------------

PROFILE_INVENTORY, PROFILE_NAMESPACE = "gitops-cron", "gitops"


def profile_documents(*paths: str) -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    for pattern in paths:
        for path in sorted(ROOT.glob(pattern)):
            documents.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    assert documents, paths
    return documents


@pytest.fixture
def profile_inventory(control_plane: ControlPlane, cluster: Cluster) -> Any:
    """`gitops-cron` in `gitops`, the one inventory the profiles grant; empty before and after each profile test,
    so the profile tests do not inherit each other's parent."""
    cluster.create_namespace(PROFILE_NAMESPACE)
    cluster.create_namespace("team-a")
    cluster.create_namespace("team-b")

    def clear() -> None:
        cluster.delete("v1", "Secret", PROFILE_INVENTORY, PROFILE_NAMESPACE)
        cluster.delete("coordination.k8s.io/v1", "Lease", PROFILE_INVENTORY, PROFILE_NAMESPACE)

    clear()
    yield Job(control_plane, PROFILE_INVENTORY, PROFILE_NAMESPACE)
    clear()


def test_cluster_admin_profile_converges_cluster_scoped_objects(control_plane: ControlPlane, cluster: Cluster,
                                                                git_repo: GitRepo, profile_inventory: Job,
                                                                tmp_path: Path) -> None:
    for document in profile_documents("rbac/cluster-admin/rbac.yaml"):
        cluster.apply(document)
    token = control_plane.token_for_service_account(PROFILE_NAMESPACE, "gitops-cron")
    kubeconfig = control_plane.kubeconfig_for_token(token, tmp_path / "sa-kubeconfig")
    ns = unique("cadmin")
    group = f"{unique('g')}.{CRD_GROUP}"
    crd, crd_name = unique_crd(group)
    role = unique("reader")
    git_repo.write({"ns.yaml": text.namespace(ns), "crd.yaml": crd,
                    "role.yaml": f"apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n"
                                 f"  name: {role}\nrules:\n- apiGroups: ['']\n  resources: [configmaps]\n"
                                 f"  verbs: [get, list]\n",
                    "cm.yaml": text.configmap("settings", namespace=ns)})
    result = profile_inventory(git_repo.url, kubeconfig=kubeconfig)
    assert result.exit_code == 0, result.output
    assert result.lines_with("created=4")
    assert cluster.get("v1", "Namespace", ns) is not None
    assert cluster.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", crd_name) is not None
    assert cluster.get("rbac.authorization.k8s.io/v1", "ClusterRole", role) is not None
    assert cluster.get("v1", "ConfigMap", "settings", ns) is not None
    the_parent = parent(cluster, profile_inventory)
    assert the_parent["metadata"]["annotations"][GROUP_KINDS] == \
        "ClusterRole.rbac.authorization.k8s.io,ConfigMap,CustomResourceDefinition.apiextensions.k8s.io,Namespace"
    again = profile_inventory(git_repo.url, kubeconfig=kubeconfig)
    assert again.exit_code == 0, again.output
    assert again.lines_with("created=0 configured=0 unchanged=4")


def namespaced_profile_for(sa_namespace: str, sa_name: str, self_binding: str) -> list[dict[str, Any]]:
    """rbac/namespaced/ with every subject rewritten to a ServiceAccount of this test's own, so it does not
    touch what the cluster-admin profile binds to gitops/gitops-cron; the self RoleBinding gets its own name
    for the same reason (both profiles call it gitops-cron-self)."""
    documents = [copy.deepcopy(d) for d in profile_documents("rbac/namespaced/*.yaml")]
    for document in documents:
        if document["kind"] in ("RoleBinding", "ClusterRoleBinding"):
            assert document["kind"] == "RoleBinding", "the namespaced profile must never bind cluster-wide"
            document["subjects"] = [{"kind": "ServiceAccount", "name": sa_name, "namespace": sa_namespace}]
            if document["metadata"]["name"] == "gitops-cron-self":
                document["metadata"]["name"] = self_binding
    return documents


def test_namespaced_profile_stays_inside_its_namespaces(control_plane: ControlPlane, cluster: Cluster,
                                                        git_repo: GitRepo, profile_inventory: Job,
                                                        tmp_path: Path) -> None:
    sa_namespace, sa_name = cluster.create_namespace(unique("sa")), "gitops-cron"
    applied = [cluster.apply(d) for d in namespaced_profile_for(sa_namespace, sa_name, unique("gitops-cron-self"))]
    try:
        token = control_plane.token_for_service_account(sa_namespace, sa_name)
        kubeconfig = control_plane.kubeconfig_for_token(token, tmp_path / "sa-kubeconfig")
        app = unique("app")
        git_repo.write({"a/cm.yaml": text.configmap(app, namespace="team-a"),
                        "b/deployment.yaml": text.deployment(app, namespace="team-b"),
                        "b/service.yaml": text.service(app, namespace="team-b")})
        confined = ("--allow-namespaces", "team-a,team-b")
        result = profile_inventory(git_repo.url, *confined, kubeconfig=kubeconfig)
        assert result.exit_code == 0, result.output
        assert cluster.get("v1", "ConfigMap", app, "team-a") is not None
        assert cluster.get("apps/v1", "Deployment", app, "team-b") is not None
        assert cluster.get("v1", "Service", app, "team-b") is not None
        assert parent(cluster, profile_inventory)["metadata"]["annotations"][NAMESPACES] == "team-a,team-b"

        # The scope policy refuses an object elsewhere before any request is made for it.
        elsewhere = cluster.create_namespace(unique("other"))
        git_repo.write({"c/cm.yaml": text.configmap(app, namespace=elsewhere)})
        result = profile_inventory(git_repo.url, *confined, kubeconfig=kubeconfig)
        assert result.exit_code == 1, result.output
        assert result.lines_with(f"configmap/{app} -n {elsewhere} refused: namespace {elsewhere} is not in "
                                 "--allow-namespaces")
        assert cluster.get("v1", "ConfigMap", app, elsewhere) is None
        assert cluster.get("v1", "ConfigMap", app, "team-a") is not None  # nothing pruned after an error

        # Let the scope policy through and the server itself says no: the run lists the kinds it manages in
        # every namespace it manages before applying, and that list is forbidden in a namespace no RoleBinding
        # of the profile covers.
        widened = ("--allow-namespaces", f"team-a,team-b,{elsewhere}")
        result = profile_inventory(git_repo.url, *widened, kubeconfig=kubeconfig)
        assert result.exit_code == 1, result.output
        user = f"system:serviceaccount:{sa_namespace}:{sa_name}"
        assert result.lines_with(f'configmaps is forbidden: User "{user}" cannot list resource "configmaps" in API '
                                 f'group "" in the namespace "{elsewhere}"'), result.output
        assert result.lines_with(f"ConfigMap inventory listing in namespace {elsewhere} failed: HTTP 403 Forbidden")
        assert result.lines_with("result=failed"), result.output
        assert cluster.get("v1", "ConfigMap", app, elsewhere) is None
        assert cluster.get("v1", "ConfigMap", app, "team-a") is not None

        # Without any allow list, the run's own namespace is listed too, and that is forbidden first.
        result = profile_inventory(git_repo.url, kubeconfig=kubeconfig)
        assert result.exit_code == 1, result.output
        assert result.lines_with(f'configmaps is forbidden: User "{user}" cannot list resource "configmaps" in API '
                                 f'group "" in the namespace "{PROFILE_NAMESPACE}"'), result.output
        assert cluster.get("v1", "ConfigMap", app, elsewhere) is None
        assert cluster.get("v1", "ConfigMap", app, "team-a") is not None
        assert parent(cluster, profile_inventory)["metadata"]["annotations"]["gitops-cron.dev/last-run-result"] == \
            "failed"
    finally:
        # Take the grants back (the Roles alone grant nothing; gitops-cron-self is shared with the other profile).
        for document in applied:
            if document["kind"] == "RoleBinding":
                metadata = document["metadata"]
                cluster.delete(document["apiVersion"], document["kind"], metadata["name"], metadata.get("namespace"))
