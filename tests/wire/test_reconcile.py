"""The reconcile job end to end over the wire: a real git repo, reconcile.py as a subprocess, the fake API."""

from __future__ import annotations

import json

import pytest

from tests.fakekube import Fault
from tests.wire.conftest import INVENTORY_ID
from tests.wire.manifests_text import CRD, configmap, deployment, namespace, secret, service, widget

pytestmark = pytest.mark.wire
PART_OF = "applyset.kubernetes.io/part-of"


def base_repo(git_repo):
    return git_repo.write({"00-namespace.yaml": namespace("demo"),
                           "app/configmap.yaml": configmap("settings"),
                           "app/deployment.yaml": deployment("web"),
                           "app/service.yaml": service("web")})


def parent(kube):
    return kube.get("v1", "Secret", "gitops-cron", "gitops")


def test_first_run_creates_everything_with_labels_and_parent(kube, git_repo, job):
    commit = base_repo(git_repo)
    result = job(git_repo.url)
    assert result.exit_code == 0, result.output
    for api_version, kind, name, ns in [("v1", "Namespace", "demo", None), ("v1", "ConfigMap", "settings", "demo"),
                                        ("apps/v1", "Deployment", "web", "demo"), ("v1", "Service", "web", "demo")]:
        live = kube.get(api_version, kind, name, ns)
        assert live is not None, (kind, name)
        assert live["metadata"]["labels"][PART_OF] == INVENTORY_ID
        assert any(m["manager"] == "gitops-cron" and m["operation"] == "Apply" for m in live["metadata"]["managedFields"])
    assert result.lines_with("deployment.apps/web -n demo created")
    assert result.lines_with("namespace/demo created")
    the_parent = parent(kube)
    assert the_parent["metadata"]["labels"]["applyset.kubernetes.io/id"] == INVENTORY_ID
    annotations = the_parent["metadata"]["annotations"]
    assert annotations["applyset.kubernetes.io/tooling"] == "gitops-cron/v0.1.0"
    assert annotations["applyset.kubernetes.io/contains-group-kinds"] == "ConfigMap,Deployment.apps,Namespace,Service"
    assert annotations["applyset.kubernetes.io/additional-namespaces"] == "demo"
    assert annotations["gitops-cron.dev/last-run-commit"] == commit
    assert annotations["gitops-cron.dev/last-run-result"] == "converged"
    assert "created=4" in annotations["gitops-cron.dev/last-run-counts"]
    events = kube.list("v1", "Event", "gitops")
    assert [e["reason"] for e in events] == ["ReconcileSucceeded"]
    assert result.lines_with(f"summary commit={commit} result=converged created=4")


def test_server_side_apply_requests_carry_manager_force_and_content_type(kube, git_repo, job):
    base_repo(git_repo)
    kube.clear_requests()
    assert job(git_repo.url).exit_code == 0
    applies = [r for r in kube.requests if r.method == "PATCH" and "/deployments/" in r.path]
    assert len(applies) == 1
    request = applies[0]
    assert request.headers["content-type"] == "application/apply-patch+yaml"
    assert request.query["fieldManager"] == ["gitops-cron"]
    assert json.loads(request.body)["metadata"]["labels"][PART_OF] == INVENTORY_ID


def test_second_run_with_no_change_is_unchanged_and_deletes_nothing(kube, git_repo, job):
    base_repo(git_repo)
    assert job(git_repo.url).exit_code == 0
    versions = {name: kube.get("v1", "ConfigMap", name, "demo")["metadata"]["resourceVersion"] for name in ["settings"]}
    events_before = len(kube.list("v1", "Event", "gitops"))
    kube.clear_requests()
    result = job(git_repo.url)
    assert result.exit_code == 0, result.output
    assert result.lines_with("created=0 configured=0 unchanged=4 recreated=0 pruned=0 failed=0")
    assert not [r for r in kube.requests if r.method == "DELETE"]
    assert kube.get("v1", "ConfigMap", "settings", "demo")["metadata"]["resourceVersion"] == versions["settings"]
    # No per-object GET on a run that changes nothing: one apply per object, and lists.
    object_gets = [r for r in kube.requests if r.method == "GET" and "/demo/" in r.path and "labelSelector" not in r.query]
    assert object_gets == []
    assert len(kube.list("v1", "Event", "gitops")) == events_before  # nothing changed, nothing failed: no Event


