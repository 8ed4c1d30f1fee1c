"""Kube: the one edge to the API server — connection, retries, discovery, and typed errors.

Requests go through the official client's ApiClient (so kubeconfig auth, exec
plugins and in-cluster token rotation work as in every other tool), but bodies
are sent pre-serialized and answers parsed as plain JSON: the generated model
classes would cost more CPU per request than the request itself.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import urllib3
from kubernetes import client, config

from gitops_cron import __version__
from gitops_cron.errors import ClusterError, GitopsError, Interrupted
from gitops_cron.plan import ApiResource, Catalog

log = logging.getLogger(__name__)

AGGREGATED_DISCOVERY = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
APPLY_PATCH = "application/apply-patch+yaml"
PARTIAL_METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
RETRIABLE_STATUS = {429, 500, 502, 503, 504}
MAX_ATTEMPTS = 6
BACKOFF_BASE = 0.2
BACKOFF_CAP = 5.0
REQUEST_TIMEOUT = 30.0
MAX_MESSAGE = 500
# How long one Authorization header is reused. Asking the client for it runs the config loader's
# refresh hook, which re-sets the whole configuration (and scans the environment for proxies) each
# time: about a third of the client CPU of a request. The hooks renew a token well ahead of its
# expiry (kubeconfig exec/OIDC credentials 5 minutes before, the in-cluster token file every
# minute), so a header a second old is always one the hook would still have returned.
AUTH_REFRESH = 1.0


@dataclass(frozen=True)
class Response:
    status: int
    body: dict[str, Any]


class ApiError(GitopsError):
    """A request the server refused; `message` is the server's Status.message, truncated."""

    def __init__(self, status: int, reason: str, message: str, causes: tuple[dict[str, Any], ...] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.causes = causes

    def __str__(self) -> str:
        return f"HTTP {self.status} {self.reason}: {self.message}" if self.reason else f"HTTP {self.status}: {self.message}"

    @classmethod
    def from_response(cls, status: int, body: dict[str, Any]) -> "ApiError":
        message = str(body.get("message") or f"HTTP {status}")
        if len(message) > MAX_MESSAGE:
            message = message[:MAX_MESSAGE] + "…"
        causes = tuple((body.get("details") or {}).get("causes") or ())
        return cls(status, str(body.get("reason") or ""), message, causes)


def make_api_client(kubeconfig: str, context: str, pool_size: int) -> client.ApiClient:
    """In-cluster config inside a pod, else kubeconfig (with --context), like kubectl."""
    configuration = client.Configuration()
    try:
        if not kubeconfig and not context and config.incluster_config.SERVICE_HOST_ENV_NAME in os.environ:
            config.load_incluster_config(client_configuration=configuration)
        else:
            config.load_kube_config(config_file=kubeconfig or None, context=context or None,
                                    client_configuration=configuration)
    except (config.ConfigException, OSError) as error:
        raise ClusterError(f"cluster config failed: {error}") from None
    configuration.connection_pool_maxsize = pool_size
    configuration.retries = False  # retries are ours: bounded, with backoff, honouring Retry-After
    api_client = client.ApiClient(configuration)
    api_client.user_agent = f"gitops-cron/{__version__}"  # what audit logs and API priority rules see
    return api_client


class Kube:
    """Requests with bounded retries; stops early when the run is terminating or past its deadline."""

    def __init__(self, api_client: client.ApiClient, deadline: float, stopping: threading.Event) -> None:
        self.api_client = api_client
        self.host = api_client.configuration.host.rstrip("/")
        self.deadline = deadline
        self.stopping = stopping
        self.counts: dict[str, int] = {}
        self.counts_lock = threading.Lock()
        self.auth: dict[str, str] = {}
        self.auth_until = 0.0
        self.auth_lock = threading.Lock()

    def auth_headers(self) -> dict[str, str]:
        """The client's auth headers (its token refresh hook included), asked for at most every AUTH_REFRESH s."""
        if time.monotonic() >= self.auth_until:
            with self.auth_lock:
                if time.monotonic() >= self.auth_until:
                    headers: dict[str, str] = {}
                    self.api_client.update_params_for_auth(headers, [], ["BearerToken"], "", "", None)
                    self.auth, self.auth_until = headers, time.monotonic() + AUTH_REFRESH
        return self.auth

    def request(self, method: str, path: str, query: dict[str, str] | None = None, body: Any = None,
                content_type: str = "application/json", accept: str = "application/json") -> Response:
        """One API call; raises ApiError for any non-2xx answer that retries did not cure."""
        # The URL and headers are put together here rather than by the client's param_serialize, which
        # walks every header and parameter through its model serializer: 70 µs of CPU a request.
        url = self.host + path + (f"?{urlencode(query)}" if query else "")
        headers = {**self.api_client.default_headers, "Accept": accept, "Content-Type": content_type,
                   **self.auth_headers()}
        data = body if isinstance(body, (bytes, str)) or body is None else json.dumps(body).encode()
        attempt = 0
        while True:
            attempt += 1
            if self.stopping.is_set():
                raise Interrupted(f"{method} {path} not sent: terminating")
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise Interrupted(f"{method} {path} not sent: --timeout reached")
            self.count(method)
            wait = None
            try:
                raw = self.api_client.rest_client.pool_manager.request(
                    method, url, body=data, headers=headers, preload_content=True, retries=False,
                    timeout=urllib3.Timeout(connect=min(10.0, remaining), read=min(REQUEST_TIMEOUT, remaining)))
            except urllib3.exceptions.HTTPError as error:
                if attempt >= MAX_ATTEMPTS:
                    raise ClusterError(f"{method} {path} failed: {type(error).__name__}: "
                                       f"{getattr(error, 'reason', None) or 'connection error'}") from None
                log.debug("retrying %s %s after %s", method, path, type(error).__name__)
            else:
                status = raw.status
                parsed = parse_json(raw.data)
                if status < 300:
                    return Response(status, parsed)
                if status not in RETRIABLE_STATUS or attempt >= MAX_ATTEMPTS:
                    raise ApiError.from_response(status, parsed)
                wait = retry_after(raw.headers.get("Retry-After"))
                log.debug("retrying %s %s after HTTP %d", method, path, status)
            delay = wait if wait is not None else random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2 ** attempt))
            if self.stopping.wait(min(delay, max(0.0, self.deadline - time.monotonic()))):
                raise Interrupted(f"{method} {path} abandoned: terminating")

    @property
    def out_of_time(self) -> bool:
        return self.stopping.is_set() or time.monotonic() >= self.deadline

    def for_cleanup(self, seconds: float = 10.0) -> "Kube":
        """A client for the last requests of a run (release the lock, record the result) that still
        go out when the run is terminating or past its deadline, within a short time of their own."""
        cleanup = Kube(self.api_client, time.monotonic() + seconds, threading.Event())
        cleanup.counts, cleanup.counts_lock = self.counts, self.counts_lock
        return cleanup

    def count(self, method: str) -> None:
        with self.counts_lock:
            self.counts[method] = self.counts.get(method, 0) + 1

    def get(self, resource: ApiResource, name: str, namespace: str = "") -> dict[str, Any] | None:
        try:
            return self.request("GET", resource.path(namespace, name)).body
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    def list(self, resource: ApiResource, namespace: str = "", label_selector: str = "",
             metadata_only: bool = False) -> list[dict[str, Any]]:
        """All pages of a list; items get apiVersion/kind, which list responses leave out.

        `metadata_only` asks for the items' metadata alone (PartialObjectMetadataList): the server
        encodes, and we parse, a fraction of the bytes. A server that cannot answer that way sends
        the full list instead, which holds the same metadata."""
        items: list[dict[str, Any]] = []
        query = {"limit": "500"}
        if label_selector:
            query["labelSelector"] = label_selector
        accept = f"{PARTIAL_METADATA_LIST},application/json" if metadata_only else "application/json"
        while True:
            page = self.request("GET", resource.path(namespace), query, accept=accept).body
            for item in page.get("items") or []:
                if metadata_only:
                    item["apiVersion"], item["kind"] = resource.api_version, resource.kind
                else:
                    item.setdefault("apiVersion", resource.api_version)
                    item.setdefault("kind", resource.kind)
                items.append(item)
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items
            query["continue"] = token

    def apply(self, resource: ApiResource, name: str, namespace: str, body: bytes, field_manager: str,
              force: bool, dry_run: bool) -> Response:
        query = {"fieldManager": field_manager, "force": "true" if force else "false"}
        if dry_run:
            query["dryRun"] = "All"
        return self.request("PATCH", resource.path(namespace, name), query, body, content_type=APPLY_PATCH)

    def delete(self, resource: ApiResource, name: str, namespace: str, propagation: str,
               preconditions: dict[str, str] | None, dry_run: bool) -> Response:
        options: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
        if preconditions:
            options["preconditions"] = preconditions
        query = None
        if dry_run:
            # The API server reads DELETE query parameters only when there is no body: with
            # DeleteOptions in the body, a dryRun in the query alone is ignored and the delete is real.
            options["dryRun"] = ["All"]
            query = {"dryRun": "All"}
        return self.request("DELETE", resource.path(namespace, name), query, options)

    def discover(self) -> Catalog:
        """Every served kind, by aggregated discovery (2 requests) or the legacy per-group walk."""
        resources: list[ApiResource] = []
        for root in ("/api", "/apis"):
            response = self.request_raw_discovery(root)
            if response is None:
                return Catalog.of(self.discover_legacy())
            resources.extend(response)
        return Catalog.of(resources)

    def request_raw_discovery(self, root: str) -> list[ApiResource] | None:
        """Resources from an aggregated discovery document, or None when the server answered the old way."""
        body = self.request("GET", root, accept=f"{AGGREGATED_DISCOVERY},application/json").body
        if body.get("kind") != "APIGroupDiscoveryList":
            return None
        resources = []
        for group in body.get("items") or []:
            group_name = (group.get("metadata") or {}).get("name", "")
            for version in group.get("versions") or []:
                for item in version.get("resources") or []:
                    kind = (item.get("responseKind") or {}).get("kind")
                    if not kind or "/" in item.get("resource", "/"):
                        continue
                    resources.append(ApiResource(group_name, version["version"], kind, item["resource"],
                                                 item.get("scope") == "Namespaced"))
        return resources

    def discover_legacy(self) -> list[ApiResource]:
        group_versions = [("", version) for version in self.request("GET", "/api").body.get("versions") or []]
        for group in self.request("GET", "/apis").body.get("groups") or []:
            preferred = (group.get("preferredVersion") or {}).get("version")
            versions = [v["version"] for v in group.get("versions") or []]
            versions.sort(key=lambda v: v != preferred)
            group_versions.extend((group["name"], version) for version in versions)
        resources = []
        for group, version in group_versions:
            path = f"/apis/{group}/{version}" if group else f"/api/{version}"
            try:
                listing = self.request("GET", path).body
            except ApiError as error:
                log.warning("discovery of %s failed: %s", path, error.message)
                continue
            for item in listing.get("resources") or []:
                if "/" not in item["name"]:
                    resources.append(ApiResource(group, version, item["kind"], item["name"], item["namespaced"]))
        return resources


def parse_json(data: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(data) if data else {}
    except ValueError:
        return {"message": data[:MAX_MESSAGE].decode("utf-8", "replace")}
    return parsed if isinstance(parsed, dict) else {}


def retry_after(header: str | None) -> float | None:
    """Seconds from a Retry-After header (seconds form, which is what the API server sends), capped."""
    if not header:
        return None
    try:
        return min(max(float(header), 0.0), 30.0)
    except ValueError:
        return None
