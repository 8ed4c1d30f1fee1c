"""Wire-level tests of the fake API server, driven by the real `kubernetes` client and plain urllib."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import pytest
import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tests.fakekube import FakeKube, Fault
from tests.fakekube.selectors import parse_label_selector

pytestmark = pytest.mark.wire

APPLY = "application/apply-patch+yaml"
AGG = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


@pytest.fixture
def kube():
    with FakeKube(latency=0.0) as k:
        yield k


@pytest.fixture
def api(kube, tmp_path):
    path = kube.write_kubeconfig(tmp_path / "kubeconfig")
    cfg = client.Configuration()
    config.load_kube_config(config_file=path, context="fake", client_configuration=cfg)
    cfg.retries = 0  # let faults surface instead of urllib3 retrying them (it honours Retry-After)
    c = client.ApiClient(cfg)
    yield c
    c.close()


def call(api, method, path, body=None, query=None, content_type=None, accept="application/json"):
    """A raw request through the client's transport: returns (status, decoded body, headers)."""
    headers = {"Accept": accept}
    if content_type:
        headers["Content-Type"] = content_type
    req = api.param_serialize(method, path, query_params=list((query or {}).items()), header_params=headers,
                              body=body, auth_settings=["BearerToken"])
    resp = api.call_api(*req)
    data = resp.read()
    return resp.status, (json.loads(data) if data else None), resp.headers


def cm(name, ns="default", data=None, labels=None):
    meta = {"name": name, "namespace": ns}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data or {}}


def deployment(name="web", ns="default", replicas=2, app="web"):
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": app}},
                     "template": {"metadata": {"labels": {"app": app}},
                                  "spec": {"containers": [{"name": "app", "image": "nginx:1"}]}}}}


def apply_cm(api, body, manager="gitops-cron", force=None, dry_run=None):
    q = {"fieldManager": manager}
    if force is not None:
        q["force"] = "true" if force else "false"
    if dry_run:
        q["dryRun"] = "All"
    return call(api, "PATCH", f"/api/v1/namespaces/{body['metadata']['namespace']}/configmaps/"
                              f"{body['metadata']['name']}", body, q, APPLY)


# ------------------------------------------------------------------------------------------- discovery

def test_discovery_plain(api, kube):
    kube.aggregated_discovery = False
    st, doc, hdrs = call(api, "GET", "/api", accept=AGG)
    assert st == 200 and doc["kind"] == "APIVersions" and doc["versions"] == ["v1"]
    assert hdrs["content-type"] == "application/json"
    st, doc, _ = call(api, "GET", "/apis")
    groups = {g["name"]: g for g in doc["groups"]}
    assert doc["kind"] == "APIGroupList"
    assert groups["apps"]["preferredVersion"] == {"groupVersion": "apps/v1", "version": "v1"}
    assert "autoscaling" in groups and "coordination.k8s.io" in groups
    st, doc, _ = call(api, "GET", "/api/v1")
    res = {r["name"]: r for r in doc["resources"]}
    assert res["namespaces"]["namespaced"] is False and res["configmaps"]["kind"] == "ConfigMap"
    assert res["configmaps"]["singularName"] == "configmap" and "patch" in res["configmaps"]["verbs"]
    st, doc, _ = call(api, "GET", "/apis/rbac.authorization.k8s.io/v1")
    res = {r["name"]: r for r in doc["resources"]}
    assert res["clusterroles"]["namespaced"] is False and res["roles"]["namespaced"] is True
    assert client.VersionApi(api).get_code().git_version == "v1.37.2-fake"


