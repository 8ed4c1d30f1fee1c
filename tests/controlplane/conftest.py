"""Fixtures local to the control-plane tier: an admin client on the shared server, and the job run against it.

The server lives for the whole session and is shared by every test, so each test
gets names of its own: its own inventory, its own namespace for the inventory
parent, and its own namespaces for the objects (see ``unique``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, dynamic
from kubernetes.dynamic.exceptions import NotFoundError

from tests.conftest import JobResult, run_job
from tests.controlplane.fixture import ControlPlane

PART_OF = "applyset.kubernetes.io/part-of"
ID_LABEL = "applyset.kubernetes.io/id"
MERGE_PATCH = "application/merge-patch+json"


def unique(prefix: str) -> str:
    """A name never used before on this server (namespaces cannot be reused: they never finish deleting)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class Cluster:
    """The admin's view of the real server, for setting scenes up and for checking what the job did."""

    def __init__(self, api: client.ApiClient, cache_file: Path) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)
        self.dynamic = dynamic.DynamicClient(api, cache_file=str(cache_file))

    def resource(self, api_version: str, kind: str) -> Any:
        # The discoverer refreshes its cache once on a miss, so kinds of CRDs made by a run are found too.
        return self.dynamic.resources.get(api_version=api_version, kind=kind)

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        try:
            return self.resource(api_version, kind).get(name=name, namespace=namespace).to_dict()
        except NotFoundError:
            return None

    def create_namespace(self, name: str) -> str:
        try:
            self.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        except client.ApiException as error:
            if error.status != 409:
                raise
        return name

    def apply(self, manifest: dict[str, Any], field_manager: str = "test-admin") -> dict[str, Any]:
        """Server-side apply as the admin (how `kubectl apply --server-side` installs the RBAC profiles)."""
        resource = self.resource(manifest["apiVersion"], manifest["kind"])
        namespace = manifest["metadata"].get("namespace")
        return resource.server_side_apply(body=manifest, namespace=namespace, field_manager=field_manager,
                                          force_conflicts=True).to_dict()

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> None:
        try:
            self.resource(api_version, kind).delete(name=name, namespace=namespace)
        except NotFoundError:
            pass


@pytest.fixture(scope="session")
def cluster(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    api = config.new_client_from_config(config_file=str(control_plane.kubeconfig))
    try:
        yield Cluster(api, tmp_path_factory.mktemp("discovery") / "cache.json")
    finally:
        api.close()


class Job:
    """One test's job: its inventory and parent namespace, run as the CronJob runs it, as the admin by default."""

    def __init__(self, control_plane: ControlPlane, inventory: str, namespace: str) -> None:
        self.kubeconfig = control_plane.kubeconfig
        self.inventory = inventory
        self.namespace = namespace

    def __call__(self, repo: str, *flags: str, kubeconfig: Path | None = None) -> JobResult:
        return run_job("--repo", repo, "--inventory", self.inventory, "--namespace", self.namespace,
                       "--default-namespace", self.namespace, "--timeout", "90", *flags,
                       kubeconfig=kubeconfig or self.kubeconfig)


@pytest.fixture
def job(control_plane: ControlPlane, cluster: Cluster) -> Job:
    """A fresh inventory (`inv-…`) whose parent lives in a fresh namespace (`own-…`) the test made first."""
    return Job(control_plane, unique("inv"), cluster.create_namespace(unique("own")))