def test_drift_is_put_back(kube, git_repo, job):
    base_repo(git_repo)
    assert job(git_repo.url).exit_code == 0
    drifted = kube.get("v1", "ConfigMap", "settings", "demo")
    drifted["data"]["key"] = "changed by hand"
    kube.put(drifted, manager="kubectl-edit", operation="Update")
    result = job(git_repo.url)
    assert result.exit_code == 0
    assert result.lines_with("configmap/settings -n demo configured")
    assert kube.get("v1", "ConfigMap", "settings", "demo")["data"]["key"] == "value"


def test_removed_file_prunes_only_its_objects(kube, git_repo, job):
    base_repo(git_repo)
    assert job(git_repo.url).exit_code == 0
    git_repo.remove("app/service.yaml")
    result = job(git_repo.url)
    assert result.exit_code == 0, result.output
    assert kube.get("v1", "Service", "web", "demo") is None
    assert kube.get("apps/v1", "Deployment", "web", "demo") is not None
    assert result.lines_with("service/web -n demo pruned")
    deletes = [r for r in kube.requests if r.method == "DELETE"]
    assert len(deletes) == 1
    options = json.loads(deletes[0].body)
    assert options["propagationPolicy"] == "Background"
    assert set(options["preconditions"]) == {"uid", "resourceVersion"}


def test_whole_kind_removed_is_still_pruned_and_leaves_the_parent(kube, git_repo, job):
    base_repo(git_repo)
    assert job(git_repo.url).exit_code == 0
    git_repo.remove("app/deployment.yaml")
    assert job(git_repo.url).exit_code == 0
    assert kube.get("apps/v1", "Deployment", "web", "demo") is None
    kinds = parent(kube)["metadata"]["annotations"]["applyset.kubernetes.io/contains-group-kinds"]
    assert kinds == "ConfigMap,Namespace,Service"


def test_yaml_error_applies_the_rest_prunes_nothing_and_names_file_and_line(kube, git_repo, job):
    base_repo(git_repo)
    assert job(git_repo.url).exit_code == 0
    git_repo.remove("app/service.yaml")
    git_repo.write({"app/broken.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [oops\n",
                    "app/new.yaml": configmap("new")})
    result = job(git_repo.url)
    assert result.exit_code == 1
    assert result.lines_with("app/broken.yaml:5:1: YAML syntax error")
    assert kube.get("v1", "ConfigMap", "new", "demo") is not None
    assert kube.get("v1", "Service", "web", "demo") is not None  # not pruned
    assert result.lines_with("prune skipped: 1 error(s)")
    assert parent(kube)["metadata"]["annotations"]["gitops-cron.dev/last-run-result"] == "failed"
    assert "ReconcileFailed" in [e["reason"] for e in kube.list("v1", "Event", "gitops")]


def test_crd_and_its_custom_resource_converge_in_one_run(kube, git_repo, job):
    kube.crd_established_delay = 0.5
    git_repo.write({"crd.yaml": CRD, "ns.yaml": namespace("demo"), "widget.yaml": widget("blue")})
    result = job(git_repo.url)
    assert result.exit_code == 0, result.output
    assert kube.get("example.gitops-cron.dev/v1", "Widget", "blue", "demo")["spec"]["size"] == 1
    assert result.lines_with("widget.example.gitops-cron.dev/blue -n demo created")