def test_discovery_aggregated(api, kube):
    st, doc, hdrs = call(api, "GET", "/apis", accept=AGG + ",application/json")
    assert st == 200 and hdrs["content-type"] == AGG
    assert doc["kind"] == "APIGroupDiscoveryList" and doc["apiVersion"] == "apidiscovery.k8s.io/v2"
    apps = next(i for i in doc["items"] if i["metadata"].get("name") == "apps")
    deploy = next(r for r in apps["versions"][0]["resources"] if r["resource"] == "deployments")
    assert deploy["scope"] == "Namespaced" and deploy["responseKind"]["kind"] == "Deployment"
    st, doc, hdrs = call(api, "GET", "/api", accept=AGG)
    assert hdrs["content-type"] == AGG and len(doc["items"]) == 1
    core = {r["resource"]: r for r in doc["items"][0]["versions"][0]["resources"]}
    assert core["persistentvolumes"]["scope"] == "Cluster"
    # a plain Accept still gets the legacy document
    st, doc, hdrs = call(api, "GET", "/apis")
    assert doc["kind"] == "APIGroupList" and hdrs["content-type"] == "application/json"


# ------------------------------------------------------------------------------------------- apply

def test_apply_create_configure_noop(api, kube):
    v1 = client.CoreV1Api(api)
    body = cm("app", data={"a": "1"})
    created = v1.patch_namespaced_config_map("app", "default", body, field_manager="gitops-cron",
                                             _content_type=APPLY)
    assert created.metadata.uid and created.metadata.generation == 1
    st, obj, _ = apply_cm(api, body)
    assert st == 200 and obj["metadata"]["resourceVersion"] == created.metadata.resource_version  # no-op
    mf = obj["metadata"]["managedFields"]
    assert mf[0]["manager"] == "gitops-cron" and mf[0]["operation"] == "Apply"
    assert mf[0]["fieldsType"] == "FieldsV1" and mf[0]["fieldsV1"] == {"f:data": {"f:a": {}}}
    st, obj, _ = apply_cm(api, cm("app", data={"a": "2"}))
    assert st == 200 and int(obj["metadata"]["resourceVersion"]) > int(created.metadata.resource_version)
    assert kube.get("v1", "ConfigMap", "app", "default")["data"] == {"a": "2"}

    # first request of a fresh object answers 201
    st, _, _ = apply_cm(api, cm("other"))
    assert st == 201
    # dryRun=All answers the result and stores nothing
    st, obj, _ = apply_cm(api, cm("ghost", data={"x": "y"}), dry_run=True)
    assert st == 201 and obj["data"] == {"x": "y"} and kube.get("v1", "ConfigMap", "ghost", "default") is None


def test_apply_generation_and_yaml_body(api, kube):
    apps = client.AppsV1Api(api)
    d = apps.patch_namespaced_deployment("web", "default", deployment(), field_manager="gitops-cron",
                                         _content_type=APPLY)
    assert d.metadata.generation == 1
    yaml_body = ("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels: {team: a}\n"
                 "spec:\n  replicas: 2\n  selector: {matchLabels: {app: web}}\n  template:\n"
                 "    metadata: {labels: {app: web}}\n    spec: {containers: [{name: app, image: 'nginx:1'}]}\n")
    st, obj, _ = call(api, "PATCH", "/apis/apps/v1/namespaces/default/deployments/web", yaml_body,
                      {"fieldManager": "gitops-cron"}, APPLY)
    assert st == 200 and obj["metadata"]["labels"] == {"team": "a"}
    assert obj["metadata"]["generation"] == 1  # metadata-only change
    st, obj, _ = call(api, "PATCH", "/apis/apps/v1/namespaces/default/deployments/web", deployment(replicas=3),
                      {"fieldManager": "gitops-cron"}, APPLY)
    assert obj["metadata"]["generation"] == 2 and "labels" not in obj["metadata"]


