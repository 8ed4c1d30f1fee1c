"""HTTP front end of the fake Kubernetes API server, and the ``FakeKube`` test fixture.

The real ``kubernetes`` client talks HTTP/1.1 (keep-alive, JSON) to it.  Routing follows the apiserver's
request-info rules: https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-uris
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

from . import errors
from .errors import ApiError
from .faults import FaultSet, RecordedRequest
from .resources import (AGGREGATED_DISCOVERY_MEDIA, aggregated_discovery, api_group, api_group_list,
                        api_resource_list, api_versions, wants_media)
from .store import Store

DEFAULT_USER = "system:serviceaccount:gitops:gitops-cron"
JSON = "application/json"

VERSION_INFO = {"major": "1", "minor": "37", "gitVersion": "v1.37.2-fake", "gitCommit": "0" * 40,
                "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.25.0",
                "compiler": "gc", "platform": "linux/amd64"}

# PATCH media types -> patch kind.
# https://kubernetes.io/docs/tasks/manage-kubernetes-objects/update-api-object-kubectl-patch/
PATCH_TYPES = {
    "application/apply-patch+yaml": "apply",
    "application/apply-patch+json": "apply",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/json-patch+json": "json",
}
PROPAGATION_POLICIES = ("Background", "Foreground", "Orphan")


def _parse_route(path: str):
    """('api',) | ('apis',) | ('group', g) | ('resources', g, v) | ('object', g, v, ns, resource, name, sub)."""
    # Segments are percent-decoded after splitting on "/", as the apiserver's request-info parsing does.
    parts = [unquote(p) for p in path.strip("/").split("/")] if path.strip("/") else []
    if not parts or parts[0] not in ("api", "apis"):
        return None
    if parts == ["api"]:
        return ("api",)
    if parts == ["apis"]:
        return ("apis",)
    if parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    else:
        if len(parts) == 2:
            return ("group", parts[1])
        group, version, rest = parts[1], parts[2], parts[3:]
    if not rest:
        return ("resources", group, version)
    ns = None
    # /namespaces/{ns}/{resource}... except the namespace's own subresources (status, finalize)
    if rest[0] == "namespaces" and len(rest) > 2 and rest[2] not in ("status", "finalize"):
        ns, rest = rest[1], rest[2:]
    if len(rest) > 3 or not all(rest):
        return False
    return ("object", group, version, ns, rest[0], rest[1] if len(rest) > 1 else None,
            rest[2] if len(rest) > 2 else "")


def _first(query: dict, key: str, default=None):
    v = query.get(key)
    return v[0] if v else default


def _dry_run(values) -> bool:
    # https://kubernetes.io/docs/reference/using-api/api-concepts/#dry-run
    values = [v for v in values or [] if v != ""]
    for v in values:
        if v != "All":
            raise errors.bad_request(f'unsupported dry run value "{v}"; only "All" is allowed')
    return bool(values)


def _partial_metadata(doc: dict, is_list: bool) -> dict:
    # https://kubernetes.io/docs/reference/using-api/api-concepts/#receiving-resources-as-metadata-only
    if is_list:
        return {"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": doc["metadata"],
                "items": [{"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                           "metadata": o["metadata"]} for o in doc["items"]]}
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": doc["metadata"]}


class _Response:
    __slots__ = ("status", "doc", "ctype", "headers", "raw")

    def __init__(self, status: int, doc=None, ctype: str = JSON, headers: dict | None = None, raw: bytes | None = None):
        self.status, self.doc, self.ctype, self.headers, self.raw = status, doc, ctype, headers or {}, raw

    def payload(self) -> bytes:
        if self.raw is not None:
            return self.raw
        return errors.encode(self.doc)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every response carries Content-Length

    def version_string(self):
        return "fakekube/1"

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, True)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def log_message(self, format, *args):  # noqa: A002 - quiet
        pass

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _serve(self):
        kube: FakeKube = self.server.kube
        body = self._read_body()
        split = urlsplit(self.path)
        rec = RecordedRequest(method=self.command, path=split.path,
                              query=parse_qs(split.query, keep_blank_values=True),
                              headers={k.lower(): v for k, v in self.headers.items()}, body=body, time=time.time())
        if kube.latency:
            time.sleep(kube.latency)  # outside any lock: concurrent requests overlap
        fault = kube.faults.take(self.command, split.path)
        resp = None
        if fault is not None:
            rec.fault = fault
            if fault.delay:
                time.sleep(fault.delay)
            if fault.drop:
                rec.status = 0
                kube._record(rec)
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            if fault.status is not None:
                resp = self._fault_response(fault)
        if resp is None:
            try:
                resp = kube._dispatch(rec)
            except ApiError as e:
                resp = _Response(e.code, e.status(), headers=e.headers)
            except Exception as e:  # a bug in the fake: answer 500 with the traceback
                msg = f"fakekube internal error: {e!r}\n{traceback.format_exc()}"
                resp = _Response(500, ApiError(500, "InternalError", msg).status())
        payload = resp.payload()
        rec.status = resp.status
        kube._record(rec)  # recorded before answering, so the client never sees a reply before the log
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.ctype)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Audit-Id", str(uuid.uuid4()))
        for k, v in resp.headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(payload)

    @staticmethod
    def _fault_response(fault) -> _Response:
        headers = {}
        if fault.retry_after is not None:
            # https://kubernetes.io/docs/reference/using-api/api-concepts/ (429/503 with Retry-After)
            ra = fault.retry_after
            headers["Retry-After"] = str(int(ra) if isinstance(ra, float) and ra.is_integer() else ra)
        if fault.body is None:
            ra = fault.retry_after if isinstance(fault.retry_after, (int, float)) else None
            return _Response(fault.status, errors.for_code(fault.status, retry_after=ra).status(), headers=headers)
        if isinstance(fault.body, (dict, list)):
            return _Response(fault.status, fault.body, headers=headers)
        raw = fault.body.encode() if isinstance(fault.body, str) else fault.body
        return _Response(fault.status, headers=headers, raw=raw, ctype="text/plain; charset=utf-8")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # >= 32 concurrent clients connecting at once

    def __init__(self, addr, kube):
        self.kube = kube
        self._conns: set = set()
        self._conns_lock = threading.Lock()
        super().__init__(addr, _Handler)

    def track(self, sock, alive: bool) -> None:
        with self._conns_lock:
            (self._conns.add if alive else self._conns.discard)(sock)

    def close_connections(self) -> None:
        with self._conns_lock:
            conns, self._conns = list(self._conns), set()
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class FakeKube:
    """A fake Kubernetes API server on 127.0.0.1, for wire-level tests.  See tests/fakekube/__init__.py."""

    def __init__(self, latency: float = 0.0, token: str = "fake-token", host: str = "127.0.0.1", port: int = 0,
                 user: str = DEFAULT_USER):
        self.store = Store()
        self.faults = FaultSet()
        self.latency = latency
        self.token = token
        self.user = user  # the identity named in 403 messages
        self.aggregated_discovery = True
        self.record_requests = True  # keep the request log (the standalone process turns it off)
        self._host, self._port = host, port
        self._forbidden: list = []
        self._requests: list = []
        self._req_lock = threading.Lock()
        self._server: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "FakeKube":
        if self._server is None:
            self._server = _HTTPServer((self._host, self._port), self)
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                            name="fakekube", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server.close_connections()
            self._thread.join(timeout=5)
            self._server = self._thread = None

    def __enter__(self) -> "FakeKube":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeKube is not started")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def write_kubeconfig(self, path, token: str | None = None) -> str:
        """Write a kubeconfig (cluster/user/context "fake") pointing at this server; returns the path."""
        cfg = {
            "apiVersion": "v1", "kind": "Config", "current-context": "fake", "preferences": {},
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": self.token if token is None else token}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
        }
        path = os.fspath(path)
        with open(path, "w") as f:
            yaml.safe_dump(cfg, f, sort_keys=False)
        return path

    # ------------------------------------------------------------------ knobs
    @property
    def crd_established_delay(self) -> float:
        return self.store.crd_established_delay

    @crd_established_delay.setter
    def crd_established_delay(self, value: float) -> None:
        self.store.crd_established_delay = float(value)

    @property
    def namespace_finalization(self) -> str:
        return self.store.namespace_finalization

    @namespace_finalization.setter
    def namespace_finalization(self, value: str) -> None:
        if value not in ("immediate", "terminating"):
            raise ValueError("namespace_finalization must be 'immediate' or 'terminating'")
        self.store.namespace_finalization = value

    def forbid(self, verb: str, resource: str, namespace: str | None = None) -> tuple:
        """Answer matching requests 403 Forbidden.  verb/resource may be "*"; namespace None = everywhere."""
        rule = (verb, resource, namespace)
        with self._req_lock:
            self._forbidden.append(rule)
        return rule

    def clear_forbidden(self) -> None:
        with self._req_lock:
            self._forbidden = []

    # ------------------------------------------------------------------ direct store access
    def put(self, obj: dict, manager: str = "kubectl", operation: str = "Update") -> dict:
        """Seed an object as field manager ``manager`` (operation "Update" replaces, "Apply" force-applies)."""
        return self.store.seed(obj, manager, operation)

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict | None:
        return self.store.fetch(api_version, kind, name, namespace)

    def list(self, api_version: str, kind: str, namespace: str | None = None) -> list[dict]:
        return self.store.fetch_all(api_version, kind, namespace)

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict | None:
        return self.store.remove(api_version, kind, name, namespace)

    # ------------------------------------------------------------------ request log
    @property
    def requests(self) -> list[RecordedRequest]:
        with self._req_lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._req_lock:
            self._requests = []

    def requests_for(self, method: str | None = None, path: str | None = None) -> list[RecordedRequest]:
        """Recorded requests with this method and/or a path containing ``path`` (regex search)."""
        rx = re.compile(path) if path else None
        return [r for r in self.requests
                if (method is None or r.method == method.upper()) and (rx is None or rx.search(r.path))]

    def _record(self, rec: RecordedRequest) -> None:
        if not self.record_requests:
            return
        with self._req_lock:
            self._requests.append(rec)

    # ------------------------------------------------------------------ dispatch
    def _check_forbidden(self, verb: str, t, ns: str | None, name: str | None, sub: str = "") -> None:
        res = f"{t.plural}/{sub}" if sub else t.plural
        with self._req_lock:
            rules = list(self._forbidden)
        for rverb, rres, rns in rules:
            if rverb not in ("*", verb) or rres not in ("*", res):
                continue
            if rns is not None and rns != ns:
                continue
            raise errors.forbidden(t.plural, t.group, name, verb, ns, self.user, sub)

    def _dispatch(self, rec: RecordedRequest) -> _Response:
        # Authentication: bearer token.  https://kubernetes.io/docs/reference/access-authn-authz/authentication/
        path = rec.path.rstrip("/") or "/"
        if path in ("/healthz", "/livez", "/readyz"):
            return _Response(200, raw=b"ok", ctype="text/plain; charset=utf-8")
        auth = rec.headers.get("authorization", "")
        if auth != f"Bearer {self.token}":
            raise errors.unauthorized()
        if path == "/version":
            return _Response(200, VERSION_INFO)
        route = _parse_route(rec.path)
        if not route:
            raise errors.unknown_path()
        accept = rec.headers.get("accept", "")
        store = self.store
        if route[0] in ("api", "apis"):
            if rec.method != "GET":
                raise errors.ApiError(405, "MethodNotAllowed", "the server does not allow this method")
            with store.lock:
                store.tick()
                if self.aggregated_discovery and wants_media(accept, "APIGroupDiscoveryList",
                                                             "apidiscovery.k8s.io", "v2"):
                    # https://kubernetes.io/docs/concepts/overview/kubernetes-api/#aggregated-discovery
                    return _Response(200, aggregated_discovery(store.registry, core=route[0] == "api"),
                                     ctype=AGGREGATED_DISCOVERY_MEDIA, headers={"Vary": "Accept"})
                if route[0] == "api":
                    return _Response(200, api_versions(f"{self._host}:{self.port}"), headers={"Vary": "Accept"})
                return _Response(200, api_group_list(store.registry), headers={"Vary": "Accept"})
        if route[0] == "group":
            with store.lock:
                store.tick()
                doc = api_group(store.registry, route[1])
            if doc is None or rec.method != "GET":
                raise errors.unknown_path()
            return _Response(200, doc)
        if route[0] == "resources":
            with store.lock:
                store.tick()
                doc = api_resource_list(store.registry, route[1], route[2])
            if doc is None or rec.method != "GET":
                raise errors.unknown_path()
            return _Response(200, doc)
        return self._dispatch_object(rec, route, accept)

    def _dispatch_object(self, rec: RecordedRequest, route, accept: str) -> _Response:
        _, group, version, ns, resource, name, sub = route
        store = self.store
        t = store.resolve(group, version, resource)
        # Unknown (or not yet Established) resources 404, as do scope mismatches.
        if t is None or (ns is not None and not t.namespaced) or (t.namespaced and ns is None and name is not None):
            raise errors.unknown_path()
        if sub and (sub != "status" or not t.status_subresource or name is None):
            raise errors.unknown_path()
        q, m = rec.query, rec.method
        scope_ns = ns if t.namespaced else None

        if m == "GET":
            if name is None:
                if _first(q, "watch") in ("true", "1"):
                    self._check_forbidden("watch", t, scope_ns, None)
                    raise errors.ApiError(405, "MethodNotAllowed", "watch is not supported by the fake API server")
                self._check_forbidden("list", t, scope_ns, None)
                limit = _first(q, "limit")
                try:
                    limit = int(limit) if limit else None
                except ValueError:
                    raise errors.bad_request(f"invalid limit {limit!r}") from None
                doc = store.list(t, scope_ns, _first(q, "labelSelector"), _first(q, "fieldSelector"), limit,
                                 _first(q, "continue"))
                if wants_media(accept, "PartialObjectMetadataList", "meta.k8s.io"):
                    return _Response(200, _partial_metadata(doc, True),
                                     ctype="application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1")
                return _Response(200, doc)
            self._check_forbidden("get", t, scope_ns, name, sub)
            doc = store.get(t, scope_ns, name)
            if wants_media(accept, "PartialObjectMetadata", "meta.k8s.io"):
                return _Response(200, _partial_metadata(doc, False),
                                 ctype="application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1")
            return _Response(200, doc)

        manager = _first(q, "fieldManager")
        default_manager = manager or (rec.headers.get("user-agent") or "unknown").split("/")[0] or "unknown"

        if m == "POST":
            if name is not None:
                raise errors.ApiError(405, "MethodNotAllowed", "the server does not allow this method")
            self._check_forbidden("create", t, scope_ns, None)
            body = self._json_body(rec)
            return _Response(201, store.create(t, scope_ns, body, default_manager, _dry_run(q.get("dryRun"))))

        if m == "PUT":
            if name is None:
                raise errors.ApiError(405, "MethodNotAllowed", "the server does not allow this method")
            self._check_forbidden("update", t, scope_ns, name, sub)
            body = self._json_body(rec)
            return _Response(200, store.update(t, scope_ns, name, body, default_manager,
                                               _dry_run(q.get("dryRun")), sub))

        if m == "PATCH":
            if name is None:
                raise errors.ApiError(405, "MethodNotAllowed", "the server does not allow this method")
            ctype = (rec.headers.get("content-type") or "").split(";")[0].strip().lower()
            kind = PATCH_TYPES.get(ctype)
            if kind is None:
                raise errors.ApiError(415, "UnsupportedMediaType",
                                      f'the body of the request was in an unknown format - accepted media types '
                                      f'include: {", ".join(PATCH_TYPES)}')
            self._check_forbidden("patch", t, scope_ns, name, sub)
            if kind == "apply":
                # Apply creates when absent, which needs the create verb too.
                # https://kubernetes.io/docs/reference/using-api/server-side-apply/#using-server-side-apply-in-a-controller
                if not store.exists(t, scope_ns, name):
                    self._check_forbidden("create", t, scope_ns, None)
                body = self._yaml_body(rec)
            else:
                body = self._json_body(rec)
            force = (_first(q, "force") or "false").lower() in ("true", "1", "t")
            if force and kind != "apply":
                raise errors.bad_request("force is only allowed for apply patches")
            doc, code = store.patch(t, scope_ns, name, "merge" if kind == "strategic" else kind, body,
                                    manager if kind == "apply" else default_manager, force,
                                    _dry_run(q.get("dryRun")), sub)
            return _Response(code, doc)

        if m == "DELETE":
            options = (self._json_body(rec) if rec.body.strip() else None) or {}
            if not isinstance(options, dict):
                raise errors.bad_request("DeleteOptions must be an object")
            policy = options.get("propagationPolicy") or _first(q, "propagationPolicy")
            orphan = options.get("orphanDependents", _first(q, "orphanDependents"))
            if policy is None and orphan in (True, "true"):
                policy = "Orphan"
            rec.propagation_policy = policy
            if policy is not None and policy not in PROPAGATION_POLICIES:
                raise errors.ApiError(422, "Invalid", f'DeleteOptions.propagationPolicy: Unsupported value: '
                                                      f'"{policy}": supported values: "Background", "Foreground", '
                                                      f'"Orphan"')
            # The real apiserver decodes DeleteOptions from the body when there is one and then ignores
            # the query parameters (seen on kube-apiserver v1.37: `?dryRun=All` with a body deletes for real).
            dry = _dry_run(list(options.get("dryRun") or []) if rec.body.strip() else q.get("dryRun"))
            if name is None:
                self._check_forbidden("deletecollection", t, scope_ns, None)
                return _Response(200, store.delete_collection(t, scope_ns, _first(q, "labelSelector"),
                                                              _first(q, "fieldSelector"), options, dry))
            self._check_forbidden("delete", t, scope_ns, name)
            doc, code = store.delete(t, scope_ns, name, options, dry)
            return _Response(code, doc)

        raise errors.ApiError(405, "MethodNotAllowed", "the server does not allow this method")

    @staticmethod
    def _json_body(rec: RecordedRequest):
        try:
            return json.loads(rec.body or b"null")
        except ValueError as e:
            raise errors.bad_request(f"the body of the request could not be decoded as JSON: {e}") from None

    @staticmethod
    def _yaml_body(rec: RecordedRequest):
        # Apply bodies are YAML (JSON is accepted as YAML).
        # https://kubernetes.io/docs/reference/using-api/server-side-apply/#api-implementation
        try:
            return json.loads(rec.body)
        except ValueError:
            pass
        try:
            return yaml.safe_load(rec.body)
        except yaml.YAMLError as e:
            raise errors.bad_request(f"error decoding YAML: {e}") from None