def test_namespace_and_objects_in_it_converge_in_one_run(kube, git_repo, job):
    git_repo.write({"z.yaml": configmap("late", namespace="fresh"), "a.yaml": namespace("fresh")})
    result = job(git_repo.url)
    assert result.exit_code == 0, result.output
    assert kube.get("v1", "ConfigMap", "late", "fresh") is not None


def test_opted_out_objects_survive_removal_from_git(kube, git_repo, job):
    git_repo.write({"ns.yaml": namespace("demo"),
                    "ours.yaml": configmap("ours", annotations={"gitops-cron.dev/prune": "disabled"}),
                    "argo.yaml": configmap("argo", annotations={"argocd.argoproj.io/sync-options": "Prune=false"}),
                    "flux.yaml": configmap("flux", annotations={"kustomize.toolkit.fluxcd.io/prune": "disabled"}),
                    "plain.yaml": configmap("plain")})
    assert job(git_repo.url).exit_code == 0
    git_repo.remove("ours.yaml", "argo.yaml", "flux.yaml", "plain.yaml")
    result = job(git_repo.url)
    assert result.exit_code == 0, result.output
    assert [kube.get("v1", "ConfigMap", n, "demo") is not None for n in ("ours", "argo", "flux", "plain")] == [
        True, True, True, False]
    assert result.lines_with("configmap/argo -n demo kept: annotated argocd.argoproj.io/sync-options: Prune=false")


def test_emptied_repository_is_refused(kube, git_repo, job):
    base_repo(git_repo)
    assert job(git_repo.url).exit_code == 0
    git_repo.remove("00-namespace.yaml", "app")
    result = job(git_repo.url)
    assert result.exit_code == 4
    assert result.lines_with("prune refused: git holds no objects")
    assert kube.get("apps/v1", "Deployment", "web", "demo") is not None
    assert parent(kube)["metadata"]["annotations"]["gitops-cron.dev/last-run-result"] == "prune-refused"
    assert job(git_repo.url, "--allow-empty").exit_code == 0
    assert kube.get("apps/v1", "Deployment", "web", "demo") is None
    assert kube.get("v1", "Namespace", "demo") is not None  # protected kind, kept


def test_max_prune_guard_refuses_and_deletes_nothing(kube, git_repo, job):
    git_repo.write({"ns.yaml": namespace("demo"), **{f"cm{i}.yaml": configmap(f"cm{i}") for i in range(4)}})
    assert job(git_repo.url).exit_code == 0
    git_repo.remove(*[f"cm{i}.yaml" for i in range(3)])
    kube.clear_requests()
    result = job(git_repo.url, "--max-prune", "2")
    assert result.exit_code == 4
    assert result.lines_with("3 objects would be deleted, more than --max-prune 2")
    assert not [r for r in kube.requests if r.method == "DELETE"]
    assert len(kube.list("v1", "ConfigMap", "demo")) == 4


def test_objects_of_another_inventory_are_untouched_and_not_taken_over(kube, git_repo, job):
    kube.put(namespace_obj("demo"))
    other = {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": "theirs", "namespace": "demo", "labels": {PART_OF: "applyset-other-v1"}},
             "data": {"key": "theirs"}}
    kube.put(other, manager="other-tool", operation="Apply")
    git_repo.write({"cm.yaml": configmap("theirs", data={"key": "mine"}), "ok.yaml": configmap("ok")})
    result = job(git_repo.url)
    assert result.exit_code == 1
    assert result.lines_with("configmap/theirs -n demo failed: belongs to another inventory")
    live = kube.get("v1", "ConfigMap", "theirs", "demo")
    assert live["data"]["key"] == "theirs" and live["metadata"]["labels"][PART_OF] == "applyset-other-v1"
    assert kube.get("v1", "ConfigMap", "ok", "demo") is not None
    adopted = job(git_repo.url, "--adopt")
    assert adopted.exit_code == 0, adopted.output
    assert kube.get("v1", "ConfigMap", "theirs", "demo")["metadata"]["labels"][PART_OF] == INVENTORY_ID


