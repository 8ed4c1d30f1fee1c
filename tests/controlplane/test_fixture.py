"""Proof that the control-plane fixture runs the real server and is usable.

These also pin down server behaviour the fake API server must copy, so a
failure here after a version bump means "re-check the fake", not only
"fix the fixture".
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from tests.controlplane.fixture import K8S_VERSION, ControlPlane

# Re-exported so this file runs without tests/conftest.py; a second import
# there still shares one server (see fixture._acquire_shared).
from tests.controlplane.fixture import control_plane as control_plane

pytestmark = pytest.mark.controlplane

APPLY = "application/apply-patch+yaml"


def _name(prefix: str) -> str:
    # The server lives for the whole session: never reuse a name.
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def api(control_plane: ControlPlane) -> Iterator[client.ApiClient]:
    api_client = config.new_client_from_config(config_file=str(control_plane.kubeconfig))
    try:
        yield api_client
    finally:
        api_client.close()


@pytest.fixture
def namespace(api: client.ApiClient) -> str:
    # Not deleted afterwards: without a namespace controller it would only
    # sit in Terminating.
    name = _name("t")
    client.CoreV1Api(api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    return name


def test_version_is_the_pinned_release(control_plane: ControlPlane) -> None:
    status, body = control_plane.request("GET", "/version")
    assert status == 200
    assert body["gitVersion"] == K8S_VERSION


def test_server_side_apply_records_apply_operation(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    manifest: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cm", "namespace": namespace},
        "data": {"k": "v"},
    }
    applied = core.patch_namespaced_config_map(
        "cm", namespace, manifest, field_manager="test", force=True, _content_type=APPLY
    )
    assert applied.data == {"k": "v"}
    entries = applied.metadata.managed_fields
    assert [(e.manager, e.operation) for e in entries] == [("test", "Apply")]

    # Re-applying identical content is a no-op: the object is not written.
    again = core.patch_namespaced_config_map(
        "cm", namespace, manifest, field_manager="test", force=True, _content_type=APPLY
    )
    assert again.metadata.resource_version == applied.metadata.resource_version
    assert again.metadata.managed_fields[0].time == entries[0].time


def test_crd_becomes_established_and_serves_custom_resources(api: client.ApiClient, namespace: str) -> None:
    group = f"{uuid.uuid4().hex[:8]}.gitops-cron.example"
    plural = "widgets"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer"}}}},
                        }
                    },
                }
            ],
        },
    }
    ext = client.ApiextensionsV1Api(api)
    ext.create_custom_resource_definition(crd)
    deadline = time.monotonic() + 30
    while True:
        got = ext.read_custom_resource_definition(f"{plural}.{group}")
        conditions = {c.type: c.status for c in (got.status.conditions or [])}
        if conditions.get("Established") == "True":
            break
        assert time.monotonic() < deadline, f"CRD not Established: {conditions}"
        time.sleep(0.1)

    custom = client.CustomObjectsApi(api)
    body = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 3}}
    # Discovery for a fresh group can trail Established by a moment.
    while True:
        try:
            created = custom.create_namespaced_custom_object(group, "v1", namespace, plural, body)
            break
        except ApiException as exc:
            if exc.status != 404 or time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    assert created["spec"] == {"size": 3}
    assert custom.get_namespaced_custom_object(group, "v1", namespace, plural, "w")["spec"]["size"] == 3


def test_service_account_without_rbac_is_forbidden(
    control_plane: ControlPlane,
    namespace: str,
    tmp_path: Path,
) -> None:
    token = control_plane.token_for_service_account(namespace, "nobody")
    kubeconfig = control_plane.kubeconfig_for_token(token, tmp_path / "sa.kubeconfig")
    sa_client = config.new_client_from_config(config_file=str(kubeconfig))
    try:
        with pytest.raises(ApiException) as caught:
            client.CoreV1Api(sa_client).list_namespaced_secret(namespace)
    finally:
        sa_client.close()
    assert caught.value.status == 403
    assert f"system:serviceaccount:{namespace}:nobody" in caught.value.body