def test_apply_removes_fields_dropped_from_config(api, kube):
    apply_cm(api, cm("app", data={"a": "1", "b": "2"}, labels={"x": "1"}))
    kube.put({**cm("app", data={"a": "1", "b": "2", "c": "kept"}, labels={"x": "1"})}, manager="kubectl")
    st, obj, _ = apply_cm(api, cm("app", data={"a": "1"}))
    assert st == 200
    assert obj["data"] == {"a": "1", "c": "kept"}  # b removed, c owned by kubectl stays
    assert "labels" not in obj["metadata"]
    managers = {e["manager"]: e for e in obj["metadata"]["managedFields"]}
    assert managers["kubectl"]["fieldsV1"] == {"f:data": {"f:c": {}}}


def test_apply_conflict_then_force(api, kube):
    kube.put(deployment(replicas=5), manager="kubectl")
    body = deployment(replicas=2)
    with pytest.raises(ApiException) as exc:
        client.AppsV1Api(api).patch_namespaced_deployment("web", "default", body, field_manager="gitops-cron",
                                                          _content_type=APPLY)
    assert exc.value.status == 409
    status = json.loads(exc.value.body)
    assert status["reason"] == "Conflict" and status["kind"] == "Status"
    causes = status["details"]["causes"]
    assert causes == [{"reason": "FieldManagerConflict", "message": 'conflict with "kubectl" using apps/v1',
                       "field": ".spec.replicas"}]
    # same values elsewhere (selector, template) are shared, not conflicts; force takes replicas over
    st, obj, _ = call(api, "PATCH", "/apis/apps/v1/namespaces/default/deployments/web", body,
                      {"fieldManager": "gitops-cron", "force": "true"}, APPLY)
    assert st == 200 and obj["spec"]["replicas"] == 2
    kubectl = next(e for e in obj["metadata"]["managedFields"] if e["manager"] == "kubectl")
    assert "f:replicas" not in kubectl["fieldsV1"]["f:spec"]
    # now gitops-cron owns replicas: re-apply without force is fine
    st, _, _ = call(api, "PATCH", "/apis/apps/v1/namespaces/default/deployments/web", deployment(replicas=4),
                    {"fieldManager": "gitops-cron"}, APPLY)
    assert st == 200


def test_apply_immutable_selector_422(api, kube):
    call(api, "PATCH", "/apis/apps/v1/namespaces/default/deployments/web", deployment(app="web"),
         {"fieldManager": "gitops-cron"}, APPLY)
    st, status, _ = call(api, "PATCH", "/apis/apps/v1/namespaces/default/deployments/web", deployment(app="new"),
                         {"fieldManager": "gitops-cron"}, APPLY)
    assert st == 422 and status["reason"] == "Invalid"
    assert status["message"].startswith('Deployment.apps "web" is invalid: spec.selector: Invalid value: ')
    assert status["message"].endswith("field is immutable")
    d = status["details"]
    assert (d["name"], d["group"], d["kind"]) == ("web", "apps", "Deployment")
    assert d["causes"][0]["reason"] == "FieldValueInvalid" and d["causes"][0]["field"] == "spec.selector"
    # immutable ConfigMap
    apply_cm(api, {**cm("frozen", data={"a": "1"}), "immutable": True})
    st, status, _ = apply_cm(api, {**cm("frozen", data={"a": "2"}), "immutable": True})
    assert st == 422 and status["details"]["causes"][0]["field"] == "data"


def test_apply_validation_errors(api, kube):
    st, status, _ = call(api, "PATCH", "/api/v1/namespaces/nope/configmaps/x", cm("x", ns="nope"),
                         {"fieldManager": "m"}, APPLY)
    assert st == 404 and status["message"] == 'namespaces "nope" not found' and status["reason"] == "NotFound"
    st, status, _ = call(api, "PATCH", "/api/v1/namespaces/default/configmaps/x", cm("x"), {}, APPLY)
    assert st == 400 and status["reason"] == "BadRequest"  # fieldManager required
    st, _, _ = call(api, "PATCH", "/api/v1/namespaces/default/configmaps/x", cm("y"), {"fieldManager": "m"}, APPLY)
    assert st == 400  # name mismatch
    st, _, _ = call(api, "PATCH", "/api/v1/namespaces/default/configmaps/x", cm("x", ns="kube-system"),
                    {"fieldManager": "m"}, APPLY)
    assert st == 400  # namespace mismatch
    st, _, _ = call(api, "PATCH", "/api/v1/namespaces/default/configmaps/x", deployment("x"),
                    {"fieldManager": "m"}, APPLY)
    assert st == 400  # kind mismatch


