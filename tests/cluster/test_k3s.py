"""End to end in a real cluster: the image, the install manifests and the job.

Needs a Docker engine (testcontainers starts K3s in a privileged container and
the docker SDK builds the image). Without one the test is skipped, saying so.

What happens:

1. build the product image from the Dockerfile (``gitops-cron:test``), then a
   test-only layer on top of it (``gitops-cron:test-demo``) that holds a git
   repository at /srv/demo with the project's layout: commit tagged ``v1`` has
   all of examples/demo/, commit tagged ``v2`` removes examples/demo/service.yaml;
2. start K3s, import the test image into its containerd (``docker save`` then
   ``k3s ctr images import`` inside the container);
3. install manifests/ with the Python client, as ``kubectl apply -f manifests/``
   would, except that the CronJob is suspended (the test starts runs itself),
   uses the test image with ``imagePullPolicy: Never``, and the settings point
   at ``file:///srv/demo`` revision ``v1``;
4. run the job the way ``kubectl create job --from=cronjob/gitops-cron`` does
   and wait for it to complete; every demo object must exist and carry the
   ApplySet ``applyset.kubernetes.io/part-of`` label of the inventory Secret;
5. switch the settings to revision ``v2``, run again: the Service must be
   pruned and the rest left alone.
"""

from __future__ import annotations

import copy
import shutil
import tarfile
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]

# Pinned: a K3s release of the Kubernetes minor the manifests are validated for.
K3S_IMAGE = "rancher/k3s:v1.37.1-k3s1"
IMAGE = "gitops-cron:test"
DEMO_IMAGE = "gitops-cron:test-demo"
DEMO_REPO_DIR = "/srv/demo"
DEMO_PATH = "examples/demo"

NAMESPACE = "gitops"
CRONJOB = "gitops-cron"
SETTINGS = "gitops-cron-settings"
INVENTORY = "gitops-cron"
PART_OF = "applyset.kubernetes.io/part-of"
APPLYSET_ID = "applyset.kubernetes.io/id"

JOB_TIMEOUT = 330  # the Job's activeDeadlineSeconds (270) plus pod start-up
PRUNE_TIMEOUT = 60

# The test layer: the demo as a two-commit git repository inside the image, so
# the pod needs no network to reach its "remote".
DEMO_DOCKERFILE = textwrap.dedent(f"""\
    FROM {IMAGE}
    USER 0:0
    COPY repo/ {DEMO_REPO_DIR}/
    RUN set -eu; cd {DEMO_REPO_DIR}; \\
        git init --quiet --initial-branch=main; \\
        git add --all; \\
        git -c user.name=e2e -c user.email=e2e@gitops-cron.invalid commit --quiet -m "demo v1"; \\
        git tag v1; \\
        git rm --quiet {DEMO_PATH}/service.yaml; \\
        git -c user.name=e2e -c user.email=e2e@gitops-cron.invalid commit --quiet -m "demo v2: no Service"; \\
        git tag v2; \\
        chown -R 65532:65532 {DEMO_REPO_DIR}
    USER 65532:65532
    """)


# --------------------------------------------------------------------------
# helpers: Docker


def docker_or_skip():
    """A docker SDK client whose engine answers, or skip the module."""
    try:
        import docker

        client = docker.from_env()
        client.ping()
    except Exception as exc:  # DockerException, ConnectionError, ImportError ...
        pytest.skip(
            "no Docker engine answers: "
            f"{type(exc).__name__}: {exc}. The cluster tier builds the image and "
            "runs K3s (testcontainers) and needs a running Docker daemon "
            "(DOCKER_HOST or /var/run/docker.sock)."
        )
    return client


def build(client, path: Path, tag: str) -> None:
    from docker.errors import BuildError

    try:
        client.images.build(path=str(path), tag=tag, rm=True, forcerm=True)
    except BuildError as exc:
        lines = [str(chunk.get("stream") or chunk.get("error") or "").rstrip()
                 for chunk in exc.build_log]
        tail = "\n".join(line for line in lines if line)[-4000:]
        pytest.fail(f"docker build of {tag} failed: {exc.msg}\n{tail}")


def build_demo_image(client, workdir: Path) -> None:
    """gitops-cron:test plus the demo as a git repository at /srv/demo."""
    context = workdir / "demo-image"
    shutil.copytree(ROOT / DEMO_PATH, context / "repo" / DEMO_PATH)
    (context / "Dockerfile").write_text(DEMO_DOCKERFILE, encoding="utf-8")
    build(client, context, DEMO_IMAGE)