def namespace_obj(name):
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def test_object_that_merely_carries_our_label_survives(kube, git_repo, job):
    base_repo(git_repo)
    assert job(git_repo.url).exit_code == 0
    copied = {"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "generated", "namespace": "demo", "labels": {PART_OF: INVENTORY_ID}},
              "data": {"made": "by an operator"}}
    kube.put(copied, manager="some-operator", operation="Update")
    result = job(git_repo.url)
    assert result.exit_code == 0
    assert kube.get("v1", "ConfigMap", "generated", "demo") is not None
    assert result.lines_with("configmap/generated -n demo kept: carries our label but was not applied by field manager")


def test_namespace_removed_from_git_is_kept_unless_marked_prunable(kube, git_repo, job):
    git_repo.write({"a.yaml": namespace("keepme"), "b.yaml": namespace("dropme", {"gitops-cron.dev/prune": "enabled"}),
                    "c.yaml": configmap("c", namespace="default")})
    assert job(git_repo.url).exit_code == 0
    git_repo.remove("a.yaml", "b.yaml")
    result = job(git_repo.url)
    assert result.exit_code == 0, result.output
    assert kube.get("v1", "Namespace", "keepme") is not None
    assert kube.get("v1", "Namespace", "dropme") is None
    assert result.lines_with("namespace/keepme kept: Namespace is kept unless annotated gitops-cron.dev/prune: enabled")


def test_failed_delete_keeps_its_kind_in_the_parent_and_succeeds_next_run(kube, git_repo, job):
    base_repo(git_repo)
    assert job(git_repo.url).exit_code == 0
    git_repo.remove("app/service.yaml")
    kube.faults.add(Fault(method="DELETE", path=r"/services/web$", status=403, times=1))
    result = job(git_repo.url)
    assert result.exit_code == 1
    assert result.lines_with("service/web -n demo prune failed: HTTP 403")
    assert "Service" in parent(kube)["metadata"]["annotations"]["applyset.kubernetes.io/contains-group-kinds"]
    assert kube.get("v1", "Service", "web", "demo") is not None
    result = job(git_repo.url)
    assert result.exit_code == 0, result.output
    assert kube.get("v1", "Service", "web", "demo") is None
    assert "Service" not in parent(kube)["metadata"]["annotations"]["applyset.kubernetes.io/contains-group-kinds"]


def test_dry_run_changes_nothing_and_lists_what_would_be_pruned(kube, git_repo, job):
    base_repo(git_repo)
    assert job(git_repo.url).exit_code == 0
    parent_before = parent(kube)
    git_repo.remove("app/service.yaml")
    git_repo.write({"app/configmap.yaml": configmap("settings", data={"key": "new"}),
                    "app/extra.yaml": configmap("extra"), "app/s.yaml": secret("pw", "demo", "hunter2-secret")})
    kube.clear_requests()
    result = job(git_repo.url, "--dry-run")
    assert result.exit_code == 0, result.output
    writes = [r for r in kube.requests if r.method in ("PATCH", "DELETE", "POST", "PUT")]
    assert writes and all(r.query.get("dryRun") == ["All"] for r in writes)
    assert kube.get("v1", "Service", "web", "demo") is not None
    assert kube.get("v1", "ConfigMap", "extra", "demo") is None
    assert kube.get("v1", "ConfigMap", "settings", "demo")["data"]["key"] == "value"
    assert parent(kube) == parent_before
    assert result.lines_with("DRY-RUN service/web -n demo pruned")
    assert result.lines_with("DRY-RUN configmap/settings -n demo configured")
    assert result.lines_with("DRY-RUN configmap/extra -n demo created")
    assert "hunter2-secret" not in result.output