def test_secret_string_data(api, kube):
    body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "default"},
            "stringData": {"password": "hunter2"}}
    st, obj, _ = call(api, "PATCH", "/api/v1/namespaces/default/secrets/s", body, {"fieldManager": "m"}, APPLY)
    assert st == 201 and obj["data"] == {"password": "aHVudGVyMg=="} and "stringData" not in obj
    assert obj["type"] == "Opaque"
    st, obj2, _ = call(api, "PATCH", "/api/v1/namespaces/default/secrets/s", body, {"fieldManager": "m"}, APPLY)
    assert obj2["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]


# ------------------------------------------------------------------------------------------- read / list

def test_get_not_found_status(api, kube):
    st, status, _ = call(api, "GET", "/api/v1/namespaces/default/configmaps/x")
    assert st == 404 and status["message"] == 'configmaps "x" not found'
    assert status["details"] == {"name": "x", "group": "", "kind": "configmaps"}
    st, status, _ = call(api, "GET", "/apis/apps/v1/namespaces/default/deployments/x")
    assert status["message"] == 'deployments.apps "x" not found' and status["details"]["group"] == "apps"
    st, status, _ = call(api, "GET", "/apis/example.com/v1/widgets")
    assert st == 404 and status["message"] == "the server could not find the requested resource"


def test_label_selector_list(api, kube):
    for name, labels in [("a", {"app": "x", "tier": "web"}), ("b", {"app": "y"}), ("c", {"app": "x"})]:
        kube.put(cm(name, labels=labels))
    kube.put(cm("d", ns="kube-system", labels={"app": "x"}))
    v1 = client.CoreV1Api(api)
    names = lambda lst: [i.metadata.name for i in lst.items]  # noqa: E731
    assert names(v1.list_namespaced_config_map("default", label_selector="app=x")) == ["a", "c"]
    assert names(v1.list_namespaced_config_map("default", label_selector="app==x,tier")) == ["a"]
    assert names(v1.list_namespaced_config_map("default", label_selector="app!=x")) == ["b"]
    assert names(v1.list_namespaced_config_map("default", label_selector="!tier")) == ["b", "c"]
    assert names(v1.list_namespaced_config_map("default", label_selector="app in (y, z)")) == ["b"]
    assert names(v1.list_namespaced_config_map("default", label_selector="app notin (y),tier")) == ["a"]
    lst = v1.list_config_map_for_all_namespaces(label_selector="app=x")
    assert [(i.metadata.namespace, i.metadata.name) for i in lst.items] == [
        ("default", "a"), ("default", "c"), ("kube-system", "d")]
    st, doc, _ = call(api, "GET", "/api/v1/namespaces/default/configmaps")
    assert doc["kind"] == "ConfigMapList" and doc["metadata"]["resourceVersion"]
    assert all(i["apiVersion"] == "v1" and i["kind"] == "ConfigMap" for i in doc["items"])
    st, _, _ = call(api, "GET", "/api/v1/configmaps", query={"labelSelector": "app in (x"})
    assert st == 400


def test_label_selector_parser():
    sel = parse_label_selector("env in (prod, stage), !legacy, tier, team!=ops, k=")
    assert sel({"env": "prod", "tier": "1", "k": ""})
    assert not sel({"env": "prod", "tier": "1", "k": "", "legacy": "y"})
    assert not sel({"env": "dev", "tier": "1", "k": ""})
    assert not sel({"env": "prod", "tier": "1", "k": "", "team": "ops"})
    assert parse_label_selector("") is None


def test_list_paging(api, kube):
    for i in range(7):
        kube.put(cm(f"cm-{i}"))
    seen, token, pages = [], None, 0
    while True:
        q = {"limit": "3"}
        if token:
            q["continue"] = token
        st, doc, _ = call(api, "GET", "/api/v1/namespaces/default/configmaps", query=q)
        pages += 1
        seen += [i["metadata"]["name"] for i in doc["items"]]
        token = doc["metadata"].get("continue")
        if not token:
            break
    assert pages == 3 and seen == [f"cm-{i}" for i in range(7)]


def test_metadata_only_list(api, kube):
    kube.put(cm("a", data={"big": "x" * 100}))
    st, doc, hdrs = call(api, "GET", "/api/v1/namespaces/default/configmaps",
                         accept="application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json")
    assert doc["kind"] == "PartialObjectMetadataList" and "data" not in doc["items"][0]
    assert doc["items"][0]["metadata"]["name"] == "a"


# ------------------------------------------------------------------------------------------- write verbs

def test_post_put_and_lease_conflict(api, kube):
    coord = client.CoordinationV1Api(api)
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "lock"},
             "spec": {"holderIdentity": "a", "leaseDurationSeconds": 60}}
    created = coord.create_namespaced_lease("default", lease)
    with pytest.raises(ApiException) as exc:
        coord.create_namespaced_lease("default", lease)
    assert exc.value.status == 409 and json.loads(exc.value.body)["reason"] == "AlreadyExists"
    rv = created.metadata.resource_version
    upd = {**lease, "metadata": {"name": "lock", "resourceVersion": rv}, "spec": {"holderIdentity": "b"}}
    new = coord.replace_namespaced_lease("lock", "default", upd)
    assert new.spec.holder_identity == "b" and new.metadata.resource_version != rv
    with pytest.raises(ApiException) as exc:  # stale resourceVersion
        coord.replace_namespaced_lease("lock", "default", {**upd, "spec": {"holderIdentity": "c"}})
    status = json.loads(exc.value.body)
    assert exc.value.status == 409 and status["reason"] == "Conflict"
    assert status["message"] == ('Operation cannot be fulfilled on leases.coordination.k8s.io "lock": the object '
                                 'has been modified; please apply your changes to the latest version and try again')
    # generateName
    st, obj, _ = call(api, "POST", "/api/v1/namespaces/default/configmaps",
                      {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "gen-"}})
    assert st == 201 and obj["metadata"]["name"].startswith("gen-") and len(obj["metadata"]["name"]) == 9
    # events are stored
    client.CoreV1Api(api).create_namespaced_event("default", {
        "metadata": {"name": "ev1"}, "involvedObject": {"kind": "ConfigMap", "name": "x"}, "reason": "Synced"})
    assert [e["metadata"]["name"] for e in kube.list("v1", "Event", "default")] == ["ev1"]