def import_into_k3s(client, k3s, tag: str) -> None:
    """docker save | k3s ctr images import, through a tarball copied in."""
    container = k3s.get_wrapped_container()
    target_dir = "/var/lib/rancher/k3s"
    name = "gitops-cron-e2e-image.tar"
    with tempfile.TemporaryFile() as saved, tempfile.TemporaryFile() as wrapper:
        for chunk in client.images.get(tag).save(named=tag):
            saved.write(chunk)
        size = saved.tell()
        saved.seek(0)
        # put_archive unpacks a tar: wrap the image tarball in one.
        with tarfile.open(fileobj=wrapper, mode="w") as tar:
            info = tarfile.TarInfo(name)
            info.size = size
            info.mode = 0o644
            tar.addfile(info, saved)
        wrapper.seek(0)
        assert container.put_archive(target_dir, wrapper), "copying the image into K3s failed"
    path = f"{target_dir}/{name}"
    result = container.exec_run(["k3s", "ctr", "-n", "k8s.io", "images", "import", path])
    assert result.exit_code == 0, f"ctr images import: {result.output.decode(errors='replace')}"
    container.exec_run(["rm", "-f", path])
    listed = container.exec_run(["k3s", "ctr", "-n", "k8s.io", "images", "ls", "-q"])
    assert f"docker.io/library/{tag}" in listed.output.decode(errors="replace"), \
        f"{tag} not in K3s after import"


# --------------------------------------------------------------------------
# helpers: Kubernetes


def load_manifests() -> list[dict]:
    docs = []
    for path in sorted((ROOT / "manifests").glob("*.yaml")):
        with path.open(encoding="utf-8") as fh:
            docs += [d for d in yaml.safe_load_all(fh) if d]
    return docs


def for_test(docs: list[dict]) -> list[dict]:
    """manifests/ as the test installs it: the test image, no schedule, and
    the settings pointing at the repository baked into that image."""
    out = copy.deepcopy(docs)
    for doc in out:
        if doc["kind"] == "CronJob" and doc["metadata"]["name"] == CRONJOB:
            doc["spec"]["suspend"] = True
            container = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
            container["image"] = DEMO_IMAGE
            container["imagePullPolicy"] = "Never"
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == SETTINGS:
            assert doc["data"].get("GITOPS_PATH") == DEMO_PATH
            doc["data"]["GITOPS_REPO"] = f"file://{DEMO_REPO_DIR}"
            doc["data"]["GITOPS_REVISION"] = "v1"
    return out


def install(api, docs: list[dict]) -> None:
    """`kubectl apply --server-side -f manifests/`, with the Python client."""
    from kubernetes.dynamic import DynamicClient

    dynamic = DynamicClient(api)
    for doc in docs:  # in file order: the Namespace first
        resource = dynamic.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
        dynamic.server_side_apply(resource, body=doc, field_manager="e2e-install",
                                  force_conflicts=True)


def set_revision(api, revision: str) -> None:
    from kubernetes import client

    client.CoreV1Api(api).patch_namespaced_config_map(
        SETTINGS, NAMESPACE, {"data": {"GITOPS_REVISION": revision}})


def create_job_from_cronjob(api, name: str) -> None:
    """What `kubectl create job NAME --from=cronjob/gitops-cron` does."""
    from kubernetes import client

    batch = client.BatchV1Api(api)
    cronjob = batch.read_namespaced_cron_job(CRONJOB, NAMESPACE)
    template = cronjob.spec.job_template
    meta = template.metadata or client.V1ObjectMeta()
    job = client.V1Job(
        api_version="batch/v1",
        kind="Job",
        metadata=client.V1ObjectMeta(
            name=name,
            namespace=NAMESPACE,
            labels=meta.labels,
            annotations={**(meta.annotations or {}),
                         "cronjob.kubernetes.io/instantiate": "manual"},
            owner_references=[client.V1OwnerReference(
                api_version="batch/v1", kind="CronJob", name=cronjob.metadata.name,
                uid=cronjob.metadata.uid, controller=True, block_owner_deletion=True)],
        ),
        spec=template.spec,
    )
    batch.create_namespaced_job(NAMESPACE, job)


def job_report(api, name: str) -> str:
    """Pod phases, container states and logs of a Job, for failure messages."""
    from kubernetes import client

    core = client.CoreV1Api(api)
    out = []
    pods = core.list_namespaced_pod(NAMESPACE, label_selector=f"job-name={name}").items
    for pod in pods:
        out.append(f"pod {pod.metadata.name}: {pod.status.phase}")
        for status in pod.status.container_statuses or []:
            out.append(f"  {status.name}: {status.state}")
        try:
            log = core.read_namespaced_pod_log(pod.metadata.name, NAMESPACE, tail_lines=200)
            out.append(textwrap.indent(log, "  | "))
        except Exception as exc:  # not started yet, image missing, ...
            out.append(f"  (no log: {exc})")
    events = core.list_namespaced_event(NAMESPACE).items
    out += [f"event {e.involved_object.kind}/{e.involved_object.name}: {e.reason}: {e.message}"
            for e in events[-30:]]
    return "\n".join(out) or "(no pods)"


