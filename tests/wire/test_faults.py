"""Faults and hostile input (issue 4): every run either converges or fails without harm,
and the next run converges. Each fault test checks nothing was wrongly deleted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest

from tests.conftest import ROOT
from tests.fakekube import Fault
from tests.wire.manifests_text import configmap, namespace

pytestmark = pytest.mark.wire


def repo_with(git_repo, count=6):
    git_repo.write({"ns.yaml": namespace("demo"), **{f"cm{i}.yaml": configmap(f"cm{i}") for i in range(count)}})


def names(kube, namespace_name="demo"):
    return sorted(o["metadata"]["name"] for o in kube.list("v1", "ConfigMap", namespace_name))


def converge_after_removing(kube, git_repo, job, removed="cm0.yaml"):
    """First run, then remove one file (the stale object a faulty run must not touch wrongly) and
    change cm1 (the object the faults hit: unchanged, it would not be sent at all)."""
    repo_with(git_repo)
    assert job(git_repo.url).exit_code == 0
    git_repo.remove(removed)
    git_repo.write({"cm1.yaml": configmap("cm1", data={"key": "changed"})})


@pytest.mark.parametrize("fault", [
    Fault(method="PATCH", path=r"/configmaps/cm1$", status=503, times=2),
    Fault(method="PATCH", path=r"/configmaps/cm1$", status=500, times=1),
    Fault(method="PATCH", path=r"/configmaps/cm1$", status=429, times=2, retry_after=1),
    Fault(method="PATCH", path=r"/configmaps/cm1$", status=None, drop=True, times=1),
    Fault(method="GET", path=r"/configmaps$", status=503, times=1),
    Fault(method="DELETE", path=r"/configmaps/cm0$", status=503, times=2),
], ids=["503-twice", "500-once", "429-retry-after", "dropped-connection", "list-503", "delete-503"])
def test_transient_faults_are_retried_and_the_run_converges(kube, git_repo, job, fault):
    converge_after_removing(kube, git_repo, job)
    kube.faults.add(fault)
    started = time.monotonic()
    result = job(git_repo.url)
    assert result.exit_code == 0, result.output
    assert fault.hits == fault.times
    assert names(kube) == ["cm1", "cm2", "cm3", "cm4", "cm5"]
    if fault.retry_after:
        assert time.monotonic() - started >= fault.retry_after * fault.times


def test_persistent_failure_fails_the_object_prunes_nothing_and_next_run_converges(kube, git_repo, job):
    converge_after_removing(kube, git_repo, job)
    kube.faults.add(Fault(method="PATCH", path=r"/configmaps/cm1$", status=503, times=None))
    result = job(git_repo.url)
    assert result.exit_code == 1
    assert result.lines_with("configmap/cm1 -n demo failed: HTTP 503")
    assert "cm0" in names(kube)  # nothing pruned after a failure
    kube.faults.clear()
    assert job(git_repo.url).exit_code == 0
    assert "cm0" not in names(kube)


def test_run_timeout_interrupts_without_pruning_and_next_run_converges(kube, git_repo, job):
    converge_after_removing(kube, git_repo, job)
    git_repo.write({f"new{i}.yaml": configmap(f"new{i}") for i in range(6)})
    kube.latency = 0.4
    result = job(git_repo.url, "--timeout", "2", "--concurrency", "1")
    assert result.exit_code == 1
    assert result.lines_with("--timeout reached")
    assert not [r for r in kube.requests if r.method == "DELETE"]
    assert "cm0" in names(kube)
    kube.latency = 0
    assert job(git_repo.url).exit_code == 0
    assert "cm0" not in names(kube) and "new5" in names(kube)


def lease(kube):
    return kube.get("coordination.k8s.io/v1", "Lease", "gitops-cron", "gitops")


def micro(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_held_lock_makes_a_run_exit_0_doing_nothing(kube, git_repo, job):
    repo_with(git_repo)
    now = datetime.now(timezone.utc)
    kube.put({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
              "metadata": {"name": "gitops-cron", "namespace": "gitops"},
              "spec": {"holderIdentity": "gitops-cron-28473-abcde", "leaseDurationSeconds": 60,
                       "acquireTime": micro(now), "renewTime": micro(now)}})
    kube.clear_requests()
    result = job(git_repo.url)
    assert result.exit_code == 0
    assert result.lines_with("another run is in progress (lease/gitops-cron held by gitops-cron-28473-abcde")
    assert not [r for r in kube.requests if r.method in ("PATCH", "DELETE")]
    assert names(kube) == []


def test_expired_lock_of_a_dead_run_is_taken_over_and_released(kube, git_repo, job):
    repo_with(git_repo)
    old = datetime.now(timezone.utc) - timedelta(minutes=10)
    kube.put({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
              "metadata": {"name": "gitops-cron", "namespace": "gitops"},
              "spec": {"holderIdentity": "dead-run", "leaseDurationSeconds": 60,
                       "acquireTime": micro(old), "renewTime": micro(old)}})
    result = job(git_repo.url)
    assert result.exit_code == 0, result.output
    assert len(names(kube)) == 6
    assert not lease(kube)["spec"].get("holderIdentity")  # released for the next run


def start_job(kube, repo_url, *flags):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITOPS_", "KUBECONFIG"))}
    env.update({"KUBECONFIG": str(kube.kubeconfig_path), "GITOPS_GIT_CREDENTIALS_DIR": "", "PYTHONUNBUFFERED": "1"})
    return subprocess.Popen([sys.executable, str(ROOT / "reconcile.py"), "--repo", repo_url, *flags],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def wait_for(condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_overlapping_run_sees_the_lock_and_leaves_the_first_alone(kube, git_repo, job):
    repo_with(git_repo, count=30)
    kube.latency = 0.2  # the first run takes several seconds: the second surely starts while it holds the lock
    first = start_job(kube, git_repo.url, "--concurrency", "1")
    assert wait_for(lambda: (lease(kube) or {}).get("spec", {}).get("holderIdentity"))
    second = job(git_repo.url)
    output, _ = first.communicate(timeout=60)
    assert second.exit_code == 0 and second.lines_with("another run is in progress")
    assert first.returncode == 0, output
    assert len(names(kube)) == 30


def test_sigterm_stops_new_work_never_prunes_releases_the_lock_and_next_run_converges(kube, git_repo, job):
    converge_after_removing(kube, git_repo, job)
    git_repo.write({f"new{i}.yaml": configmap(f"new{i}") for i in range(20)})
    kube.latency = 0.15
    kube.clear_requests()
    process = start_job(kube, git_repo.url, "--concurrency", "1")
    assert wait_for(lambda: any(r.method == "PATCH" and "/configmaps/" in r.path for r in kube.requests))
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 1, output
    assert "received SIGTERM" in output and "result=interrupted" in output
    assert not [r for r in kube.requests if r.method == "DELETE"]
    assert "cm0" in names(kube)
    assert not lease(kube)["spec"].get("holderIdentity")
    annotations = kube.get("v1", "Secret", "gitops-cron", "gitops")["metadata"]["annotations"]
    assert annotations["gitops-cron.dev/last-run-result"] == "interrupted"
    kube.latency = 0
    assert job(git_repo.url).exit_code == 0
    assert "cm0" not in names(kube) and "new19" in names(kube)


def test_hostile_files_are_refused_without_hiding_other_objects(kube, git_repo, job, tmp_path):
    bomb = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb, namespace: demo}\ndata:\n  a: &a [x, x, x, x, x, x, x, x, x]\n"
    for level in range(1, 10):
        previous = "a" if level == 1 else f"l{level - 1}"
        bomb += f"  l{level}: &l{level} [" + ", ".join([f"*{previous}"] * 9) + "]\n"
    outside = tmp_path / "outside.yaml"
    outside.write_text(configmap("stolen"))
    repo_with(git_repo)
    (git_repo.path / "link.yaml").symlink_to(outside)
    git_repo.write({"bomb.yaml": bomb, "big.yaml": configmap("big", data={"k": "x" * 3000}),
                    "latin1.yaml": "placeholder"})
    (git_repo.path / "latin1.yaml").write_bytes(b"kind: ConfigMap\nmetadata: {name: caf\xe9}\n")
    git_repo.commit("hostile")
    started = time.monotonic()
    result = job(git_repo.url, "--max-file-bytes", "2000")
    assert time.monotonic() - started < 30
    assert result.exit_code == 1
    assert result.lines_with("bomb.yaml:1: document expands to more than 200000 YAML nodes")
    assert result.lines_with("big.yaml: file is")
    assert result.lines_with("latin1.yaml: not UTF-8 text")
    assert result.lines_with("link.yaml: symlink leads outside the repository; refused")
    assert len(names(kube)) == 6 and "stolen" not in names(kube)


def test_path_that_escapes_the_repository_is_refused(kube, git_repo, job, tmp_path):
    repo_with(git_repo)
    (git_repo.path / "escape").symlink_to(tmp_path)
    git_repo.commit("escape")
    result = job(git_repo.url, "--path", "escape")
    assert result.exit_code == 3
    assert result.lines_with("path 'escape' failed: it leads outside the repository")
    assert job(git_repo.url, "--path", "../x").exit_code == 2


def test_scope_policy_refuses_objects_and_blocks_pruning(kube, git_repo, job):
    converge_after_removing(kube, git_repo, job)
    git_repo.write({"crb.yaml": "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\n"
                                "metadata: {name: everyone-admin}\nroleRef: {apiGroup: rbac.authorization.k8s.io, "
                                "kind: ClusterRole, name: cluster-admin}\nsubjects: [{kind: Group, "
                                "apiGroup: rbac.authorization.k8s.io, name: 'system:authenticated'}]\n",
                    "other.yaml": configmap("elsewhere", namespace="kube-system")})
    result = job(git_repo.url, "--deny-kinds", "ClusterRoleBinding", "--deny-namespaces", "kube-system")
    assert result.exit_code == 1
    assert result.lines_with("clusterrolebinding.rbac.authorization.k8s.io/everyone-admin refused: kind "
                             "ClusterRoleBinding.rbac.authorization.k8s.io is denied by --deny-kinds")
    assert result.lines_with("configmap/elsewhere -n kube-system refused: namespace kube-system is denied")
    assert kube.get("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "everyone-admin") is None
    assert "cm0" in names(kube)


def test_confined_run_never_lists_outside_its_namespaces(kube, git_repo, job):
    kube.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}})
    git_repo.write({"a.yaml": configmap("app", namespace="team-a"), "b.yaml": configmap("gone", namespace="team-a")})
    kube.forbid("list", "configmaps", "gitops")  # the namespaced RBAC profile grants no list there
    assert job(git_repo.url, "--allow-namespaces", "team-a").exit_code == 0
    git_repo.remove("b.yaml")
    result = job(git_repo.url, "--allow-namespaces", "team-a")
    assert result.exit_code == 0, result.output
    assert names(kube, "team-a") == ["app"]
    assert not [r for r in kube.requests if r.method == "GET" and "/namespaces/gitops/configmaps" in r.path]