def test_immutable_field_is_reported_and_recreated_when_opted_in(kube, git_repo, job):
    base_repo(git_repo)
    assert job(git_repo.url).exit_code == 0
    git_repo.write({"app/deployment.yaml": deployment("web", app="web2")})
    result = job(git_repo.url)
    assert result.exit_code == 1
    assert result.lines_with("deployment.apps/web -n demo failed: field is immutable: spec.selector")
    git_repo.write({"app/deployment.yaml": deployment("web", app="web2", annotations={"gitops-cron.dev/recreate": "true"})})
    result = job(git_repo.url)
    assert result.exit_code == 0, result.output
    assert result.lines_with("deployment.apps/web -n demo recreated")
    assert kube.get("apps/v1", "Deployment", "web", "demo")["spec"]["selector"]["matchLabels"] == {"app": "web2"}


def test_unknown_kind_fails_that_object_and_blocks_prune(kube, git_repo, job):
    base_repo(git_repo)
    assert job(git_repo.url).exit_code == 0
    git_repo.remove("app/service.yaml")
    git_repo.write({"gadget.yaml": "apiVersion: example.com/v1\nkind: Gadget\nmetadata: {name: g, namespace: demo}\n"})
    result = job(git_repo.url)
    assert result.exit_code == 1
    assert result.lines_with("gadget.yaml:1: Gadget example.com/v1 is not a kind this cluster knows")
    assert kube.get("v1", "Service", "web", "demo") is not None


def test_json_log_format_is_one_object_per_line(kube, git_repo, job):
    base_repo(git_repo)
    result = job(git_repo.url, "--log-format", "json")
    assert result.exit_code == 0
    entries = [json.loads(line) for line in result.stderr.splitlines()]
    summary = [e for e in entries if "summary" in e][-1]["summary"]
    assert summary["created"] == 4 and summary["exit_code"] == 0
    assert summary["requests"]["PATCH"] >= 4  # 4 objects and the parent
    created = [e for e in entries if e.get("action") == "created"]
    assert {e["subject"] for e in created} >= {"deployment.apps/web -n demo"}


def test_secret_data_never_appears_in_output(kube, git_repo, job):
    git_repo.write({"ns.yaml": namespace("demo"), "s.yaml": secret("db", "demo", "s3cr3t-value")})
    result = job(git_repo.url, "--verbose")
    assert result.exit_code == 0, result.output
    assert "s3cr3t-value" not in result.output


def test_failed_clone_exits_3_and_touches_nothing(kube, tmp_path, job):
    kube.clear_requests()
    result = job((tmp_path / "missing").as_uri())
    assert result.exit_code == 3
    assert result.lines_with("clone failed: git exited")
    # Discovery may run while git clones; nothing is written.
    assert [r for r in kube.requests if r.method != "GET"] == []
    assert [r for r in kube.requests if not r.path.startswith(("/api", "/apis"))] == []
    assert [r for r in kube.requests if "/namespaces/" in r.path] == []


def test_bad_setting_exits_2_with_one_line(job):
    result = job("/definitely/not/here", "--concurrency", "0")
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0
    assert "--concurrency/GITOPS_CONCURRENCY: must be between 1 and 64" in result.stderr


def test_path_reads_its_directory_and_links_to_shared_files_inside_the_repository(kube, git_repo, job):
    """Read from git's object store: the link is followed on the tree's listing, no working tree is written."""
    git_repo.write({"clusters/prod/ns.yaml": namespace("demo"), "clusters/staging/cm.yaml": configmap("staging"),
                    "shared/base.yaml": configmap("base")})
    (git_repo.path / "clusters" / "prod" / "base.yaml").symlink_to("../../shared/base.yaml")
    git_repo.commit("link")
    result = job(git_repo.url, "--path", "clusters/prod")
    assert result.exit_code == 0, result.output
    assert sorted(o["metadata"]["name"] for o in kube.list("v1", "ConfigMap", "demo")) == ["base"]
    assert result.lines_with("read 2 object(s) from 2 file(s)")