def test_merge_and_json_patch(api, kube):
    kube.put(cm("p", data={"a": "1", "b": "2"}))
    st, obj, _ = call(api, "PATCH", "/api/v1/namespaces/default/configmaps/p", {"data": {"b": None, "c": "3"}},
                      content_type="application/merge-patch+json")
    assert st == 200 and obj["data"] == {"a": "1", "c": "3"}
    st, obj, _ = call(api, "PATCH", "/api/v1/namespaces/default/configmaps/p",
                      [{"op": "replace", "path": "/data/a", "value": "9"}],
                      content_type="application/json-patch+json")
    assert st == 200 and obj["data"] == {"a": "9", "c": "3"}


def test_delete_propagation_recorded(api, kube):
    kube.put(deployment())
    kube.clear_requests()
    client.AppsV1Api(api).delete_namespaced_deployment(
        "web", "default", body=client.V1DeleteOptions(propagation_policy="Foreground"))
    dels = [r for r in kube.requests if r.method == "DELETE"]
    assert len(dels) == 1 and dels[0].propagation_policy == "Foreground" and dels[0].status == 200
    assert kube.get("apps/v1", "Deployment", "web", "default") is None
    # preconditions
    obj = kube.put(cm("c"))
    st, status, _ = call(api, "DELETE", "/api/v1/namespaces/default/configmaps/c",
                         {"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": "nope"}})
    assert st == 409 and status["reason"] == "Conflict"
    st, doc, _ = call(api, "DELETE", "/api/v1/namespaces/default/configmaps/c", query={"dryRun": "All"})
    assert st == 200 and kube.get("v1", "ConfigMap", "c", "default") is not None
    st, doc, _ = call(api, "DELETE", "/api/v1/namespaces/default/configmaps/c",
                      {"preconditions": {"uid": obj["metadata"]["uid"]}, "propagationPolicy": "Background"})
    assert st == 200 and doc["status"] == "Success" and kube.get("v1", "ConfigMap", "c", "default") is None


