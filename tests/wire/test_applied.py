"""The applied record over the wire: a run leaves out objects unchanged since its last apply,
and still sends everything that changed in git, in the cluster, or in how it applies."""

from __future__ import annotations

import base64
import gzip
import json
import time

import pytest

from tests.fakekube import Fault
from tests.wire.manifests_text import configmap, deployment, namespace, secret

pytestmark = pytest.mark.wire


def repo(git_repo, **changes):
    files = {"00-namespace.yaml": namespace("demo"), "app/deployment.yaml": deployment("web"),
             "app/secret.yaml": secret("db", "demo", "s3cr3t-value"),
             **{f"app/cm{i}.yaml": configmap(f"cm{i}") for i in range(4)}}
    files.update(changes)
    return git_repo.write(files)


def applies(kube):
    """Object paths of this run's server-side applies, the inventory parent left out."""
    return sorted(r.path.rsplit("/", 2)[-2] + "/" + r.path.rsplit("/", 1)[-1] for r in kube.requests
                  if r.method == "PATCH" and "/secrets/gitops-cron" not in r.path)


def record(kube):
    data = kube.get("v1", "Secret", "gitops-cron", "gitops").get("data") or {}
    return json.loads(gzip.decompress(base64.b64decode(data["applied.json.gz"])))


def test_no_change_run_sends_only_secrets_and_reports_the_rest_unchanged(kube, git_repo, job):
    repo(git_repo)
    assert job(git_repo.url).exit_code == 0
    kube.clear_requests()
    result = job(git_repo.url)
    assert result.exit_code == 0, result.output
    assert applies(kube) == ["secrets/db"]
    assert result.lines_with("6 object(s) unchanged in git and in the cluster since their last apply: not sent")
    assert result.lines_with("created=0 configured=0 unchanged=7 recreated=0 pruned=0 failed=0")
    entries = record(kube)["objects"]
    assert sorted(entries) == ["/ConfigMap/demo/cm0", "/ConfigMap/demo/cm1",
                               "/ConfigMap/demo/cm2", "/ConfigMap/demo/cm3", "/Namespace//demo",
                               "apps/Deployment/demo/web"]
    live = kube.get("v1", "ConfigMap", "cm0", "demo")
    assert entries["/ConfigMap/demo/cm0"][0] == live["metadata"]["resourceVersion"]


def test_secret_values_are_never_fingerprinted(kube, git_repo, job):
    repo(git_repo)
    assert job(git_repo.url).exit_code == 0
    assert not [k for k in record(kube)["objects"] if "/Secret/" in k]


def test_drift_changes_the_resource_version_so_the_object_is_sent_and_put_back(kube, git_repo, job):
    repo(git_repo)
    assert job(git_repo.url).exit_code == 0
    drifted = kube.get("v1", "ConfigMap", "cm1", "demo")
    drifted["data"] = {"key": "changed by hand"}
    kube.put(drifted, manager="kubectl-edit")
    kube.clear_requests()
    result = job(git_repo.url)
    assert result.exit_code == 0, result.output
    assert applies(kube) == ["configmaps/cm1", "secrets/db"]
    assert result.lines_with("configmap/cm1 -n demo configured")
    assert kube.get("v1", "ConfigMap", "cm1", "demo")["data"] == {"key": "value"}
    kube.clear_requests()
    assert job(git_repo.url).exit_code == 0
    assert applies(kube) == ["secrets/db"]  # and once put back, it is left alone again


def test_a_change_in_git_sends_that_object_only(kube, git_repo, job):
    repo(git_repo)
    assert job(git_repo.url).exit_code == 0
    repo(git_repo, **{"app/cm2.yaml": configmap("cm2", data={"key": "new"})})
    kube.clear_requests()
    result = job(git_repo.url)
    assert result.exit_code == 0, result.output
    assert applies(kube) == ["configmaps/cm2", "secrets/db"]
    assert kube.get("v1", "ConfigMap", "cm2", "demo")["data"] == {"key": "new"}


def test_another_field_manager_sends_everything(kube, git_repo, job):
    repo(git_repo)
    assert job(git_repo.url).exit_code == 0
    kube.clear_requests()
    assert job(git_repo.url, "--field-manager", "platform").exit_code == 0
    assert len(applies(kube)) == 7


