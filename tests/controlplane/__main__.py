"""Start a control plane by hand: ``python -m tests.controlplane``.

For poking at the real server with kubectl or the product while it runs;
Ctrl-C (or SIGTERM) stops it and removes every temp file.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType

from tests.controlplane.fixture import ControlPlane, ControlPlaneError, find_assets

log = logging.getLogger("tests.controlplane")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.controlplane", description=__doc__)
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for /readyz")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")

    assets = find_assets()
    if assets is None:
        log.error("no etcd/kube-apiserver binaries: set KUBEBUILDER_ASSETS or run tests/controlplane/build.sh")
        return 2

    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    plane = ControlPlane(assets, start_timeout=args.timeout)
    try:
        plane.start()
    except ControlPlaneError as exc:
        log.error("%s", exc)
        return 1
    try:
        log.info(
            "kube-apiserver %s ready in %.1fs (logs in %s)", plane.url, plane.startup_seconds or 0.0, plane.workdir
        )
        print(f"export KUBECONFIG={plane.kubeconfig}", flush=True)
        log.info("Ctrl-C to stop")
        while not stop.wait(1.0):
            pass
    finally:
        plane.stop()
        log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