def test_finalizers_and_namespace_deletion(api, kube):
    kube.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
    kube.put({**cm("held", ns="team"), "metadata": {"name": "held", "namespace": "team", "finalizers": ["x/y"]}})
    st, obj, _ = call(api, "DELETE", "/api/v1/namespaces/team/configmaps/held")
    assert st == 200 and obj["metadata"]["deletionTimestamp"]
    assert kube.get("v1", "ConfigMap", "held", "team")["metadata"]["deletionTimestamp"]
    # removing the last finalizer completes the deletion
    st, _, _ = call(api, "PATCH", "/api/v1/namespaces/team/configmaps/held", {"metadata": {"finalizers": None}},
                    content_type="application/merge-patch+json")
    assert st == 200 and kube.get("v1", "ConfigMap", "held", "team") is None

    kube.put(cm("x", ns="team"))
    kube.namespace_finalization = "terminating"
    st, obj, _ = call(api, "DELETE", "/api/v1/namespaces/team")
    assert obj["status"]["phase"] == "Terminating" and kube.get("v1", "ConfigMap", "x", "team") is not None
    st, status, _ = apply_cm(api, cm("y", ns="team"))
    assert st == 403 and "being terminated" in status["message"]
    kube.namespace_finalization = "immediate"
    kube.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gone"}})
    kube.put(cm("x", ns="gone"))
    client.CoreV1Api(api).delete_namespace("gone")
    assert kube.get("v1", "Namespace", "gone") is None and kube.list("v1", "ConfigMap", "gone") == []


# ------------------------------------------------------------------------------------------- CRDs

def crd(group="example.com", kind="Widget", plural="widgets", scope="Namespaced"):
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}"},
            "spec": {"group": group, "scope": scope,
                     "names": {"plural": plural, "singular": kind.lower(), "kind": kind, "listKind": f"{kind}List"},
                     "versions": [{"name": "v1", "served": True, "storage": True,
                                   "schema": {"openAPIV3Schema": {"type": "object",
                                                                  "x-kubernetes-preserve-unknown-fields": True}}}]}}


