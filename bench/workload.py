"""The benchmark's git repository: N objects over about ten kinds and several namespaces.

Objects are valid for a real kube-apiserver (selectors match templates, Jobs
have restartPolicy Never, Secrets use `data`), one file per object under
`<namespace>/`, Namespaces under `namespaces/`. Each change is a real commit in
a real repository cloned through file://.
"""

from __future__ import annotations

import base64
import os
import random
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

GIT_ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com", "GIT_COMMITTER_NAME": "bench",
           "GIT_COMMITTER_EMAIL": "bench@example.com", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
REV_ANNOTATION = "bench.gitops-cron.dev/revision"


def labels(app: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": app, "app.kubernetes.io/part-of": "bench"}


def pod_spec(app: str, restart: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "main", "image": "registry.example/bench/app:1.0",
                                            "ports": [{"containerPort": 8080, "name": "http"}],
                                            "env": [{"name": "APP", "value": app}],
                                            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}
    if restart:
        spec["restartPolicy"] = restart
    return {"metadata": {"labels": labels(app)}, "spec": spec}


def config_map(name: str, app: str, rev: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "data": {"app.properties": f"name={app}\nrevision={rev}\n", "level": "info"}}


def secret(name: str, app: str, rev: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "data": {"password": base64.b64encode(f"{app}-{rev}".encode()).decode()}}


def service(name: str, app: str, rev: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "spec": {"selector": labels(app), "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}


def service_account(name: str, app: str, rev: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount"}


def deployment(name: str, app: str, rev: int) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "spec": {"replicas": 1, "selector": {"matchLabels": labels(app)}, "template": pod_spec(app)}}


def stateful_set(name: str, app: str, rev: int) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "spec": {"replicas": 1, "serviceName": app, "selector": {"matchLabels": labels(app)},
                     "template": pod_spec(app)}}


def role(name: str, app: str, rev: int) -> dict[str, Any]:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}]}


def role_binding(name: str, app: str, rev: int) -> dict[str, Any]:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name}]}


def job(name: str, app: str, rev: int) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job",
            "spec": {"backoffLimit": 1, "template": pod_spec(app, restart="Never")}}


def pod_disruption_budget(name: str, app: str, rev: int) -> dict[str, Any]:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "spec": {"minAvailable": 1, "selector": {"matchLabels": labels(app)}}}


def network_policy(name: str, app: str, rev: int) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "spec": {"podSelector": {"matchLabels": labels(app)}, "policyTypes": ["Ingress"],
                     "ingress": [{"ports": [{"port": 8080, "protocol": "TCP"}]}]}}


# The order of --kinds K: the first K of these.
KINDS: tuple[tuple[str, Callable[[str, str, int], dict[str, Any]]], ...] = (
    ("configmap", config_map), ("secret", secret), ("service", service), ("serviceaccount", service_account),
    ("deployment", deployment), ("statefulset", stateful_set), ("role", role), ("rolebinding", role_binding),
    ("job", job), ("poddisruptionbudget", pod_disruption_budget), ("networkpolicy", network_policy),
)


@dataclass
class Item:
    path: str  # relative to the repository root
    namespace: str
    kind: str
    name: str
    revision: int = 1

    def document(self) -> dict[str, Any]:
        if self.kind == "namespace":
            return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.name, "labels": labels("bench")}}
        make = dict(KINDS)[self.kind]
        app = self.name.rsplit("-", 1)[0]
        body = make(self.name, app, self.revision)
        metadata = {"name": self.name, "namespace": self.namespace, "labels": labels(app),
                    "annotations": {REV_ANNOTATION: str(self.revision)}}
        return {"apiVersion": body.pop("apiVersion"), "kind": body.pop("kind"), "metadata": metadata, **body}


@dataclass
class Workload:
    """The objects of the repository, with the operations the scenarios need."""

    root: Path
    objects: int
    kinds: int
    namespaces: int
    items: list[Item] = field(default_factory=list)

    @property
    def namespace_names(self) -> list[str]:
        return [f"bench-{i:02d}" for i in range(self.namespaces)]

    @property
    def url(self) -> str:
        return self.root.as_uri()

    def git(self, *args: str) -> str:
        return subprocess.run(["git", "-C", str(self.root), *args], check=True, capture_output=True, text=True,
                              env={**os.environ, **GIT_ENV}).stdout.strip()

    def create(self) -> str:
        """N objects in total: the Namespaces, then the rest round-robin over kinds × namespaces."""
        if self.objects <= self.namespaces:
            raise ValueError("--objects must be larger than --namespaces")
        self.root.mkdir(parents=True)
        self.git("init", "-q", "-b", "main")
        self.items = [Item(f"namespaces/{ns}.yaml", "", "namespace", ns) for ns in self.namespace_names]
        kinds = [k for k, _ in KINDS[: self.kinds]]
        for i in range(self.objects - self.namespaces):
            kind = kinds[i % len(kinds)]
            namespace = self.namespace_names[(i // len(kinds)) % self.namespaces]
            name = f"app{i // (len(kinds) * self.namespaces):05d}-{kind[:3]}"
            self.items.append(Item(f"{namespace}/{kind}-{name}.yaml", namespace, kind, name))
        self.write(self.items)
        return self.commit("bench: initial objects")

    def write(self, items: list[Item]) -> None:
        for item in items:
            target = self.root / item.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(yaml.safe_dump(item.document(), sort_keys=False))

    def commit(self, message: str) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")

    def change(self, fraction: float, seed: int = 1) -> int:
        """A new commit changing `fraction` of the objects (never a Namespace): revision annotation and data."""
        chosen = self.pick(fraction, seed)
        for item in chosen:
            item.revision += 1
        self.write(chosen)
        self.commit(f"bench: change {len(chosen)} objects")
        return len(chosen)

    def remove(self, fraction: float, seed: int = 2) -> int:
        """A new commit deleting `fraction` of the objects' files (never a Namespace)."""
        chosen = self.pick(fraction, seed)
        for item in chosen:
            (self.root / item.path).unlink()
        gone = {id(item) for item in chosen}
        self.items = [item for item in self.items if id(item) not in gone]
        self.commit(f"bench: remove {len(chosen)} objects")
        return len(chosen)

    def pick(self, fraction: float, seed: int) -> list[Item]:
        candidates = [item for item in self.items if item.kind != "namespace"]
        count = round(len(self.items) * fraction)
        return random.Random(seed).sample(candidates, min(count, len(candidates)))

    def export(self, target: Path) -> None:
        """The tree as it is now, without .git (what kubectl is pointed at)."""
        shutil.copytree(self.root, target, ignore=shutil.ignore_patterns(".git"))
