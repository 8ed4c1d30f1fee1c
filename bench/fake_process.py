"""The fake API server as its own process, with a side door for the bench's request counts.

    python bench/fake_process.py --latency-ms 5 --kubeconfig PATH

Prints ``listening on http://127.0.0.1:PORT`` (the fake API server) and
``control on http://127.0.0.1:PORT`` (this script's own little server), then
serves until SIGTERM/SIGINT or until its standard input closes (so it never
outlives the runner). The control server answers ``GET /requests`` with what
the fake recorded since the last ``?clear=1``: one ``[method, path, time,
status, user-agent]`` per request, ``time`` being ``time.time()`` when the
request arrived. It is a separate port so the API server under test stays
exactly ``tests/fakekube`` (whose owner may change it independently).

The Namespaces the job's inventory and kubectl need before any apply
(``gitops``, ``default``) are seeded, as a cluster would have them.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fakekube import FakeKube  # noqa: E402


def control_server(kube: FakeKube) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            split = urlsplit(self.path)
            if split.path != "/requests":
                self.send_error(404)
                return
            records = kube.requests
            if parse_qs(split.query).get("clear") == ["1"]:
                kube.clear_requests()
            rows = [[r.method, r.path, r.time, r.status, r.headers.get("user-agent", "")] for r in records]
            payload = json.dumps(rows).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="control", daemon=True).start()
    return server


def accept_without_credentials(kube: FakeKube) -> None:
    """kubectl (client-go) sends no bearer token to a plain-http server, and the fake answers 401 to a
    request without one; so a request that carries no Authorization header is taken as the fake's user."""
    dispatch = kube._dispatch

    def dispatch_as_user(record):  # type: ignore[no-untyped-def]
        record.headers.setdefault("authorization", f"Bearer {kube.token}")
        return dispatch(record)

    kube._dispatch = dispatch_as_user  # type: ignore[method-assign]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--kubeconfig", required=True)
    args = parser.parse_args()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    def watch_stdin() -> None:
        sys.stdin.read()  # returns when the runner goes away
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    with FakeKube(latency=args.latency_ms / 1000.0) as kube:
        accept_without_credentials(kube)
        for name in ("gitops", "default"):
            kube.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        kube.write_kubeconfig(args.kubeconfig)
        control = control_server(kube)
        print(f"listening on {kube.url}", flush=True)
        print(f"control on http://127.0.0.1:{control.server_address[1]}", flush=True)
        stop.wait()
        control.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
