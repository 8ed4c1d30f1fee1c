"""API errors as ``Status`` objects, shaped like the real apiserver's.

https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/status/
https://github.com/kubernetes/community/blob/master/contributors/devel/sig-architecture/api-conventions.md#response-status-kind
"""

from __future__ import annotations

import json


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: dict | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message
        self.details = details
        self.headers = headers or {}

    def status(self) -> dict:
        doc = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": self.message, "reason": self.reason, "code": self.code}
        if self.details is not None:
            doc["details"] = self.details
        return doc


def status_success(details: dict) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}


def _details(t, name: str | None) -> dict:
    d = {}
    if name:
        d["name"] = name
    d["group"] = t.group
    d["kind"] = t.plural  # the apiserver puts the resource (plural) here for NotFound/AlreadyExists/Conflict
    return d


def not_found(t, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{t.qualified_resource} "{name}" not found', _details(t, name))


def namespace_not_found(ns: str) -> ApiError:
    # NamespaceLifecycle admission rejects writes into a namespace that does not exist.
    # https://kubernetes.io/docs/reference/access-authn-authz/admission-controllers/#namespacelifecycle
    return ApiError(404, "NotFound", f'namespaces "{ns}" not found', {"name": ns, "group": "", "kind": "namespaces"})


def namespace_terminating(ns: str) -> ApiError:
    # NamespaceLifecycle: no new objects in a namespace that is being deleted.
    return ApiError(403, "Forbidden",
                    f"unable to create new content in namespace {ns} because it is being terminated",
                    {"name": ns, "group": "", "kind": "namespaces",
                     "causes": [{"reason": "NamespaceTerminating",
                                 "message": f"namespace {ns} is being terminated", "field": "metadata.namespace"}]})


def unknown_path() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def already_exists(t, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{t.qualified_resource} "{name}" already exists', _details(t, name))


def conflict(t, name: str, why: str) -> ApiError:
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {t.qualified_resource} "{name}": {why}',
                    _details(t, name))


MODIFIED = "the object has been modified; please apply your changes to the latest version and try again"


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def invalid(t, name: str, causes: list[dict]) -> ApiError:
    """422 Invalid; causes are {reason, message, field} (field without a leading dot)."""
    parts = [f"{c['field']}: {c['message']}" for c in causes]
    summary = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    return ApiError(422, "Invalid", f'{t.qualified_kind} "{name}" is invalid: {summary}',
                    {"name": name, "group": t.group, "kind": t.kind, "causes": causes})


def forbidden(t_plural: str, group: str, name: str | None, verb: str, namespace: str | None, user: str,
              subresource: str = "") -> ApiError:
    # RBAC denial message: https://kubernetes.io/docs/reference/access-authn-authz/authorization/
    res = f"{t_plural}.{group}" if group else t_plural
    rname = f"{t_plural}/{subresource}" if subresource else t_plural
    where = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    subject = f'{res} "{name}"' if name else res
    msg = f'{subject} is forbidden: User "{user}" cannot {verb} resource "{rname}" in API group "{group}" {where}'
    details = {"group": group, "kind": t_plural}
    if name:
        details = {"name": name, **details}
    return ApiError(403, "Forbidden", msg, details)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
            406: "NotAcceptable", 409: "Conflict", 410: "Expired", 413: "RequestEntityTooLarge",
            415: "UnsupportedMediaType", 422: "Invalid", 429: "TooManyRequests", 500: "InternalError",
            503: "ServiceUnavailable", 504: "Timeout"}


def for_code(code: int, message: str | None = None, retry_after: float | None = None) -> ApiError:
    """A generic Status for an injected fault with this HTTP code."""
    reason = _REASONS.get(code, "InternalError" if code >= 500 else "Unknown")
    details = None
    if retry_after is not None:
        # StatusDetails.retryAfterSeconds accompanies 429/503 with Retry-After
        details = {"retryAfterSeconds": int(float(retry_after))}
    default = {429: "Too many requests, please try again later.",
               503: "the server is currently unable to handle the request",
               504: "the server was unable to return a response in the time allotted"}.get(code, f"fault injected: {code}")
    return ApiError(code, reason, message or default, details)


def encode(doc) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()