def test_crd_established_after_delay(api, kube):
    kube.crd_established_delay = 0.3
    st, obj, _ = call(api, "PATCH", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com",
                      crd(), {"fieldManager": "gitops-cron"}, APPLY)
    assert st == 201 and not obj["status"]["conditions"]
    w = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1", "namespace": "default"},
         "spec": {"size": 1}}
    path = "/apis/example.com/v1/namespaces/default/widgets/w1"
    st, _, _ = call(api, "PATCH", path, w, {"fieldManager": "gitops-cron"}, APPLY)
    assert st == 404
    st, doc, _ = call(api, "GET", "/apis")
    assert "example.com" not in [g["name"] for g in doc["groups"]]
    time.sleep(0.35)
    st, doc, _ = call(api, "GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com")
    conds = {c["type"]: c["status"] for c in doc["status"]["conditions"]}
    assert conds == {"NamesAccepted": "True", "Established": "True"}
    st, doc, _ = call(api, "GET", "/apis/example.com/v1")
    assert doc["resources"][0]["name"] == "widgets" and doc["resources"][0]["kind"] == "Widget"
    st, obj, _ = call(api, "PATCH", path, w, {"fieldManager": "gitops-cron"}, APPLY)
    assert st == 201 and obj["spec"] == {"size": 1}
    assert client.CustomObjectsApi(api).list_namespaced_custom_object(
        "example.com", "v1", "default", "widgets")["items"][0]["metadata"]["name"] == "w1"
    # deleting the CRD deletes its objects and unserves the endpoint
    call(api, "DELETE", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com")
    st, _, _ = call(api, "GET", path)
    assert st == 404 and kube.list("example.com/v1", "Widget") == []


# ------------------------------------------------------------------------------------------- faults & auth

def test_fault_times_then_success(api, kube):
    fault = kube.faults.add(Fault(method="PATCH", path=r"/configmaps/app$", status=503, times=2))
    for _ in range(2):
        st, status, _ = apply_cm(api, cm("app"))
        assert st == 503 and status["reason"] == "ServiceUnavailable"
    st, _, _ = apply_cm(api, cm("app"))
    assert st == 201 and fault.hits == 2
    assert [r.status for r in kube.requests if r.method == "PATCH"] == [503, 503, 201]


def test_fault_retry_after_and_body(api, kube):
    kube.faults.add(Fault(method="GET", path="/namespaces$", status=429, retry_after=1, times=1))
    st, status, hdrs = call(api, "GET", "/api/v1/namespaces")
    assert st == 429 and hdrs["retry-after"] == "1" and status["reason"] == "TooManyRequests"
    kube.faults.add(Fault(path="/version", status=500, body="boom", times=None))
    req = urllib.request.Request(kube.url + "/version", headers={"Authorization": f"Bearer {kube.token}"})
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req)
    assert exc.value.code == 500 and exc.value.read() == b"boom"
    kube.faults.clear()
    assert json.loads(urllib.request.urlopen(req).read())["gitVersion"] == "v1.37.2-fake"


def test_fault_drop_raises_connection_error(api, kube):
    kube.faults.add(Fault(method="PATCH", path="/configmaps/", drop=True, times=1))
    with pytest.raises((urllib3.exceptions.HTTPError, ConnectionError)):
        client.CoreV1Api(api).patch_namespaced_config_map("app", "default", cm("app"), field_manager="m",
                                                          _content_type=APPLY)
    assert kube.requests[-1].status == 0
    st, _, _ = apply_cm(api, cm("app"))  # the pool recovers with a fresh connection
    assert st == 201


def test_unauthorized_without_token(kube):
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(kube.url + "/api/v1/namespaces")
    assert exc.value.code == 401
    assert json.loads(exc.value.read())["reason"] == "Unauthorized"
    req = urllib.request.Request(kube.url + "/api", headers={"Authorization": "Bearer wrong"})
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req)
    assert exc.value.code == 401


def test_forbidden(api, kube):
    kube.forbid("list", "configmaps", namespace="x")
    st, status, _ = call(api, "GET", "/api/v1/namespaces/x/configmaps")
    assert st == 403 and status["reason"] == "Forbidden"
    assert status["message"] == ('configmaps is forbidden: User "system:serviceaccount:gitops:gitops-cron" cannot '
                                 'list resource "configmaps" in API group "" in the namespace "x"')
    assert call(api, "GET", "/api/v1/namespaces/default/configmaps")[0] == 200
    kube.forbid("delete", "clusterroles")
    kube.put({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "r"}})
    with pytest.raises(ApiException) as exc:
        client.RbacAuthorizationV1Api(api).delete_cluster_role("r")
    assert exc.value.status == 403 and json.loads(exc.value.body)["message"].endswith(
        'cannot delete resource "clusterroles" in API group "rbac.authorization.k8s.io" at the cluster scope')