def test_once_the_full_apply_interval_has_passed_every_object_is_sent_again(kube, git_repo, job):
    repo(git_repo)
    assert job(git_repo.url).exit_code == 0
    kube.clear_requests()
    assert job(git_repo.url).exit_code == 0
    assert applies(kube) == ["secrets/db"]
    # Two hours later, as far as the record knows.
    the_parent = kube.get("v1", "Secret", "gitops-cron", "gitops")
    document = record(kube)
    document["fullApplyTime"] -= 7200
    the_parent["data"]["applied.json.gz"] = base64.b64encode(gzip.compress(json.dumps(document).encode())).decode()
    kube.put(the_parent, manager="clock")
    kube.clear_requests()
    started = time.time()
    assert job(git_repo.url).exit_code == 0
    assert len(applies(kube)) == 7
    assert record(kube)["fullApplyTime"] >= started - 1


def test_interval_zero_sends_every_object_every_run_and_keeps_no_record(kube, git_repo, job):
    repo(git_repo)
    assert job(git_repo.url).exit_code == 0
    assert "applied.json.gz" in kube.get("v1", "Secret", "gitops-cron", "gitops")["data"]
    kube.clear_requests()
    result = job(git_repo.url, "--full-apply-interval", "0")
    assert result.exit_code == 0, result.output
    assert len(applies(kube)) == 7
    assert result.lines_with("unchanged=7")
    assert "applied.json.gz" not in (kube.get("v1", "Secret", "gitops-cron", "gitops").get("data") or {})


def test_unreadable_record_means_every_object_is_sent_and_the_record_rewritten(kube, git_repo, job):
    repo(git_repo)
    assert job(git_repo.url).exit_code == 0
    the_parent = kube.get("v1", "Secret", "gitops-cron", "gitops")
    the_parent["data"]["applied.json.gz"] = base64.b64encode(b"not gzip").decode()
    kube.put(the_parent, manager="someone")
    kube.clear_requests()
    result = job(git_repo.url)
    assert result.exit_code == 0, result.output
    assert result.lines_with("applied record in the inventory parent is unreadable")
    assert len(applies(kube)) == 7
    kube.clear_requests()
    assert job(git_repo.url).exit_code == 0
    assert applies(kube) == ["secrets/db"]


def test_deleted_object_is_recreated_though_the_record_names_it(kube, git_repo, job):
    repo(git_repo)
    assert job(git_repo.url).exit_code == 0
    kube.delete("v1", "ConfigMap", "cm3", "demo")
    kube.clear_requests()
    result = job(git_repo.url)
    assert result.exit_code == 0, result.output
    assert result.lines_with("configmap/cm3 -n demo created")
    assert kube.get("v1", "ConfigMap", "cm3", "demo") is not None


def test_an_object_that_failed_is_sent_again_next_run(kube, git_repo, job):
    repo(git_repo)
    assert job(git_repo.url).exit_code == 0
    repo(git_repo, **{"app/cm0.yaml": configmap("cm0", data={"key": "v2"})})
    kube.faults.add(Fault(method="PATCH", path=r"/configmaps/cm0$", status=503, times=None))
    assert job(git_repo.url).exit_code == 1
    kube.faults.clear()
    kube.clear_requests()
    assert job(git_repo.url).exit_code == 0
    assert "configmaps/cm0" in applies(kube)
    assert kube.get("v1", "ConfigMap", "cm0", "demo")["data"] == {"key": "v2"}


def test_dry_run_leaves_unchanged_objects_out_too_and_writes_no_record(kube, git_repo, job):
    repo(git_repo)
    assert job(git_repo.url).exit_code == 0
    before = kube.get("v1", "Secret", "gitops-cron", "gitops")["data"]["applied.json.gz"]
    repo(git_repo, **{"app/cm2.yaml": configmap("cm2", data={"key": "new"})})
    kube.clear_requests()
    result = job(git_repo.url, "--dry-run")
    assert result.exit_code == 0, result.output
    assert applies(kube) == ["configmaps/cm2", "secrets/db"]
    assert result.lines_with("DRY-RUN configmap/cm2 -n demo configured")
    assert kube.get("v1", "Secret", "gitops-cron", "gitops")["data"]["applied.json.gz"] == before
