"""Client-side CPU per API request of gitops_cron.kube.Kube, against the fake in its own process.

    .venv/bin/python bench/request_overhead.py [--requests 3000] [--threads 8]

Sends no-change server-side applies of one ConfigMap (the request the apply loop
sends most) from a thread pool and reports this process's CPU seconds per
request (time.process_time: all threads, user + system), which other load on
the machine barely moves, unlike wall time. The fake runs with no latency.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--profile", action="store_true", help="send them one by one on this thread under "
                        "cProfile and print where the CPU goes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        kubeconfig = Path(workdir) / "kubeconfig"
        fake = subprocess.Popen([sys.executable, str(ROOT / "bench" / "fake_process.py"), "--kubeconfig",
                                 str(kubeconfig)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            fake.stdout.readline()
            fake.stdout.readline()
            from gitops_cron.kube import Kube, make_api_client
            from gitops_cron.plan import ApiResource

            kube = Kube(make_api_client(str(kubeconfig), "", args.threads + 2), time.monotonic() + 600,
                        threading.Event())
            configmaps = ApiResource("", "v1", "ConfigMap", "configmaps", True)
            body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                               "metadata": {"name": "one", "namespace": "default", "labels": {"a": "b"}},
                               "data": {"key": "value" * 20}}).encode()

            def apply(_: int) -> None:
                kube.apply(configmaps, "one", "default", body, "bench", True, False)

            apply(0)  # create it; the rest are no-change applies
            if args.profile:
                import cProfile
                import pstats

                profile = cProfile.Profile()
                profile.enable()
                for i in range(args.requests):
                    apply(i)
                profile.disable()
                pstats.Stats(profile).sort_stats("tottime").print_stats(30)
                return 0
            with ThreadPoolExecutor(args.threads) as pool:
                list(pool.map(apply, range(200)))  # warm the connections
                import resource
                before = resource.getrusage(resource.RUSAGE_SELF)
                cpu, wall = time.process_time(), time.monotonic()
                list(pool.map(apply, range(args.requests)))
                cpu, wall = time.process_time() - cpu, time.monotonic() - wall
                after = resource.getrusage(resource.RUSAGE_SELF)
                user = (after.ru_utime - before.ru_utime) / args.requests * 1e6
                system = (after.ru_stime - before.ru_stime) / args.requests * 1e6
            print(f"{args.requests} requests, {args.threads} threads: {cpu / args.requests * 1e6:.0f} µs client CPU ({user:.0f} user + {system:.0f} system) "
                  f"per request, {args.requests / wall:.0f} requests/s")
        finally:
            fake.stdin.close()
            fake.terminate()
            fake.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
