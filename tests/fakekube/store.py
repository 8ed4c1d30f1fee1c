"""The object store of the fake API server: CRUD, apply, deletion, CRDs, paging.

Objects are indexed by (group, resource) -> namespace -> name ("" namespace for cluster-scoped), so a
GET is a dict lookup and a LIST touches only the objects of one resource (one namespace when given).

Stored objects are never mutated in place: every write builds a new dict and swaps it in.  Readers may
therefore hand stored objects to the JSON encoder outside the lock without copying them.

One re-entrant lock guards the store; nothing sleeps while holding it.
"""

from __future__ import annotations

import base64
import bisect
import binascii
import json
import random
import threading
import time
import uuid

from . import errors
from .apply import (ApplyConflict, PatchError, apply, drop_nulls, immutable_violations,
                    jcopy, json_patch, merge_patch, now_rfc3339, record_update, without_times)
from .resources import CRD_GROUP, CRD_PLURAL, Registry, ResourceType, crd_types
from .selectors import parse_field_selector, parse_label_selector

INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_GENERATE_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # apiserver's name generator alphabet


class Store:
    def __init__(self):
        self.lock = threading.RLock()
        self.registry = Registry()
        self.rv = 0
        self.objects: dict = {}  # (group, plural) -> {namespace: {name: obj}}
        self.crd_established_delay = 0.0
        self.namespace_finalization = "immediate"  # or "terminating"
        self._pending_crds: dict = {}  # CRD name -> monotonic time when it becomes Established
        self._next_ip = 10
        ns_type = self.registry.gvk("v1", "Namespace")
        for ns in INITIAL_NAMESPACES:
            self.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}, "kube-apiserver",
                      "Update", _type=ns_type)

    # ------------------------------------------------------------------ basics
    def _bump(self) -> str:
        self.rv += 1
        return str(self.rv)

    def _bucket(self, t: ResourceType, ns: str | None) -> dict:
        return self.objects.setdefault(t.key, {}).setdefault(ns or "", {})

    def _live(self, t: ResourceType, ns: str | None, name: str):
        return self.objects.get(t.key, {}).get(ns or "", {}).get(name)

    @staticmethod
    def _view(t: ResourceType, obj: dict) -> dict:
        # CRD versions share storage; with no conversion webhook only apiVersion differs.
        # https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definition-versioning/#conversion-strategy-none
        if obj.get("apiVersion") != t.api_version:
            return {**obj, "apiVersion": t.api_version}
        return obj

    def resolve(self, group: str, version: str, plural: str) -> ResourceType | None:
        with self.lock:
            self.tick()
            return self.registry.gvr(group, version, plural)

    def exists(self, t: ResourceType, ns: str | None, name: str) -> bool:
        with self.lock:
            return self._live(t, ns, name) is not None

    # ------------------------------------------------------------------ CRDs
    def tick(self) -> None:
        """CRDs whose establishing delay has passed become Established and get served."""
        if not self._pending_crds:
            return
        now = time.monotonic()
        crd_t = self.registry.gvr(CRD_GROUP, "v1", CRD_PLURAL)
        for name, when in list(self._pending_crds.items()):
            if when > now:
                continue
            del self._pending_crds[name]
            live = self._live(crd_t, None, name)
            if live is None:
                continue
            for t in crd_types(live):
                self.registry.add(t)
            # The naming and establishing controllers set these conditions.
            # https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#create-a-customresourcedefinition
            new = jcopy(live)
            stamp = now_rfc3339()
            status = new.setdefault("status", {})
            status["acceptedNames"] = jcopy((live.get("spec") or {}).get("names") or {})
            status["conditions"] = [
                {"type": "NamesAccepted", "status": "True", "lastTransitionTime": stamp, "reason": "NoConflicts",
                 "message": "no conflicts found"},
                {"type": "Established", "status": "True", "lastTransitionTime": stamp,
                 "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"},
            ]
            new["metadata"]["resourceVersion"] = self._bump()
            self._bucket(crd_t, None)[name] = new

    @staticmethod
    def _crd_established(crd: dict) -> bool:
        return any(c.get("type") == "Established" and c.get("status") == "True"
                   for c in (crd.get("status") or {}).get("conditions") or [])

    def _crd_written(self, crd: dict) -> None:
        name = crd["metadata"]["name"]
        if self._crd_established(crd):
            self.registry.remove_crd(name)
            for t in crd_types(crd):
                self.registry.add(t)
            self._pending_crds.pop(name, None)
        elif name not in self._pending_crds:
            self._pending_crds[name] = time.monotonic() + self.crd_established_delay

    def _crd_removed(self, crd: dict) -> None:
        # Deleting a CRD deletes its custom objects.
        # https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#delete-a-customresourcedefinition
        name = crd["metadata"]["name"]
        self._pending_crds.pop(name, None)
        self.registry.remove_crd(name)
        spec = crd.get("spec") or {}
        self.objects.pop((spec.get("group", ""), (spec.get("names") or {}).get("plural", "")), None)

    @staticmethod
    def _validate_crd(t: ResourceType, crd: dict) -> None:
        # https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#create-a-customresourcedefinition
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        name = crd["metadata"]["name"]
        causes = []
        want = f"{names.get('plural', '')}.{spec.get('group', '')}"
        if name != want:
            causes.append({"reason": "FieldValueInvalid", "field": "metadata.name",
                           "message": f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group'})
        if not names.get("kind"):
            causes.append({"reason": "FieldValueRequired", "field": "spec.names.kind", "message": "Required value"})
        if not spec.get("versions"):
            causes.append({"reason": "FieldValueRequired", "field": "spec.versions",
                           "message": "Invalid value: must have exactly one version marked as storage version"})
        if causes:
            raise errors.invalid(t, name, causes)

    # ------------------------------------------------------------------ admission & write pipeline
    def _admit_namespace(self, t: ResourceType, ns: str | None) -> None:
        # NamespaceLifecycle admission.
        # https://kubernetes.io/docs/reference/access-authn-authz/admission-controllers/#namespacelifecycle
        if not t.namespaced:
            return
        live = self.objects.get(("", "namespaces"), {}).get("", {}).get(ns)
        if live is None:
            raise errors.namespace_not_found(ns)
        if live["metadata"].get("deletionTimestamp"):
            raise errors.namespace_terminating(ns)

    @staticmethod
    def _secret_string_data(obj: dict) -> None:
        # stringData is write-only: merged into data (base64) and never stored.
        # https://kubernetes.io/docs/concepts/configuration/secret/#restriction-names-data
        sd = obj.pop("stringData", None)
        if isinstance(sd, dict):
            data = obj.get("data") if isinstance(obj.get("data"), dict) else {}
            for k, v in sd.items():
                data[k] = base64.b64encode(str(v).encode()).decode()
            obj["data"] = data

    def _defaults_on_create(self, t: ResourceType, obj: dict) -> None:
        if t.group == "" and t.kind == "Namespace":
            # https://kubernetes.io/docs/concepts/overview/working-with-objects/namespaces/ (phase Active,
            # spec.finalizers ["kubernetes"] that the namespace controller clears when the namespace is empty)
            obj.setdefault("status", {})["phase"] = "Active"
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        elif t.group == "" and t.kind == "Service":
            # ClusterIP allocation for ClusterIP/NodePort/LoadBalancer services (headless "None" kept).
            # https://kubernetes.io/docs/concepts/services-networking/cluster-ip-allocation/
            spec = obj.setdefault("spec", {})
            if spec.get("type", "ClusterIP") != "ExternalName" and not spec.get("clusterIP"):
                n = self._next_ip
                self._next_ip += 1
                spec["clusterIP"] = f"10.96.{n // 250}.{n % 250 + 1}"
            if spec.get("clusterIP") and "clusterIPs" not in spec:
                spec["clusterIPs"] = [spec["clusterIP"]]
        elif t.group == CRD_GROUP and t.plural == CRD_PLURAL:
            storage = [v["name"] for v in (obj.get("spec") or {}).get("versions") or [] if v.get("storage")]
            obj.setdefault("status", {"acceptedNames": {"plural": "", "kind": ""}, "conditions": [],
                                      "storedVersions": storage})

    @staticmethod
    def _keep_allocated(live: dict, new: dict) -> None:
        # An update that leaves clusterIP empty keeps the allocated one (the apiserver's service storage
        # carries allocated values over, "patchAllocatedValues").
        # https://kubernetes.io/docs/concepts/services-networking/cluster-ip-allocation/
        old_spec, spec = live.get("spec") or {}, new.get("spec")
        if not isinstance(spec, dict) or spec.get("type") == "ExternalName" or not old_spec.get("clusterIP"):
            return
        if not spec.get("clusterIP"):
            spec["clusterIP"] = old_spec["clusterIP"]
        if not spec.get("clusterIPs") and old_spec.get("clusterIPs"):
            spec["clusterIPs"] = list(old_spec["clusterIPs"])

    def _write(self, t: ResourceType, ns: str | None, name: str, live: dict | None, new: dict, *,
               dry_run: bool = False, admin: bool = False, subresource: str = "") -> tuple[dict, bool]:
        """Finish and store ``new`` (owned by the caller).  Returns (stored object, changed)."""
        new["apiVersion"], new["kind"] = t.api_version, t.kind
        meta = new.setdefault("metadata", {})
        meta["name"] = name
        if t.namespaced:
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        if t.group == "" and t.kind == "Secret":
            self._secret_string_data(new)
            new.setdefault("type", "Opaque")  # https://kubernetes.io/docs/concepts/configuration/secret/#opaque-secrets
        if t.group == "" and t.kind == "Namespace":
            # The apiserver always sets this label on namespaces.
            # https://kubernetes.io/docs/reference/labels-annotations-taints/#kubernetes-io-metadata-name
            meta["labels"] = {**(meta.get("labels") or {}), "kubernetes.io/metadata.name": name}
        if not meta.get("managedFields"):
            meta.pop("managedFields", None)
        if live is not None:
            for k in ("uid", "creationTimestamp", "generation", "resourceVersion", "deletionTimestamp",
                      "deletionGracePeriodSeconds"):
                if k in live["metadata"]:
                    meta[k] = live["metadata"][k]
                else:
                    meta.pop(k, None)
            if t.status_subresource and not admin and subresource != "status":
                # The main resource ignores status changes when a status subresource exists.
                # https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#status-subresource
                if "status" in live:
                    new["status"] = live["status"]
                else:
                    new.pop("status", None)
            if t.group == "" and t.kind == "Service":
                self._keep_allocated(live, new)
            if t.group == "" and t.kind == "Namespace" and "finalizers" in (live.get("spec") or {}):
                # spec.finalizers changes only through the /finalize subresource (namespace strategy).
                # https://kubernetes.io/docs/tasks/administer-cluster/namespaces/#deleting-a-namespace
                new["spec"] = {**(new.get("spec") or {}), "finalizers": live["spec"]["finalizers"]}
            if not admin:
                causes = immutable_violations(t.group, t.kind, live, new)
                if causes:
                    raise errors.invalid(t, name, causes)
        else:
            for k in ("uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp",
                      "deletionGracePeriodSeconds"):
                meta.pop(k, None)
            if t.status_subresource and not admin:
                new.pop("status", None)  # status is not settable on create
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_rfc3339()
            meta["generation"] = 1
            self._defaults_on_create(t, new)
        if t.group == CRD_GROUP and t.plural == CRD_PLURAL:
            self._validate_crd(t, new)

        if live is not None and without_times(new) == without_times(live):
            # A write that changes nothing is a no-op: resourceVersion is not bumped.
            # https://kubernetes.io/docs/reference/using-api/server-side-apply/ (no-op applies do not write)
            return live, False

        if live is not None:
            strip = lambda o: {k: v for k, v in o.items() if k not in ("metadata", "status")}  # noqa: E731
            if strip(new) != strip(live):
                # metadata.generation tracks changes to the desired state (spec), not metadata/status.
                # https://kubernetes.io/docs/reference/using-api/api-concepts/#generation
                meta["generation"] = int(live["metadata"].get("generation", 1)) + 1
            if meta.get("deletionTimestamp") and not meta.get("finalizers") and t.plural != "namespaces":
                # The last finalizer removed from a deleting object: it is gone.
                # https://kubernetes.io/docs/concepts/overview/working-with-objects/finalizers/
                if not dry_run:
                    self._remove(t, ns, name)
                return new, True
        if dry_run:
            meta["resourceVersion"] = live["metadata"]["resourceVersion"] if live is not None else ""
            return new, True
        meta["resourceVersion"] = self._bump()
        self._bucket(t, ns)[name] = new
        if t.group == CRD_GROUP and t.plural == CRD_PLURAL:
            self._crd_written(new)
        return new, True

    def _remove(self, t: ResourceType, ns: str | None, name: str) -> dict | None:
        obj = self.objects.get(t.key, {}).get(ns or "", {}).pop(name, None)
        if obj is None:
            return None
        if t.group == "" and t.plural == "namespaces":
            # The namespace controller deletes everything in a deleted namespace.
            # https://kubernetes.io/docs/concepts/overview/working-with-objects/namespaces/
            for key, buckets in self.objects.items():
                if key != t.key:
                    buckets.pop(name, None)
        elif t.group == CRD_GROUP and t.plural == CRD_PLURAL:
            self._crd_removed(obj)
        return obj

    # ------------------------------------------------------------------ body checks
    @staticmethod
    def _check_body(t: ResourceType, ns: str | None, name: str | None, body, *, strict_kind: bool) -> dict:
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request must be an object")
        av, kind = body.get("apiVersion"), body.get("kind")
        if strict_kind and (not av or not kind):
            raise errors.bad_request("apiVersion and kind must be set in the applied configuration")
        if (av and av != t.api_version) or (kind and kind != t.kind):
            # https://kubernetes.io/docs/reference/using-api/api-concepts/ (the body must match the endpoint)
            raise errors.bad_request(f"the API version in the data ({av}) and kind ({kind}) do not match the "
                                     f"expected {t.api_version}, {t.kind}")
        meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
        if name is not None and meta.get("name") not in (None, "", name) or (strict_kind and not meta.get("name")):
            raise errors.bad_request(f"the name of the object ({meta.get('name')}) does not match the name on "
                                     f"the URL ({name})")
        if t.namespaced and meta.get("namespace") not in (None, "", ns):
            raise errors.bad_request("the namespace of the provided object does not match the namespace sent on "
                                     "the request")
        return meta

    # ------------------------------------------------------------------ read
    def get(self, t: ResourceType, ns: str | None, name: str) -> dict:
        with self.lock:
            self.tick()
            obj = self._live(t, ns, name)
            if obj is None:
                raise errors.not_found(t, name)
            return self._view(t, obj)

    def _scan(self, t: ResourceType, ns: str | None) -> list:
        """Objects of one resource (one namespace, or all), sorted by (namespace, name)."""
        buckets = self.objects.get(t.key, {})
        names = [ns or ""] if (ns or not t.namespaced) else sorted(buckets)
        out = []
        for n in names:
            b = buckets.get(n or "", {})
            out.extend(b[k] for k in sorted(b))
        return out

    def list(self, t: ResourceType, ns: str | None, label_selector: str | None = None,
             field_selector: str | None = None, limit: int | None = None, cont: str | None = None) -> dict:
        """A <Kind>List; `limit`/`continue` paging with an opaque token.

        https://kubernetes.io/docs/reference/using-api/api-concepts/#retrieving-large-results-sets-in-chunks
        """
        lsel, fsel = parse_label_selector(label_selector), parse_field_selector(field_selector)
        start = None
        if cont:
            try:
                token = json.loads(base64.urlsafe_b64decode(cont.encode()))
                start, list_rv = tuple(token["start"]), str(token["rv"])
            except (ValueError, KeyError, TypeError, binascii.Error):
                raise errors.bad_request("continue key is not valid: invalid continue token") from None
        with self.lock:
            self.tick()
            objs = self._scan(t, ns)
            rv = str(self.rv)
        if lsel:
            objs = [o for o in objs if lsel((o.get("metadata") or {}).get("labels") or {})]
        if fsel:
            objs = [o for o in objs if fsel(o)]
        if start is not None:
            keys = [(o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in objs]
            objs = objs[bisect.bisect_right(keys, start):]
            rv = list_rv
        meta = {"resourceVersion": rv}
        if limit and limit > 0 and len(objs) > limit:
            last = objs[limit - 1]["metadata"]
            token = {"rv": int(rv), "start": [last.get("namespace", ""), last["name"]]}
            meta["continue"] = base64.urlsafe_b64encode(json.dumps(token).encode()).decode()
            if not lsel and not fsel:
                meta["remainingItemCount"] = len(objs) - limit
            objs = objs[:limit]
        return {"kind": f"{t.kind}List", "apiVersion": t.api_version, "metadata": meta,
                "items": [self._view(t, o) for o in objs]}

    # ------------------------------------------------------------------ create / update / patch
    def create(self, t: ResourceType, ns: str | None, body, manager: str, dry_run: bool = False) -> dict:
        meta = self._check_body(t, ns, None, body, strict_kind=False)
        name = meta.get("name")
        with self.lock:
            self.tick()
            if not name:
                gen = meta.get("generateName")
                if not gen:
                    raise errors.invalid(t, "", [{"reason": "FieldValueRequired", "field": "metadata.name",
                                                  "message": "Required value: name or generateName is required"}])
                # https://kubernetes.io/docs/reference/using-api/api-concepts/#generated-values
                for _ in range(100):
                    name = gen + "".join(random.choice(_GENERATE_CHARS) for _ in range(5))
                    if self._live(t, ns, name) is None:
                        break
            self._admit_namespace(t, ns)
            if self._live(t, ns, name) is not None:
                raise errors.already_exists(t, name)
            new = jcopy(body)
            new.setdefault("metadata", {})["name"] = name
            if t.group == "" and t.kind == "Secret":
                self._secret_string_data(new)
            record_update(None, new, manager, t.api_version, t.status_subresource)
            stored, _ = self._write(t, ns, name, None, new, dry_run=dry_run)
            return self._view(t, stored)

    def update(self, t: ResourceType, ns: str | None, name: str, body, manager: str, dry_run: bool = False,
               subresource: str = "") -> dict:
        """PUT: full replacement, optimistic concurrency on metadata.resourceVersion.

        https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions
        """
        meta = self._check_body(t, ns, name, body, strict_kind=False)
        with self.lock:
            self.tick()
            live = self._live(t, ns, name)
            if live is None:
                raise errors.not_found(t, name)
            rv = meta.get("resourceVersion")
            if rv and rv != live["metadata"]["resourceVersion"]:
                raise errors.conflict(t, name, errors.MODIFIED)
            new = jcopy(body)
            if subresource == "status":
                status = new.get("status")
                new = jcopy(live)
                new["status"] = status if status is not None else {}
            elif t.group == "" and t.kind == "Secret":
                self._secret_string_data(new)
            record_update(live, new, manager, t.api_version, t.status_subresource, subresource)
            stored, _ = self._write(t, ns, name, live, new, dry_run=dry_run, subresource=subresource)
            return self._view(t, stored)

    def patch(self, t: ResourceType, ns: str | None, name: str, patch_type: str, body, manager: str | None,
              force: bool = False, dry_run: bool = False, subresource: str = "") -> tuple[dict, int]:
        """PATCH: apply (server-side apply), merge, strategic-merge (approximated as merge) or JSON patch."""
        with self.lock:
            self.tick()
            live = self._live(t, ns, name)
            if patch_type == "apply":
                return self._apply(t, ns, name, live, body, manager, force, dry_run, subresource)
            if live is None:
                raise errors.not_found(t, name)
            try:
                if patch_type == "json":
                    new = json_patch(live, body)
                else:
                    if not isinstance(body, dict):
                        raise PatchError("a merge patch must be a JSON object")
                    new = merge_patch(live, body)
            except PatchError as e:
                raise errors.ApiError(422 if patch_type == "json" else 400,
                                      "Invalid" if patch_type == "json" else "BadRequest", str(e)) from None
            if not isinstance(new, dict):
                raise errors.bad_request("the patch result is not an object")
            meta = self._check_body(t, ns, name, new, strict_kind=False)
            rv = meta.get("resourceVersion")
            if rv and rv != live["metadata"]["resourceVersion"]:
                raise errors.conflict(t, name, errors.MODIFIED)
            if subresource == "status":
                status = new.get("status")
                new = jcopy(live)
                new["status"] = status if status is not None else {}
            record_update(live, new, manager or "unknown", t.api_version, t.status_subresource, subresource)
            stored, _ = self._write(t, ns, name, live, new, dry_run=dry_run, subresource=subresource)
            return self._view(t, stored), 200

    def _apply(self, t, ns, name, live, body, manager, force, dry_run, subresource, admin=False):
        # https://kubernetes.io/docs/reference/using-api/server-side-apply/
        if not manager:
            raise errors.bad_request("PATCH requests using the apply content type must set fieldManager")
        meta = self._check_body(t, ns, name, body, strict_kind=True)
        if live is None and subresource:
            raise errors.not_found(t, name)
        if live is None and not admin:
            self._admit_namespace(t, ns)
        rv = meta.get("resourceVersion")
        if rv and live is not None and rv != live["metadata"]["resourceVersion"]:
            raise errors.conflict(t, name, errors.MODIFIED)
        applied = drop_nulls(body)
        if t.group == "" and t.kind == "Secret":
            applied = jcopy(applied)
            self._secret_string_data(applied)
        try:
            new = apply(live, applied, manager, t.api_version, force,
                        status_separate=t.status_subresource and not admin, subresource=subresource)
        except ApplyConflict as c:
            # https://kubernetes.io/docs/reference/using-api/server-side-apply/#conflicts
            raise errors.ApiError(409, "Conflict", c.message,
                                  {"name": name, "group": t.group, "kind": t.plural, "causes": c.causes}) from None
        stored, _ = self._write(t, ns, name, live, new, dry_run=dry_run, admin=admin, subresource=subresource)
        return self._view(t, stored), (201 if live is None else 200)

    # ------------------------------------------------------------------ delete
    def delete(self, t: ResourceType, ns: str | None, name: str, options: dict | None = None,
               dry_run: bool = False) -> tuple[dict, int]:
        """DELETE.  Finalizers defer removal; propagationPolicy is accepted (no garbage collector here).

        https://kubernetes.io/docs/concepts/overview/working-with-objects/finalizers/
        https://kubernetes.io/docs/concepts/architecture/garbage-collection/#cascading-deletion
        """
        options = options or {}
        with self.lock:
            self.tick()
            live = self._live(t, ns, name)
            if live is None:
                raise errors.not_found(t, name)
            pre = options.get("preconditions") or {}
            lm = live["metadata"]
            if pre.get("uid") and pre["uid"] != lm.get("uid"):
                raise errors.conflict(t, name, f"Precondition failed: UID in precondition: {pre['uid']}, "
                                               f"UID in object meta: {lm.get('uid')}")
            if pre.get("resourceVersion") and pre["resourceVersion"] != lm.get("resourceVersion"):
                raise errors.conflict(t, name, "Precondition failed: ResourceVersion in precondition: "
                                               f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                                               f"{lm.get('resourceVersion')}")
            is_ns = t.group == "" and t.plural == "namespaces"
            terminating = is_ns and self.namespace_finalization == "terminating"
            if lm.get("finalizers") or terminating:
                if lm.get("deletionTimestamp"):
                    return self._view(t, live), 200
                new = jcopy(live)
                new["metadata"]["deletionTimestamp"] = now_rfc3339()
                new["metadata"]["deletionGracePeriodSeconds"] = 0
                if is_ns:
                    # Namespaces go Terminating until the namespace controller empties them.
                    # https://kubernetes.io/docs/tasks/administer-cluster/namespaces/#deleting-a-namespace
                    new.setdefault("status", {})["phase"] = "Terminating"
                if not dry_run:
                    new["metadata"]["resourceVersion"] = self._bump()
                    self._bucket(t, ns)[name] = new
                return self._view(t, new), 200
            if not dry_run:
                self._remove(t, ns, name)
            if is_ns:
                # The response shows the namespace as the apiserver does: Terminating, being finalized.
                gone = jcopy(live)
                gone["metadata"]["deletionTimestamp"] = now_rfc3339()
                gone.setdefault("status", {})["phase"] = "Terminating"
                return gone, 200
            if t.returns_deleted:
                return self._view(t, live), 200
            return errors.status_success({"name": name, "group": t.group, "kind": t.plural,
                                          "uid": lm.get("uid")}), 200

    def delete_collection(self, t: ResourceType, ns: str | None, label_selector: str | None,
                          field_selector: str | None, options: dict | None, dry_run: bool) -> dict:
        with self.lock:
            doc = self.list(t, ns, label_selector, field_selector)
            for o in doc["items"]:
                try:
                    self.delete(t, o["metadata"].get("namespace"), o["metadata"]["name"],
                                {k: v for k, v in (options or {}).items() if k != "preconditions"}, dry_run)
                except errors.ApiError:
                    pass
            return doc

    # ------------------------------------------------------------------ direct (Python API) access
    def type_for(self, api_version: str, kind: str) -> ResourceType | None:
        with self.lock:
            self.tick()
            return self.registry.gvk(api_version, kind)

    def seed(self, obj: dict, manager: str, operation: str, _type: ResourceType | None = None) -> dict:
        """Store an object directly (no admission, no immutability checks, status kept)."""
        with self.lock:
            self.tick()
            t = _type or self.registry.gvk(obj.get("apiVersion", ""), obj.get("kind", ""))
            if t is None:
                raise ValueError(f"unknown (or not yet established) kind {obj.get('apiVersion')} {obj.get('kind')}")
            meta = obj.get("metadata") or {}
            name = meta.get("name")
            if not name:
                raise ValueError("metadata.name is required")
            ns = (meta.get("namespace") or "default") if t.namespaced else None
            live = self._live(t, ns, name)
            if operation == "Apply":
                body = jcopy(obj)
                body["metadata"] = {**meta, "namespace": ns} if ns else {k: v for k, v in meta.items()
                                                                         if k != "namespace"}
                stored, _ = self._apply(t, ns, name, live, body, manager, True, False, "", admin=True)
            else:
                new = jcopy(obj)
                if t.group == "" and t.kind == "Secret":
                    self._secret_string_data(new)
                new.setdefault("metadata", {})
                new["metadata"].pop("managedFields", None)
                record_update(live, new, manager, t.api_version, False)
                stored, _ = self._write(t, ns, name, live, new, admin=True)
            return jcopy(stored)

    def fetch(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict | None:
        with self.lock:
            self.tick()
            t = self.registry.gvk(api_version, kind)
            if t is None:
                return None
            obj = self._live(t, (namespace or "default") if t.namespaced else None, name)
            return jcopy(self._view(t, obj)) if obj is not None else None

    def fetch_all(self, api_version: str, kind: str, namespace: str | None = None) -> list[dict]:
        with self.lock:
            self.tick()
            t = self.registry.gvk(api_version, kind)
            if t is None:
                return []
            return [jcopy(self._view(t, o)) for o in self._scan(t, namespace if t.namespaced else None)]

    def remove(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict | None:
        with self.lock:
            self.tick()
            t = self.registry.gvk(api_version, kind)
            if t is None:
                return None
            obj = self._remove(t, (namespace or "default") if t.namespaced else None, name)
            if obj is not None:
                self._bump()
            return obj