def run_job(api, name: str) -> str:
    """Start a run, wait until it ends, fail unless it succeeded; its report."""
    from kubernetes import client

    batch = client.BatchV1Api(api)
    create_job_from_cronjob(api, name)
    deadline = time.monotonic() + JOB_TIMEOUT
    while time.monotonic() < deadline:
        status = batch.read_namespaced_job_status(name, NAMESPACE).status
        conditions = {c.type: c for c in status.conditions or [] if c.status == "True"}
        if "Complete" in conditions:
            return job_report(api, name)
        if "Failed" in conditions:
            failed = conditions["Failed"]
            pytest.fail(f"job {name} failed ({failed.reason}: {failed.message})\n"
                        f"{job_report(api, name)}")
        time.sleep(2)
    pytest.fail(f"job {name} did not finish in {JOB_TIMEOUT}s\n{job_report(api, name)}")


def demo_readers(api) -> dict:
    """For each demo object, a function returning its labels as they are in
    the cluster; it raises ApiException(404) when the object is missing."""
    from kubernetes import client

    core = client.CoreV1Api(api)
    apps = client.AppsV1Api(api)
    crds = client.ApiextensionsV1Api(api)
    custom = client.CustomObjectsApi(api)
    return {
        "Namespace/demo": lambda: core.read_namespace("demo").metadata.labels,
        "ConfigMap/web-content":
            lambda: core.read_namespaced_config_map("web-content", "demo").metadata.labels,
        "Deployment/web": lambda: apps.read_namespaced_deployment("web", "demo").metadata.labels,
        "Service/web": lambda: core.read_namespaced_service("web", "demo").metadata.labels,
        "CustomResourceDefinition/widgets.example.gitops-cron.dev":
            lambda: crds.read_custom_resource_definition(
                "widgets.example.gitops-cron.dev").metadata.labels,
        "Widget/blue": lambda: custom.get_namespaced_custom_object(
            "example.gitops-cron.dev", "v1", "demo", "widgets", "blue")["metadata"].get("labels"),
    }


def is_gone(read) -> bool:
    from kubernetes.client.exceptions import ApiException

    try:
        read()
    except ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


# --------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def docker_client():
    client = docker_or_skip()
    yield client
    client.close()


@pytest.fixture(scope="module")
def k3s_api(docker_client, tmp_path_factory):
    from kubernetes import config
    from testcontainers.community.k3s import K3SContainer

    build(docker_client, ROOT, IMAGE)
    build_demo_image(docker_client, tmp_path_factory.mktemp("images"))
    with K3SContainer(image=K3S_IMAGE) as k3s:
        import_into_k3s(docker_client, k3s, DEMO_IMAGE)
        api = config.new_client_from_config_dict(yaml.safe_load(k3s.config_yaml()))
        try:
            yield api
        finally:
            api.close()


# --------------------------------------------------------------------------
# the test


def test_install_apply_and_prune_in_k3s(k3s_api):
    from kubernetes import client

    api = k3s_api
    install(api, for_test(load_manifests()))
    readers = demo_readers(api)

    # run 1: revision v1 holds the whole demo
    report = run_job(api, "gitops-cron-e2e-1")
    inventory = client.CoreV1Api(api).read_namespaced_secret(INVENTORY, NAMESPACE)
    applyset_id = (inventory.metadata.labels or {}).get(APPLYSET_ID)
    assert applyset_id, f"inventory Secret has no {APPLYSET_ID} label\n{report}"
    for name, read in readers.items():
        labels = read() or {}
        assert labels.get(PART_OF) == applyset_id, \
            f"{name} lacks {PART_OF}={applyset_id}: {labels}\n{report}"

    # run 2: revision v2 no longer has service.yaml
    set_revision(api, "v2")
    report = run_job(api, "gitops-cron-e2e-2")
    removed = readers.pop("Service/web")
    deadline = time.monotonic() + PRUNE_TIMEOUT
    while not is_gone(removed):
        assert time.monotonic() < deadline, f"Service demo/web was not pruned\n{report}"
        time.sleep(1)
    for name, read in readers.items():
        labels = read() or {}
        assert labels.get(PART_OF) == applyset_id, f"{name} after run 2: {labels}\n{report}"
