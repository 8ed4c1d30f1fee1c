"""Label and field selectors for LIST.

Label selector grammar: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors
Field selectors: https://kubernetes.io/docs/concepts/overview/working-with-objects/field-selectors/
"""

from __future__ import annotations

import re
from typing import Callable

from .errors import bad_request

_TOKEN = re.compile(r"\s*(!=|==|=|!|\(|\)|,|[^\s!=(),]+)")


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise bad_request(f"unable to parse requirement: invalid label selector: {text!r}")
        out.append(m.group(1))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


Predicate = Callable[[dict], bool]


def parse_label_selector(text: str | None) -> Predicate | None:
    """Compile a label selector into a predicate over a labels dict (None when empty)."""
    if not text or not text.strip():
        return None
    toks = _tokens(text)
    reqs: list[Predicate] = []
    i = 0

    def err():
        return bad_request(f"unable to parse requirement: invalid label selector: {text!r}")

    def at(j):
        return toks[j] if j < len(toks) else None

    def is_ident(tok):
        return tok is not None and tok not in ("!=", "==", "=", "!", "(", ")", ",")

    while i < len(toks):
        if toks[i] == "!":
            key = at(i + 1)
            if not is_ident(key):
                raise err()
            reqs.append(lambda labels, k=key: k not in labels)
            i += 2
        else:
            key = toks[i]
            if not is_ident(key):
                raise err()
            op = at(i + 1)
            if op is None or op == ",":
                reqs.append(lambda labels, k=key: k in labels)
                i += 1
            elif op in ("=", "==", "!="):
                val = at(i + 2)
                if is_ident(val):
                    i += 3
                else:  # empty value, e.g. "k="
                    val = ""
                    i += 2
                if op == "!=":
                    reqs.append(lambda labels, k=key, v=val: labels.get(k) != v)
                else:
                    reqs.append(lambda labels, k=key, v=val: k in labels and labels[k] == v)
            elif op in ("in", "notin"):
                if at(i + 2) != "(":
                    raise err()
                j, values = i + 3, set()
                while at(j) not in (")", None):
                    if at(j) != ",":
                        if not is_ident(at(j)):
                            raise err()
                        values.add(at(j))
                    j += 1
                if at(j) != ")":
                    raise err()
                if op == "in":
                    reqs.append(lambda labels, k=key, vs=frozenset(values): k in labels and labels[k] in vs)
                else:
                    reqs.append(lambda labels, k=key, vs=frozenset(values): labels.get(k) not in vs)
                i = j + 1
            else:
                raise err()
        if i < len(toks):
            if toks[i] != ",":
                raise err()
            i += 1
            if i >= len(toks):
                raise err()
    return lambda labels: all(r(labels) for r in reqs)


def _field_value(obj: dict, path: str):
    cur = obj
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return ""
        cur = cur[part]
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return "" if cur is None else str(cur)


def parse_field_selector(text: str | None) -> Predicate | None:
    """Field selectors: `path=value`, `path==value`, `path!=value`, comma-joined (over the whole object)."""
    if not text or not text.strip():
        return None
    reqs = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*(!=|==|=)\s*(.*?)\s*", part)
        if not m:
            raise bad_request(f"invalid selector: {text!r}")
        path, op, value = m.groups()
        if op == "!=":
            reqs.append(lambda o, p=path, v=value: _field_value(o, p) != v)
        else:
            reqs.append(lambda o, p=path, v=value: _field_value(o, p) == v)
    return lambda obj: all(r(obj) for r in reqs)
