"""Field management: server-side apply merge, managedFields, conflicts, immutable fields, patches.

https://kubernetes.io/docs/reference/using-api/server-side-apply/

Approximations (deliberate, documented here once):
* A field path is a tuple of map keys.  Maps merge key by key; **lists are atomic** (replaced whole and
  owned whole), so list-map merge keys (containers by ``name``, ports by ``port``...) are not emulated.
  The real server merges associative lists item by item.
* ``fieldsV1`` uses ``f:<key>`` entries only (no ``k:``/``v:``/``i:`` list-item entries, no ``.`` markers).
* An explicit ``null`` in an applied configuration is dropped (the manager then does not own the field).
* Ownership of an Update (PUT, non-apply PATCH, POST) is the set of fields whose value it changed.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

MISSING = object()

# Fields the server sets, never tracked in managedFields nor taken from applied configs.
# https://kubernetes.io/docs/reference/using-api/server-side-apply/#field-management
SERVER_METADATA = ("uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp",
                   "deletionGracePeriodSeconds", "managedFields", "selfLink")
UNTRACKED_TOP = ("apiVersion", "kind")
UNTRACKED_META = ("name", "namespace") + SERVER_METADATA


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def jcopy(o):
    """Deep copy of JSON-like data (faster than copy.deepcopy)."""
    if isinstance(o, dict):
        return {k: jcopy(v) for k, v in o.items()}
    if isinstance(o, list):
        return [jcopy(v) for v in o]
    return o


def drop_nulls(o):
    if isinstance(o, dict):
        return {k: drop_nulls(v) for k, v in o.items() if v is not None}
    return o


def get_path(obj, path: tuple):
    cur = obj
    for k in path:
        if not isinstance(cur, dict) or k not in cur:
            return MISSING
        cur = cur[k]
    return cur


def set_path(obj: dict, path: tuple, value) -> None:
    cur = obj
    for k in path[:-1]:
        nxt = cur.get(k)
        if not isinstance(nxt, dict):
            nxt = cur[k] = {}
        cur = nxt
    cur[path[-1]] = value


def remove_path(obj: dict, path: tuple) -> None:
    """Delete the field and then any map left empty by it (top-level keys stay)."""
    chain = [obj]
    cur = obj
    for k in path[:-1]:
        cur = cur.get(k) if isinstance(cur, dict) else None
        if not isinstance(cur, dict):
            return
        chain.append(cur)
    if not isinstance(cur, dict) or path[-1] not in cur:
        return
    del cur[path[-1]]
    for depth in range(len(path) - 1, 1, -1):
        if chain[depth]:
            break
        del chain[depth - 1][path[depth - 1]]


def leaf_paths(obj, prefix: tuple = ()) -> set:
    """Field paths of a config: map keys recurse, anything else (incl. lists and empty maps) is a leaf."""
    out = set()
    if isinstance(obj, dict) and obj:
        for k, v in obj.items():
            out |= leaf_paths(v, prefix + (k,))
    elif prefix:
        out.add(prefix)
    return out


def tracked(obj: dict, status_separate: bool, subresource: str = "") -> dict:
    """The part of an object whose fields are tracked for a main-resource or /status write."""
    if subresource == "status":
        return {"status": obj["status"]} if isinstance(obj.get("status"), dict) else {}
    out = {k: v for k, v in obj.items() if k not in UNTRACKED_TOP}
    if status_separate:
        out.pop("status", None)
    meta = out.get("metadata")
    if isinstance(meta, dict):
        out["metadata"] = {k: v for k, v in meta.items() if k not in UNTRACKED_META}
        if not out["metadata"]:
            del out["metadata"]
    return out


def deep_merge(live: dict, applied: dict) -> None:
    """Apply-merge ``applied`` into ``live`` in place: maps recurse, lists and scalars replace."""
    for k, v in applied.items():
        if isinstance(v, dict) and isinstance(live.get(k), dict):
            deep_merge(live[k], v)
        else:
            live[k] = jcopy(v)


# --------------------------------------------------------------------------------------------
# managedFields <-> field sets

def encode_fields(paths: set) -> dict:
    root: dict = {}
    for p in sorted(paths):
        cur = root
        for k in p:
            cur = cur.setdefault(f"f:{k}", {})
    return root


def decode_fields(fields: dict, prefix: tuple = ()) -> set:
    out = set()
    for k, v in (fields or {}).items():
        if not k.startswith("f:"):
            continue  # k:/v:/i:/"." entries are not produced by this fake
        p = prefix + (k[2:],)
        if v:
            out |= decode_fields(v, p)
        else:
            out.add(p)
    return out


class Managers:
    """The managedFields of one object as {(manager, operation, subresource): [apiVersion, time, paths]}."""

    def __init__(self, entries: list | None):
        self.entries: dict = {}
        for e in entries or []:
            key = (e.get("manager", ""), e.get("operation", "Update"), e.get("subresource", ""))
            self.entries[key] = [e.get("apiVersion", ""), e.get("time", ""),
                                 decode_fields(e.get("fieldsV1") or {})]

    def owned_by_others(self, me: tuple):
        for key, (_av, _t, paths) in self.entries.items():
            if key != me and paths:
                yield key, paths

    def set(self, key: tuple, api_version: str, paths: set) -> None:
        old = self.entries.get(key)
        when = old[1] if old and old[2] == paths and old[0] == api_version else now_rfc3339()
        self.entries[key] = [api_version, when, set(paths)]

    def prune(self, obj: dict) -> None:
        """Drop ownership of fields that no longer exist, and entries left empty."""
        for key in list(self.entries):
            paths = self.entries[key][2]
            paths = {p for p in paths if get_path(obj, p) is not MISSING}
            self.entries[key][2] = paths
            if not paths:
                del self.entries[key]

    def to_list(self) -> list:
        out = []
        for (manager, op, sub), (av, when, paths) in self.entries.items():
            e = {"manager": manager, "operation": op, "apiVersion": av, "time": when,
                 "fieldsType": "FieldsV1", "fieldsV1": encode_fields(paths)}
            if sub:
                e["subresource"] = sub
            out.append(e)
        return out


class _Owned:
    """A field set indexed for overlap queries in O(depth) rather than O(size)."""

    def __init__(self, paths: set):
        self.paths = paths
        self.below: dict = {}  # strict ancestor prefix -> owned paths under it
        for q in paths:
            for i in range(1, len(q)):
                self.below.setdefault(q[:i], []).append(q)

    def overlapping(self, p: tuple) -> list:
        """Owned paths that are p, an ancestor of p, or a descendant of p."""
        hits = [p[:i] for i in range(1, len(p) + 1) if p[:i] in self.paths]
        return hits + self.below.get(p, [])


def _manager_label(key: tuple, api_version: str) -> str:
    # Update managers are printed with their apiVersion, Apply managers by name only (apiserver fieldmanager).
    manager, op, sub = key
    s = json.dumps(manager)
    if sub:
        s += f' with subresource "{sub}"'
    if op == "Update":
        s += f" using {api_version}"
    return s


def fmt_path(p: tuple) -> str:
    return "." + ".".join(p)


class ApplyConflict(Exception):
    def __init__(self, causes: list[dict], message: str):
        super().__init__(message)
        self.causes, self.message = causes, message


def apply(live: dict | None, applied: dict, manager: str, api_version: str, force: bool,
          status_separate: bool, subresource: str = "") -> dict:
    """Server-side apply: returns the merged object with updated managedFields (live is not mutated).

    Raises ApplyConflict when force is false and a field the config sets to a different value is owned by
    another manager.  https://kubernetes.io/docs/reference/using-api/server-side-apply/#conflicts
    """
    me = (manager, "Apply", subresource)
    cfg = tracked(applied, status_separate, subresource)
    cfg_paths = leaf_paths(cfg)
    base = jcopy(live) if live is not None else {}
    mgrs = Managers((live or {}).get("metadata", {}).get("managedFields"))

    # Conflicts with other managers (Apply and Update alike) over fields whose value would change.
    conflicts = []  # (owner key, owned path)
    for key, owned in list(mgrs.owned_by_others(me)):
        index = _Owned(owned)
        for p in cfg_paths:
            hits = index.overlapping(p)
            value = get_path(cfg, p)
            if hits and value != {} and value != get_path(base, p):  # an empty map merges nothing
                conflicts.extend((key, q) for q in hits)
    if conflicts:
        if not force:
            causes, seen = [], set()
            for key, q in conflicts:
                if (key, q) in seen:
                    continue
                seen.add((key, q))
                label = _manager_label(key, mgrs.entries[key][0])
                causes.append({"reason": "FieldManagerConflict", "message": f"conflict with {label}",
                               "field": fmt_path(q)})
            n = len(causes)
            if n == 1:
                msg = f"Apply failed with 1 conflict: {causes[0]['message']}: {causes[0]['field']}"
            else:
                msg = f"Apply failed with {n} conflicts: " + "\n".join(
                    f"{c['message']}: {c['field']}" for c in causes)
            raise ApplyConflict(causes, msg)
        # force: the applier takes the fields over.  https://kubernetes.io/docs/reference/using-api/server-side-apply/#conflicts
        for key, q in conflicts:
            if key in mgrs.entries:
                mgrs.entries[key][2].discard(q)

    # Fields this manager applied before but omits now are removed unless someone else still owns them.
    # https://kubernetes.io/docs/reference/using-api/server-side-apply/#field-management
    previous = mgrs.entries.get(me, [None, None, set()])[2]
    gone = previous - cfg_paths
    if gone:
        others = set()
        for _key, owned in mgrs.owned_by_others(me):
            others |= owned
        others_ix, cfg_ix = _Owned(others), _Owned(cfg_paths)
        for p in gone:
            if not others_ix.overlapping(p) and not cfg_ix.overlapping(p):
                remove_path(base, p)

    deep_merge(base, cfg)
    mgrs.set(me, api_version, cfg_paths)
    mgrs.prune(base)
    base.setdefault("metadata", {})["managedFields"] = mgrs.to_list()
    return base


def record_update(live: dict | None, new: dict, manager: str, api_version: str, status_separate: bool,
                  subresource: str = "") -> None:
    """Update managedFields of ``new`` (in place) for a non-apply write by ``manager``.

    The writer takes ownership of every field whose value it set or changed; other managers lose those.
    """
    me = (manager, "Update", subresource)
    mgrs = Managers((live or {}).get("metadata", {}).get("managedFields"))
    new_cfg = tracked(new, status_separate, subresource)
    old_cfg = tracked(live or {}, status_separate, subresource)
    changed = {p for p in leaf_paths(new_cfg) if get_path(old_cfg, p) != get_path(new_cfg, p)}
    if changed:
        for key, owned in list(mgrs.owned_by_others(me)):
            index = _Owned(owned)
            for q in {q for p in changed for q in index.overlapping(p)}:
                owned.discard(q)
        mine = mgrs.entries.get(me, [api_version, "", set()])[2] | changed
        mgrs.set(me, api_version, mine)
    new.setdefault("metadata", {})["managedFields"] = []  # pruned against the new content below
    mgrs.prune(new)
    new["metadata"]["managedFields"] = mgrs.to_list()


def without_times(obj: dict) -> dict:
    """The object with managedFields timestamps blanked (for no-op detection)."""
    meta = obj.get("metadata") or {}
    mf = meta.get("managedFields")
    if not mf:
        return obj
    return {**obj, "metadata": {**meta, "managedFields": [{**e, "time": ""} for e in mf]}}


# --------------------------------------------------------------------------------------------
# Patches (non-apply)

def merge_patch(target, patch):
    """JSON merge patch, RFC 7386.  Strategic merge patch is approximated by it (lists replace).

    https://kubernetes.io/docs/tasks/manage-kubernetes-objects/update-api-object-kubectl-patch/
    """
    if not isinstance(patch, dict):
        return jcopy(patch)
    out = jcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if k.startswith("$"):
            continue  # strategic-merge directives ($patch, $retainKeys, ...) are ignored
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


class PatchError(Exception):
    pass


def _pointer(path: str) -> list:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def json_patch(doc, ops: list):
    """JSON patch, RFC 6902 (add, remove, replace, test, copy, move)."""
    doc = jcopy(doc)

    def read(parts, whole=None):
        cur = doc
        for p in parts:
            if isinstance(cur, list):
                cur = cur[int(p)]
            elif isinstance(cur, dict) and p in cur:
                cur = cur[p]
            else:
                raise PatchError(f"path not found: /{'/'.join(whole or parts)}")
        return cur

    def parent(parts):
        return read(parts[:-1], parts)

    def add(parts, value):
        nonlocal doc
        if not parts:
            doc = value
            return
        par, last = parent(parts), parts[-1]
        if isinstance(par, list):
            par.insert(len(par) if last == "-" else int(last), value)
        else:
            par[last] = value

    def remove(parts):
        par, last = parent(parts), parts[-1]
        if isinstance(par, list):
            return par.pop(int(last))
        if last not in par:
            raise PatchError(f"path not found: /{'/'.join(parts)}")
        return par.pop(last)

    if not isinstance(ops, list):
        raise PatchError("a JSON patch must be a list of operations")
    for op in ops:
        try:
            kind, parts = op["op"], _pointer(op["path"])
            if kind == "add":
                add(parts, jcopy(op["value"]))
            elif kind == "remove":
                remove(parts)
            elif kind == "replace":
                remove(parts)
                add(parts, jcopy(op["value"]))
            elif kind == "test":
                if read(parts) != op["value"]:
                    raise PatchError(f"test failed at {op['path']}")
            elif kind == "copy":
                add(parts, jcopy(read(_pointer(op["from"]))))
            elif kind == "move":
                add(parts, remove(_pointer(op["from"])))
            else:
                raise PatchError(f"unknown op {kind!r}")
        except (KeyError, IndexError, ValueError, TypeError) as e:
            raise PatchError(f"invalid patch operation {op!r}: {e}") from None
    return doc


# --------------------------------------------------------------------------------------------
# Immutable fields (validation on update).  One row per rule:
# (group, kind, field path, condition, exceptions, message)
#   condition: None = always; "once_set" = only when the live value is non-empty;
#              "immutable_flag" = only when the live object has `immutable: true`.
IMMUTABLE_RULES = (
    # https://kubernetes.io/docs/concepts/workloads/controllers/deployment/#label-selector-updates
    ("apps", "Deployment", ("spec", "selector"), None, (), None),
    # https://kubernetes.io/docs/concepts/workloads/controllers/statefulset/ (selector cannot change)
    ("apps", "StatefulSet", ("spec", "selector"), None, (), None),
    # https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/#pod-selector
    ("apps", "DaemonSet", ("spec", "selector"), None, (), None),
    ("apps", "ReplicaSet", ("spec", "selector"), None, (), None),
    # https://kubernetes.io/docs/concepts/workloads/controllers/job/ (pod template and selector are immutable)
    ("batch", "Job", ("spec", "selector"), None, (), None),
    ("batch", "Job", ("spec", "template"), None, (), None),
    # https://kubernetes.io/docs/concepts/services-networking/service/ (clusterIP cannot change once assigned)
    ("", "Service", ("spec", "clusterIP"), "once_set", (), None),
    # https://kubernetes.io/docs/concepts/storage/persistent-volumes/#expanding-persistent-volumes-claims
    ("", "PersistentVolumeClaim", ("spec",), None, (("spec", "resources", "requests"),),
     "Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName "
     "for bound claims"),
    # https://kubernetes.io/docs/concepts/configuration/configmap/#configmap-immutable
    ("", "ConfigMap", ("data",), "immutable_flag", (), "Forbidden: field is immutable when `immutable` is set"),
    ("", "ConfigMap", ("binaryData",), "immutable_flag", (), "Forbidden: field is immutable when `immutable` is set"),
    ("", "ConfigMap", ("immutable",), "immutable_flag", (), "Forbidden: field is immutable when `immutable` is set"),
    # https://kubernetes.io/docs/concepts/configuration/secret/#secret-immutable
    ("", "Secret", ("data",), "immutable_flag", (), "Forbidden: field is immutable when `immutable` is set"),
    ("", "Secret", ("immutable",), "immutable_flag", (), "Forbidden: field is immutable when `immutable` is set"),
    # https://kubernetes.io/docs/concepts/configuration/secret/#secret-types (type is immutable)
    ("", "Secret", ("type",), "once_set", (), None),
    # https://kubernetes.io/docs/reference/access-authn-authz/rbac/#clusterrolebinding-example (roleRef immutable)
    ("rbac.authorization.k8s.io", "RoleBinding", ("roleRef",), None, (), "Invalid value: {value}: cannot change roleRef"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding", ("roleRef",), None, (), "Invalid value: {value}: cannot change roleRef"),
)

_RULES_BY_KIND: dict = {}
for _r in IMMUTABLE_RULES:
    _RULES_BY_KIND.setdefault((_r[0], _r[1]), []).append(_r)


def _strip(value, exceptions: tuple, base: tuple):
    if not exceptions or not isinstance(value, dict):
        return value
    value = jcopy(value)
    for ex in exceptions:
        rel = ex[len(base):]
        if ex[:len(base)] == base and rel:
            _remove_rel(value, rel)
    return value


def _remove_rel(value: dict, rel: tuple) -> None:
    cur = value
    for k in rel[:-1]:
        cur = cur.get(k) if isinstance(cur, dict) else None
        if cur is None:
            return
    if isinstance(cur, dict):
        cur.pop(rel[-1], None)


def immutable_violations(group: str, kind: str, live: dict, new: dict) -> list[dict]:
    """Causes (for a 422 Invalid) for immutable fields that an update changes."""
    causes = []
    for _g, _k, path, cond, exceptions, message in _RULES_BY_KIND.get((group, kind), ()):
        old_v, new_v = get_path(live, path), get_path(new, path)
        if cond == "once_set" and old_v in (MISSING, None, ""):
            continue
        if cond == "immutable_flag" and live.get("immutable") is not True:
            continue
        if _strip(old_v, exceptions, path) == _strip(new_v, exceptions, path):
            continue
        shown = "null" if new_v is MISSING else json.dumps(new_v, separators=(",", ":"), sort_keys=True)
        if message is None:
            text, reason = f"Invalid value: {shown}: field is immutable", "FieldValueInvalid"
        else:
            text = message.format(value=shown)
            reason = "FieldValueForbidden" if text.startswith("Forbidden") else "FieldValueInvalid"
        causes.append({"reason": reason, "message": text, "field": ".".join(path)})
    return causes
