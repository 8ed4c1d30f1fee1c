"""Fault injection and the request log."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field


@dataclass(eq=False)
class Fault:
    """A canned failure for matching requests.

    method: HTTP method to match (None or "*" = any); path: regex searched in the request path (query
    excluded); status: HTTP code to answer (None = no answer of its own: only ``delay``, then the request is
    served normally); times: how many matching requests get it (None = forever); retry_after: Retry-After
    header value (seconds); delay: seconds slept before the fault (or the normal answer); drop: close the
    connection without answering; body: response body (dict -> JSON, str/bytes as is; default a Status).
    ``hits`` counts the requests that got the fault.
    """

    method: str | None = None
    path: str = ""
    status: int | None = 503
    times: int | None = 1
    retry_after: float | int | str | None = None
    delay: float = 0.0
    drop: bool = False
    body: dict | str | bytes | None = None
    hits: int = 0
    _rx: re.Pattern | None = field(default=None, repr=False)

    def matches(self, method: str, path: str) -> bool:
        if self.method not in (None, "*") and self.method.upper() != method.upper():
            return False
        if self._rx is None:
            self._rx = re.compile(self.path or "")
        return self._rx.search(path) is not None

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.hits >= self.times


class FaultSet:
    """Ordered faults; the first non-exhausted match wins.  Thread-safe."""

    def __init__(self):
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def remove(self, fault: Fault) -> None:
        with self._lock:
            self._faults = [f for f in self._faults if f is not fault]

    def clear(self) -> None:
        with self._lock:
            self._faults = []

    def take(self, method: str, path: str) -> Fault | None:
        """The fault this request gets (its hit counted), or None."""
        with self._lock:
            for f in self._faults:
                if not f.exhausted and f.matches(method, path):
                    f.hits += 1
                    return f
        return None

    def __iter__(self):
        with self._lock:
            return iter(list(self._faults))

    def __len__(self):
        return len(self._faults)


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict  # name -> list of values
    headers: dict  # lower-case names
    body: bytes
    status: int = 0  # 0 when the connection was dropped
    propagation_policy: str | None = None  # DELETE: from DeleteOptions body or query
    fault: Fault | None = None
    time: float = 0.0

    def json(self):
        return json.loads(self.body) if self.body else None

    def __repr__(self):
        q = "&".join(f"{k}={v}" for k, vs in self.query.items() for v in vs)
        return f"<{self.method} {self.path}{'?' + q if q else ''} -> {self.status}>"
