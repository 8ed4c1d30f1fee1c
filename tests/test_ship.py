"""What ships: the image recipe, the install manifests, the RBAC profiles and
the examples.

Offline and fast. Every YAML document is validated against the Kubernetes 1.37
OpenAPI schemas (strict: unknown fields fail), and the settings that matter for
running safely as a CronJob are asserted one by one.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from gitops_cron.config import SETTINGS_FIELDS

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = ROOT / "manifests"
RBAC = ROOT / "rbac"
EXAMPLES = ROOT / "examples"
K8S_VERSION = "1.37"

NAMESPACE = "gitops"
SERVICE_ACCOUNT = "gitops-cron"
INVENTORY = "gitops-cron"
SETTINGS_CONFIGMAP = "gitops-cron-settings"
CREDENTIALS_SECRET = "gitops-cron-git"
CREDENTIALS_DIR = "/etc/gitops-cron/git"
IMAGE_REPOSITORY = "ghcr.io/gitops-cron/gitops-cron"

# The product's settings, from their one declaration; a key in the settings ConfigMap
# that is not one of these is a typo the job would silently ignore.
SETTINGS = {f.metadata["env"] for f in SETTINGS_FIELDS if (f.metadata["env"] or "").startswith("GITOPS_")}

# Cluster-scoped resources of the built-in API, by (group, plural).
CLUSTER_SCOPED = {
    ("", "namespaces"), ("", "nodes"), ("", "persistentvolumes"),
    ("", "componentstatuses"),
    ("apiextensions.k8s.io", "customresourcedefinitions"),
    ("apiregistration.k8s.io", "apiservices"),
    ("rbac.authorization.k8s.io", "clusterroles"),
    ("rbac.authorization.k8s.io", "clusterrolebindings"),
    ("storage.k8s.io", "storageclasses"), ("storage.k8s.io", "csidrivers"),
    ("storage.k8s.io", "csinodes"), ("storage.k8s.io", "volumeattachments"),
    ("scheduling.k8s.io", "priorityclasses"),
    ("node.k8s.io", "runtimeclasses"),
    ("networking.k8s.io", "ingressclasses"),
    ("networking.k8s.io", "ipaddresses"),
    ("networking.k8s.io", "servicecidrs"),
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"),
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations"),
    ("admissionregistration.k8s.io", "validatingadmissionpolicies"),
    ("admissionregistration.k8s.io", "validatingadmissionpolicybindings"),
    ("certificates.k8s.io", "certificatesigningrequests"),
    ("flowcontrol.apiserver.k8s.io", "flowschemas"),
    ("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations"),
    ("resource.k8s.io", "deviceclasses"),
    ("resource.k8s.io", "resourceslices"),
}
CLUSTER_SCOPED_KINDS = {
    "Namespace", "Node", "PersistentVolume", "CustomResourceDefinition",
    "ClusterRole", "ClusterRoleBinding", "StorageClass", "PriorityClass",
    "IngressClass", "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration", "APIService", "RuntimeClass",
}


# --------------------------------------------------------------------------
# helpers


def load_docs(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [doc for doc in yaml.safe_load_all(fh) if doc is not None]


def yaml_files(*dirs: Path) -> list[Path]:
    found: list[Path] = []
    for d in dirs:
        found += sorted(p for p in d.rglob("*") if p.suffix in (".yaml", ".yml"))
    return found


def docs_under(directory: Path) -> list[dict]:
    return [doc for path in yaml_files(directory) for doc in load_docs(path)]


def group_of(api_version: str) -> str:
    return api_version.split("/")[0] if "/" in api_version else ""


def identity(doc: dict) -> tuple:
    meta = doc.get("metadata", {})
    return (group_of(doc["apiVersion"]), doc["kind"], meta.get("namespace"), meta["name"])


def by_identity(docs: list[dict]) -> dict[tuple, dict]:
    out: dict[tuple, dict] = {}
    for doc in docs:
        key = identity(doc)
        assert key not in out, f"{key} defined twice"
        out[key] = doc
    return out


def find(docs: list[dict], kind: str, name: str) -> dict:
    hits = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(hits) == 1, f"expected exactly one {kind} {name}, found {len(hits)}"
    return hits[0]


def custom_resource_schemas() -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) -> openAPIV3Schema for every CRD under examples/."""
    schemas = {}
    for doc in docs_under(EXAMPLES):
        if doc["kind"] != "CustomResourceDefinition":
            continue
        spec = doc["spec"]
        for version in spec["versions"]:
            api_version = f"{spec['group']}/{version['name']}"
            schemas[(api_version, spec["names"]["kind"])] = version["schema"]["openAPIV3Schema"]
    return schemas