def test_latency_is_concurrent(api, kube):
    kube.latency = 0.2
    results = []

    def one():
        results.append(call(api, "GET", "/api/v1/namespaces/default")[0])

    threads = [threading.Thread(target=one) for _ in range(8)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 8 and time.monotonic() - t0 < 1.0


def test_main_process(tmp_path):
    import subprocess
    import sys
    kc = tmp_path / "kc"
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakekube", "--port", "0", "--latency-ms", "1",
                             "--kubeconfig", str(kc)], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:")
        c = config.new_client_from_config(config_file=str(kc))
        assert client.CoreV1Api(c).read_namespace("default").metadata.name == "default"
        c.close()
    finally:
        proc.terminate()
        assert proc.wait(timeout=5) == 0


def test_dynamic_client_discovers_crd(api, kube, tmp_path):
    from kubernetes import dynamic
    dc = dynamic.DynamicClient(api, cache_file=str(tmp_path / "discovery.json"))
    crds = dc.resources.get(api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition")
    crds.server_side_apply(body=crd(kind="Gadget", plural="gadgets", scope="Cluster"), field_manager="gitops-cron")
    gadgets = dc.resources.get(api_version="example.com/v1", kind="Gadget")  # cache miss -> rediscovery
    assert gadgets.namespaced is False
    obj = gadgets.server_side_apply(body={"apiVersion": "example.com/v1", "kind": "Gadget",
                                          "metadata": {"name": "g"}, "spec": {"a": 1}},
                                    field_manager="gitops-cron", force_conflicts=True)
    assert obj.metadata.name == "g" and kube.get("example.com/v1", "Gadget", "g")["spec"] == {"a": 1}


def test_service_status_and_seeding(api, kube):
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
           "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}
    st, obj, _ = call(api, "PATCH", "/api/v1/namespaces/default/services/web", svc, {"fieldManager": "m"}, APPLY)
    ip = obj["spec"]["clusterIP"]
    assert st == 201 and ip and obj["spec"]["clusterIPs"] == [ip]
    st, again, _ = call(api, "PATCH", "/api/v1/namespaces/default/services/web", svc, {"fieldManager": "m"}, APPLY)
    assert again["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]  # allocated IP kept, no-op
    bad = {**svc, "spec": {**svc["spec"], "clusterIP": "10.0.0.1"}}
    st, status, _ = call(api, "PATCH", "/api/v1/namespaces/default/services/web", bad,
                         {"fieldManager": "m", "force": "true"}, APPLY)
    assert st == 422 and status["details"]["causes"][0]["field"] == "spec.clusterIP"

    # status is ignored on the main resource, written through /status
    seeded = kube.put({**deployment(), "status": {"readyReplicas": 2}}, manager="kube-controller-manager")
    assert seeded["status"] == {"readyReplicas": 2}
    st, obj, _ = call(api, "PATCH", "/apis/apps/v1/namespaces/default/deployments/web",
                      {**deployment(), "status": {"readyReplicas": 0}}, {"fieldManager": "m"}, APPLY)
    assert obj["status"] == {"readyReplicas": 2}
    st, obj, _ = call(api, "PATCH", "/apis/apps/v1/namespaces/default/deployments/web/status",
                      {"status": {"readyReplicas": 1}}, content_type="application/merge-patch+json")
    assert st == 200 and obj["status"] == {"readyReplicas": 1} and obj["metadata"]["generation"] == 1
    # put(operation="Apply") force-applies as that manager
    kube.put(cm("ap", data={"a": "1"}), manager="helm", operation="Apply")
    mf = kube.get("v1", "ConfigMap", "ap", "default")["metadata"]["managedFields"]
    assert [(e["manager"], e["operation"]) for e in mf] == [("helm", "Apply")]
