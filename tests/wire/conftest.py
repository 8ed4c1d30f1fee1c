"""The wire tier: the real client over HTTP against tests/fakekube, and real git repos."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import JobResult, run_job
from tests.fakekube import FakeKube

INVENTORY_ID = "applyset-FvxGnLnWyOUrbxBNXbCxQ1mBV0KIecBiPv8NN3HtUoE-v1"  # gitops-cron in gitops


@pytest.fixture
def kube(tmp_path: Path):
    with FakeKube() as fake:
        fake.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gitops"}})
        fake.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})
        fake.kubeconfig_path = fake.write_kubeconfig(tmp_path / "kubeconfig")
        yield fake


@pytest.fixture
def job(kube):
    """Runs the job against the fake with the repo given; extra flags pass through."""

    def run(repo: str | None, *flags: str, env: dict[str, str] | None = None) -> JobResult:
        repo_flag = ("--repo", repo) if repo is not None else ()
        return run_job(*repo_flag, "--timeout", "60", *flags, kubeconfig=kube.kubeconfig_path, env=env)

    return run