def rule_allows(rules: list[dict], group: str, resource: str, verb: str,
                name: str | None = None) -> bool:
    for rule in rules:
        if "nonResourceURLs" in rule:
            continue
        if not ({group, "*"} & set(rule.get("apiGroups", []))):
            continue
        if not ({resource, "*"} & set(rule.get("resources", []))):
            continue
        if not ({verb, "*"} & set(rule.get("verbs", []))):
            continue
        names = rule.get("resourceNames")
        if names and name not in names:
            continue
        return True
    return False


# Pod Security Standards, "restricted" profile (which includes "baseline").
RESTRICTED_VOLUME_TYPES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
    "persistentVolumeClaim", "projected", "secret",
}
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start", "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes",
}
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}


def restricted_violations(pod: dict) -> list[str]:
    """Every way `pod` (a PodSpec) breaks Pod Security "restricted"."""
    bad: list[str] = []
    psc = pod.get("securityContext") or {}
    containers = (pod.get("containers") or []) + (pod.get("initContainers") or []) \
        + (pod.get("ephemeralContainers") or [])
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(field):
            bad.append(f"{field} is set")
    for vol in pod.get("volumes") or []:
        kinds = set(vol) - {"name"}
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            bad.append(f"volume {vol['name']} has type {sorted(kinds)}")
    for sysctl in psc.get("sysctls") or []:
        if sysctl["name"] not in SAFE_SYSCTLS:
            bad.append(f"unsafe sysctl {sysctl['name']}")

    def check_common(ctx: dict, where: str) -> None:
        if ctx.get("runAsUser") == 0:
            bad.append(f"{where}: runAsUser 0")
        if ctx.get("runAsNonRoot") is False:
            bad.append(f"{where}: runAsNonRoot false")
        se = ctx.get("seLinuxOptions") or {}
        if se.get("type", "") not in SELINUX_TYPES or se.get("user") or se.get("role"):
            bad.append(f"{where}: seLinuxOptions {se}")
        seccomp = (ctx.get("seccompProfile") or {}).get("type")
        if seccomp is not None and seccomp not in ("RuntimeDefault", "Localhost"):
            bad.append(f"{where}: seccompProfile {seccomp}")
        apparmor = (ctx.get("appArmorProfile") or {}).get("type")
        if apparmor is not None and apparmor not in ("RuntimeDefault", "Localhost"):
            bad.append(f"{where}: appArmorProfile {apparmor}")

    check_common(psc, "pod")
    for c in containers:
        where = f"container {c['name']}"
        csc = c.get("securityContext") or {}
        check_common(csc, where)
        if csc.get("privileged"):
            bad.append(f"{where}: privileged")
        if csc.get("allowPrivilegeEscalation") is not False:
            bad.append(f"{where}: allowPrivilegeEscalation is not false")
        if csc.get("procMount", "Default") != "Default":
            bad.append(f"{where}: procMount {csc['procMount']}")
        caps = csc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            bad.append(f"{where}: capabilities do not drop ALL")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            bad.append(f"{where}: adds capabilities {caps['add']}")
        if csc.get("runAsNonRoot") is not True and psc.get("runAsNonRoot") is not True:
            bad.append(f"{where}: runAsNonRoot not true (pod or container)")
        seccomp = (csc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            bad.append(f"{where}: no RuntimeDefault/Localhost seccompProfile")
        for port in c.get("ports") or []:
            if port.get("hostPort"):
                bad.append(f"{where}: hostPort {port['hostPort']}")
    return bad


def image_tag(image: str) -> str | None:
    """The tag of an image reference, or None (digest-only or untagged)."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


# --------------------------------------------------------------------------
# every YAML validates


ALL_YAML = yaml_files(MANIFESTS, RBAC, EXAMPLES)


def test_the_expected_files_are_there():
    expected = [
        "manifests/00-namespace.yaml", "manifests/10-serviceaccount.yaml",
        "manifests/20-rbac.yaml", "manifests/30-settings.yaml",
        "manifests/40-cronjob.yaml", "rbac/README.md",
        "rbac/cluster-admin/rbac.yaml", "examples/demo/README.md",
        "examples/demo/namespace.yaml", "examples/demo/configmap.yaml",
        "examples/demo/deployment.yaml", "examples/demo/service.yaml",
        "examples/demo/crd.yaml", "examples/demo/widget.yaml",
        "examples/credentials/https-token.yaml", "examples/credentials/ssh.yaml",
        "Dockerfile", ".dockerignore",
    ]
    missing = [p for p in expected if not (ROOT / p).is_file()]
    assert not missing, missing
    assert yaml_files(RBAC / "namespaced"), "rbac/namespaced/ holds no YAML"


@pytest.mark.parametrize("path", ALL_YAML, ids=[str(p.relative_to(ROOT)) for p in ALL_YAML])
def test_yaml_validates_against_kubernetes_schemas(path: Path):
    docs = load_docs(path)
    assert docs, f"{path} holds no object"
    custom = custom_resource_schemas()
    for doc in docs:
        assert {"apiVersion", "kind", "metadata"} <= set(doc), doc
        key = (doc["apiVersion"], doc["kind"])
        name = f"{doc['kind']}/{doc['metadata'].get('name')}"
        if key in custom:
            # A custom resource: no upstream schema; check it against its own
            # CRD's openAPIV3Schema instead.
            try:
                jsonschema.validate(doc.get("spec", {}), custom[key]["properties"]["spec"])
            except jsonschema.ValidationError as exc:
                pytest.fail(f"{path.name}: {name} does not fit its CRD: {exc.message}")
            continue
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{path.name}: {name} invalid at {where}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            pytest.fail(f"{path.name}: {exc.message}")


def test_strict_validation_does_catch_a_typo():
    """The validation above means something: a misspelt field fails."""
    cronjob = find(load_docs(MANIFESTS / "40-cronjob.yaml"), "CronJob", "gitops-cron")
    broken = copy.deepcopy(cronjob)
    broken["spec"]["concurrencyPolicys"] = "Forbid"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_the_widget_example_fits_its_crd_and_a_bad_one_does_not():
    schema = custom_resource_schemas()[("example.gitops-cron.dev/v1", "Widget")]
    widget = find(load_docs(EXAMPLES / "demo" / "widget.yaml"), "Widget", "blue")
    jsonschema.validate(widget["spec"], schema["properties"]["spec"])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"size": "three"}, schema["properties"]["spec"])


# --------------------------------------------------------------------------
# manifests/


def manifest_docs() -> list[dict]:
    return docs_under(MANIFESTS)


def cronjob() -> dict:
    return find(load_docs(MANIFESTS / "40-cronjob.yaml"), "CronJob", "gitops-cron")


def settings() -> dict[str, str]:
    return find(load_docs(MANIFESTS / "30-settings.yaml"), "ConfigMap", SETTINGS_CONFIGMAP)["data"]


def test_manifests_are_flat_numbered_files():
    entries = sorted(MANIFESTS.iterdir())
    assert not [e for e in entries if e.is_dir()], \
        "kubectl apply -f manifests/ is not recursive: keep no subdirectory there"
    names = [e.name for e in entries]
    for name in names:
        assert re.fullmatch(r"\d\d-[a-z0-9-]+\.yaml", name), name
    assert names[0] == "00-namespace.yaml"


def test_manifests_install_into_the_gitops_namespace():
    docs = manifest_docs()
    ns = find(docs, "Namespace", NAMESPACE)
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for doc in docs:
        if doc["kind"] in CLUSTER_SCOPED_KINDS:
            assert "namespace" not in doc["metadata"], identity(doc)
        else:
            assert doc["metadata"].get("namespace") == NAMESPACE, identity(doc)
    find(docs, "ServiceAccount", SERVICE_ACCOUNT)
    # kubectl apply -f applies files in name order: the Namespace first.
    first = load_docs(sorted(MANIFESTS.glob("*.yaml"))[0])
    assert [d["kind"] for d in first] == ["Namespace"]


def test_manifests_hold_no_secret():
    """Credentials are created by the user, never installed from here."""
    for doc in manifest_docs():
        assert doc["kind"] != "Secret", identity(doc)


def test_settings_are_known_keys_with_string_values():
    data = settings()
    assert set(data) <= SETTINGS, sorted(set(data) - SETTINGS)
    for key, value in data.items():
        assert isinstance(value, str), f"{key} must be a string in a ConfigMap"
    assert data["GITOPS_REPO"], "a placeholder repository is set"
    assert data["GITOPS_LOG_FORMAT"] == "json"
    assert data.get("GITOPS_INVENTORY", INVENTORY) == INVENTORY
    assert data.get("GITOPS_GIT_CREDENTIALS_DIR", CREDENTIALS_DIR) == CREDENTIALS_DIR
    # set from the downward API, never fixed in the ConfigMap
    assert "GITOPS_NAMESPACE" not in data
    for key in ("GITOPS_PRUNE", "GITOPS_DRY_RUN", "GITOPS_ALLOW_EMPTY", "GITOPS_RECREATE",
                "GITOPS_ADOPT", "GITOPS_PRUNE_PROTECTED",
                "GITOPS_SSH_INSECURE_IGNORE_HOST_KEY"):
        if key in data:
            assert data[key] in ("true", "false"), key
    for key in ("GITOPS_CONCURRENCY", "GITOPS_MAX_PRUNE", "GITOPS_TIMEOUT", "GITOPS_CLONE_TIMEOUT"):
        if key in data:
            assert data[key].isdigit() and int(data[key]) > 0, key
    assert data.get("GITOPS_DRY_RUN", "false") == "false"
    assert data.get("GITOPS_SSH_INSECURE_IGNORE_HOST_KEY", "false") == "false"


def test_cronjob_schedule_and_history():
    spec = cronjob()["spec"]
    assert spec["schedule"] == "*/5 * * * *"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["startingDeadlineSeconds"] == 120
    assert spec["successfulJobsHistoryLimit"] == 3
    assert spec["failedJobsHistoryLimit"] == 3
    assert not spec.get("suspend", False)


def test_job_ends_before_the_next_run_is_due():
    job = cronjob()["spec"]["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0
    assert 0 < job["activeDeadlineSeconds"] < 300, "must end before the next five-minute slot"
    assert job["activeDeadlineSeconds"] == 270
    assert job["ttlSecondsAfterFinished"] == 3600
    # the job's own timeout fires before Kubernetes kills the pod
    timeout = int(settings().get("GITOPS_TIMEOUT", "240"))
    assert timeout < job["activeDeadlineSeconds"]
    pod = job["template"]["spec"]
    assert timeout + pod["terminationGracePeriodSeconds"] <= job["activeDeadlineSeconds"]


def test_pod_identity_and_restart_policy():
    pod = cronjob()["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == SERVICE_ACCOUNT
    assert pod["automountServiceAccountToken"] is True
    assert pod["terminationGracePeriodSeconds"] == 30
    assert len(pod["containers"]) == 1


def test_pod_meets_pod_security_restricted():
    pod = cronjob()["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert restricted_violations(pod) == []
    psc = pod["securityContext"]
    assert psc["runAsNonRoot"] is True
    assert psc["runAsUser"] == psc["runAsGroup"] == psc["fsGroup"] == 65532
    assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
    csc = pod["containers"][0]["securityContext"]
    assert csc["allowPrivilegeEscalation"] is False
    assert csc["capabilities"]["drop"] == ["ALL"]
    assert not csc["capabilities"].get("add")
    assert csc["readOnlyRootFilesystem"] is True


@pytest.mark.parametrize("change, expected", [
    (lambda p: p["containers"][0]["securityContext"].update(allowPrivilegeEscalation=True),
     "allowPrivilegeEscalation"),
    (lambda p: p["securityContext"].pop("runAsNonRoot"), "runAsNonRoot"),
    (lambda p: p["securityContext"].pop("seccompProfile"), "seccompProfile"),
    (lambda p: p["containers"][0]["securityContext"]["capabilities"].update(add=["NET_ADMIN"]),
     "adds capabilities"),
    (lambda p: p["volumes"].append({"name": "h", "hostPath": {"path": "/"}}), "hostPath"),
    (lambda p: p.update(hostNetwork=True), "hostNetwork"),
])
def test_the_restricted_checker_catches_violations(change, expected):
    pod = copy.deepcopy(cronjob()["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    change(pod)
    assert any(expected in v for v in restricted_violations(pod))


def test_image_is_pinned_and_matches_the_dockerfile_version():
    container = cronjob()["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    image = container["image"]
    tag = image_tag(image)
    assert tag, f"{image} has no tag"
    assert tag != "latest"
    assert image.split("@")[0].rsplit(":", 1)[0] == IMAGE_REPOSITORY
    assert container.get("imagePullPolicy", "IfNotPresent") != "Always"
    assert tag == dockerfile_arg("VERSION"), "manifests and image version differ"
    assert cronjob()["metadata"]["labels"]["app.kubernetes.io/version"] == tag


def test_environment_comes_from_the_settings_and_the_downward_api():
    container = cronjob()["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert {"configMapRef": {"name": SETTINGS_CONFIGMAP}} in container["envFrom"]
    env = {e["name"]: e for e in container["env"]}
    assert env["GITOPS_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert set(env) <= SETTINGS


def test_volumes_tmp_and_optional_credentials():
    pod = cronjob()["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}

    tmp = volumes[mounts["/tmp"]["name"]]
    assert "emptyDir" in tmp and tmp["emptyDir"].get("sizeLimit"), \
        "read-only root filesystem: /tmp must be a size-limited emptyDir"

    creds_mount = mounts[CREDENTIALS_DIR]
    assert creds_mount["readOnly"] is True
    secret = volumes[creds_mount["name"]]["secret"]
    assert secret["secretName"] == CREDENTIALS_SECRET
    assert secret["optional"] is True, "public repositories need no Secret"
    assert secret["defaultMode"] == 0o400
    assert set(mounts) == {"/tmp", CREDENTIALS_DIR}


def test_resources_requested_and_memory_limited():
    container = cronjob()["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    res = container["resources"]
    assert res["requests"]["cpu"] and res["requests"]["memory"]
    assert res["limits"]["memory"]


def test_pod_user_is_the_image_user():
    pod = cronjob()["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    uid, _, gid = dockerfile_last("USER").partition(":")
    assert pod["securityContext"]["runAsUser"] == int(uid)
    assert pod["securityContext"]["runAsGroup"] == int(gid or uid)


# --------------------------------------------------------------------------
# rbac/


SELF_RULES_NEEDED = [
    ("", "secrets", ["get", "create", "patch", "update"]),
    ("coordination.k8s.io", "leases", ["get", "create", "update"]),
    ("", "events", ["create"]),
]


def profile_docs(name: str) -> list[dict]:
    return docs_under(RBAC / name)


def canonical(docs: list[dict]) -> dict:
    return {identity(d): json.dumps(d, sort_keys=True) for d in docs}


def test_default_rbac_is_the_cluster_admin_profile():
    assert canonical(load_docs(MANIFESTS / "20-rbac.yaml")) == \
        canonical(load_docs(RBAC / "cluster-admin" / "rbac.yaml"))


def test_cluster_admin_profile_grants_everything_to_the_job():
    docs = profile_docs("cluster-admin")
    role = find(docs, "ClusterRole", "gitops-cron-manager")
    for group, resource in [("", "namespaces"), ("apiextensions.k8s.io", "customresourcedefinitions"),
                            ("rbac.authorization.k8s.io", "clusterroles"),
                            ("example.gitops-cron.dev", "widgets"), ("apps", "deployments")]:
        for verb in ("get", "list", "create", "patch", "update", "delete"):
            assert rule_allows(role["rules"], group, resource, verb), (group, resource, verb)
    urls = {u for r in role["rules"] for u in r.get("nonResourceURLs", [])}
    assert {"/api", "/apis"} <= urls
    binding = find(docs, "ClusterRoleBinding", "gitops-cron-manager")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io",
                                  "kind": "ClusterRole", "name": "gitops-cron-manager"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT,
                                    "namespace": NAMESPACE}]


@pytest.mark.parametrize("profile", ["cluster-admin", "namespaced"])
def test_every_profile_grants_the_jobs_own_needs(profile):
    docs = profile_docs(profile)
    roles = {d["metadata"]["name"]: d for d in docs
             if d["kind"] == "Role" and d["metadata"]["namespace"] == NAMESPACE}
    bound = [d["roleRef"]["name"] for d in docs
             if d["kind"] == "RoleBinding" and d["metadata"]["namespace"] == NAMESPACE
             and d["roleRef"]["kind"] == "Role"
             and {"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}
             in d["subjects"]]
    rules = [r for name in bound for r in roles[name]["rules"]]
    for group, resource, verbs in SELF_RULES_NEEDED:
        for verb in verbs:
            assert rule_allows(rules, group, resource, verb, name=INVENTORY), \
                f"{profile}: cannot {verb} {resource}/{INVENTORY} in {NAMESPACE}"


def test_both_profiles_carry_the_same_self_role():
    def own(docs):
        return canonical([d for d in docs if d["kind"] in ("Role", "RoleBinding")
                          and d["metadata"].get("namespace") == NAMESPACE])
    assert own(profile_docs("cluster-admin")) == own(profile_docs("namespaced"))
    assert own(profile_docs("namespaced")), "no Role for the job's own needs"


def test_namespaced_profile_grants_nothing_cluster_scoped():
    docs = profile_docs("namespaced")
    assert {d["kind"] for d in docs} <= {"Role", "RoleBinding", "ClusterRole"}
    cluster_roles = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ClusterRole"}
    for name, role in cluster_roles.items():
        assert "aggregationRule" not in role, name
        for rule in role["rules"]:
            assert "nonResourceURLs" not in rule, name
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], f"{name}: wildcard in {field}"
            assert not {"bind", "escalate", "impersonate"} & set(rule["verbs"]), name
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    assert (group, resource.split("/")[0]) not in CLUSTER_SCOPED, \
                        f"{name} grants cluster-scoped {group}/{resource}"
    # each ClusterRole is bound, and only by namespaced RoleBindings
    for d in docs:
        if d["kind"] == "RoleBinding" and d["roleRef"]["kind"] == "ClusterRole":
            assert d["roleRef"]["name"] in cluster_roles
    bound = {d["roleRef"]["name"] for d in docs if d["kind"] == "RoleBinding"}
    assert set(cluster_roles) <= bound


def test_namespaced_profile_manages_team_a_and_team_b():
    docs = profile_docs("namespaced")
    role = find(docs, "ClusterRole", "gitops-cron-namespaced")
    for group, resource in [("", "configmaps"), ("", "secrets"), ("", "services"),
                            ("", "serviceaccounts"), ("", "persistentvolumeclaims"),
                            ("apps", "deployments"), ("apps", "statefulsets"),
                            ("apps", "daemonsets"), ("batch", "jobs"), ("batch", "cronjobs"),
                            ("networking.k8s.io", "ingresses"),
                            ("networking.k8s.io", "networkpolicies"),
                            ("policy", "poddisruptionbudgets"),
                            ("autoscaling", "horizontalpodautoscalers"),
                            ("rbac.authorization.k8s.io", "roles"),
                            ("rbac.authorization.k8s.io", "rolebindings")]:
        for verb in ("get", "list", "create", "patch", "update", "delete"):
            assert rule_allows(role["rules"], group, resource, verb), (group, resource, verb)
    for ns in ("team-a", "team-b"):
        hits = [d for d in docs if d["kind"] == "RoleBinding"
                and d["metadata"]["namespace"] == ns]
        assert len(hits) == 1, ns
        assert hits[0]["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io",
                                      "kind": "ClusterRole", "name": "gitops-cron-namespaced"}
        assert hits[0]["subjects"] == [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT,
                                        "namespace": NAMESPACE}]
    assert not [d for d in docs if d["kind"] == "Namespace"], "admins create the namespaces"


def test_every_binding_names_only_the_jobs_service_account():
    for doc in docs_under(RBAC) + manifest_docs():
        if doc["kind"] in ("RoleBinding", "ClusterRoleBinding"):
            assert doc["subjects"] == [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT,
                                        "namespace": NAMESPACE}], identity(doc)


def test_nothing_in_manifests_comes_from_the_namespaced_profile():
    namespaced = canonical(profile_docs("namespaced"))
    shared = canonical(profile_docs("cluster-admin"))
    only_namespaced = set(namespaced) - set(shared)
    assert only_namespaced, "the namespaced profile adds nothing of its own?"
    installed = set(canonical(manifest_docs()))
    assert not (only_namespaced & installed), sorted(only_namespaced & installed)
    texts = {p.read_text(encoding="utf-8") for p in yaml_files(RBAC / "namespaced")}
    for path in MANIFESTS.glob("*.yaml"):
        assert path.read_text(encoding="utf-8") not in texts, path.name


def test_rbac_readme_explains_switching():
    text = (RBAC / "README.md").read_text(encoding="utf-8")
    assert "kubectl delete -f manifests/20-rbac.yaml && kubectl apply -f rbac/namespaced/" in text
    assert "team-a,team-b" in text and "GITOPS_ALLOW_NAMESPACES" in text
    assert "discovery" in text.lower()


# --------------------------------------------------------------------------
# examples/


def test_demo_objects():
    docs = docs_under(EXAMPLES / "demo")
    by_kind = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {("Namespace", "demo"), ("ConfigMap", "web-content"), ("Deployment", "web"),
            ("Service", "web"), ("CustomResourceDefinition", "widgets.example.gitops-cron.dev"),
            ("Widget", "blue")} <= by_kind
    for d in docs:
        if d["kind"] not in CLUSTER_SCOPED_KINDS:
            assert d["metadata"]["namespace"] == "demo", identity(d)
    crd = find(docs, "CustomResourceDefinition", "widgets.example.gitops-cron.dev")
    assert crd["spec"]["scope"] == "Namespaced"
    assert crd["spec"]["names"]["kind"] == "Widget"
    props = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert props["size"]["type"] == "integer" and props["color"]["type"] == "string"


def test_demo_deployment_is_restricted_and_pinned():
    deploy = find(docs_under(EXAMPLES / "demo"), "Deployment", "web")
    pod = deploy["spec"]["template"]["spec"]
    assert restricted_violations(pod) == []
    for c in pod["containers"]:
        tag = image_tag(c["image"])
        assert tag and tag != "latest", c["image"]
        assert c["readinessProbe"] and c["livenessProbe"]


def test_credential_examples_are_placeholders_for_the_mounted_secret():
    expected = {"https-token.yaml": {"token"}, "ssh.yaml": {"ssh-privatekey", "known_hosts"}}
    for name, keys in expected.items():
        path = EXAMPLES / "credentials" / name
        secret = find(load_docs(path), "Secret", CREDENTIALS_SECRET)
        assert secret["metadata"]["namespace"] == NAMESPACE
        assert set(secret["stringData"]) == keys
        for value in secret["stringData"].values():
            assert "REPLACE-ME" in value, f"{name}: not an obvious placeholder"
            assert "PRIVATE KEY-----" not in value
        assert "kubectl -n gitops create secret generic gitops-cron-git" in path.read_text()


# --------------------------------------------------------------------------
# Dockerfile and .dockerignore


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined."""
    out, buf = [], ""
    for raw in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def dockerfile_all(instruction: str) -> list[str]:
    return [args for word, args in dockerfile_instructions() if word == instruction]


def dockerfile_last(instruction: str) -> str:
    found = dockerfile_all(instruction)
    assert found, f"Dockerfile has no {instruction}"
    return found[-1]


def dockerfile_assignments(instruction: str) -> dict[str, str]:
    values = {}
    for args in dockerfile_all(instruction):
        for token in shlex.split(args):
            key, _, value = token.partition("=")
            values[key] = value
    return values


def dockerfile_arg(name: str) -> str:
    return dockerfile_assignments("ARG")[name]


def dockerignore_patterns() -> set[str]:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return {ln.strip().strip("/") for ln in lines if ln.strip() and not ln.startswith("#")}


def test_base_image_is_pinned():
    base = dockerfile_last("FROM").split()[0]
    assert base.startswith("python:3.11"), base
    tag = image_tag(base)
    assert tag and tag != "latest", base
    assert re.fullmatch(r"3\.11\.\d+-slim-bookworm", tag), f"pin a patch release: {base}"


def test_runs_as_numeric_non_root_user():
    user = dockerfile_last("USER")
    assert re.fullmatch(r"\d+(:\d+)?", user), f"USER must be numeric, got {user!r}"
    uid, _, gid = user.partition(":")
    assert int(uid) != 0 and (not gid or int(gid) != 0)
    assert user == "65532:65532"


def test_entrypoint_runs_reconcile():
    entry = json.loads(dockerfile_last("ENTRYPOINT"))
    assert entry == ["python", "/app/reconcile.py"]


def test_environment_suits_a_read_only_root_filesystem():
    env = dockerfile_assignments("ENV")
    assert env["HOME"] == "/tmp" and env["TMPDIR"] == "/tmp"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"


def test_no_secret_in_env_or_arg():
    looks_secret = re.compile(r"pass|secret|token|key|credential|auth|private", re.I)
    for instruction in ("ENV", "ARG"):
        for key, value in dockerfile_assignments(instruction).items():
            assert not looks_secret.search(key), f"{instruction} {key} looks like a secret"
            assert not looks_secret.search(value), f"{instruction} {key}={value} looks like a secret"


def test_packages_installed_lean():
    runs = " ".join(dockerfile_all("RUN"))
    assert "--no-install-recommends" in runs
    assert re.search(r"install[^&]*\bgit\b", runs) and "openssh-client" in runs
    assert "rm -rf /var/lib/apt/lists/*" in runs
    assert re.search(r"pip install --no-cache-dir[^&]* -r \S*requirements\.txt", runs)


def test_copies_only_the_application():
    sources = []
    for args in dockerfile_all("COPY"):
        parts = [p for p in args.split() if not p.startswith("--")]
        sources += [p.rstrip("/") for p in parts[:-1]]
    assert {"requirements.txt", "reconcile.py", "gitops_cron"} == set(sources)
    ignored = dockerignore_patterns()
    assert not set(sources) & ignored, "the build context would lack a COPY source"


def test_oci_labels():
    labels = dockerfile_assignments("LABEL")
    for key in ("title", "description", "source", "version"):
        assert labels.get(f"org.opencontainers.image.{key}"), key


def test_dockerignore_keeps_out_what_the_image_must_not_hold():
    ignored = dockerignore_patterns()
    for path in ("tests", ".git", ".venv", "bench", "examples"):
        assert path in ignored, f".dockerignore does not exclude {path}"
    assert {"**/__pycache__", ".pytest_cache"} <= ignored
