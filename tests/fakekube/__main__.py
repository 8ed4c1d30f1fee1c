"""Run the fake API server as its own process (used by the benchmark).

    python -m tests.fakekube --port 0 --latency-ms 5 --kubeconfig PATH

Writes the kubeconfig, prints ``listening on http://127.0.0.1:PORT`` and serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .server import FakeKube


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.fakekube", description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--latency-ms", type=float, default=0.0, help="milliseconds added to every request")
    p.add_argument("--kubeconfig", help="write a kubeconfig for this server to PATH")
    p.add_argument("--token", default="fake-token")
    p.add_argument("--crd-established-delay", type=float, default=0.0, help="seconds")
    p.add_argument("--namespace-finalization", choices=("immediate", "terminating"), default="immediate")
    p.add_argument("--record-requests", action="store_true",
                   help="keep the in-memory request log (off by default: nothing reads it out of process)")
    args = p.parse_args(argv)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    kube = FakeKube(latency=args.latency_ms / 1000.0, token=args.token, host=args.host, port=args.port)
    kube.crd_established_delay = args.crd_established_delay
    kube.namespace_finalization = args.namespace_finalization
    kube.record_requests = args.record_requests
    with kube:
        if args.kubeconfig:
            kube.write_kubeconfig(args.kubeconfig)
        print(f"listening on {kube.url}", flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
