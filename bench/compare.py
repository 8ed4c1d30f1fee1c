#!/usr/bin/env python3
"""Before/after: no-change runs of two (or more) copies of the job, interleaved, against one fake.

    .venv/bin/python bench/compare.py --objects 1000 --latency-ms 5 --rounds 8 NAME=DIR[@CONCURRENCY] ...

Each DIR holds a reconcile.py and its gitops_cron/ (e.g. the work tree and a copy
with a change reverted). One fake API server, one repository, one first run; then
ROUNDS rounds in which every copy does one no-change run, in turn, so load from
elsewhere on the machine falls on all of them alike. Prints the median and the
spread of wall time, CPU time and the time to the first request.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import FakeServer, Measurement, job_command, measure, median, production_python  # noqa: E402
from workload import Workload  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=5.0)
    parser.add_argument("--kinds", type=int, default=11)
    parser.add_argument("--namespaces", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--job-timeout", type=float, default=600.0)
    parser.add_argument("--python", default=None, help="interpreter that runs the job (default: as bench/run.py)")
    parser.add_argument("copies", nargs="+", metavar="NAME=DIR")
    args = parser.parse_args()
    args.python = args.python or production_python()
    copies = [(name, Path(path.partition("@")[0]), int(path.partition("@")[2] or args.concurrency))
              for name, _, path in (c.partition("=") for c in args.copies)]
    with tempfile.TemporaryDirectory(prefix="gitops-cron-compare-") as tmp:
        workdir = Path(tmp)
        for _, root, _ in copies:
            subprocess.run([sys.executable, "-m", "compileall", "-q", str(root / "gitops_cron")], check=True)
        workload = Workload(workdir / "repo", args.objects, args.kinds, args.namespaces)
        workload.create()
        fake = FakeServer(workdir, args.latency_ms)
        results: dict[str, list[Measurement]] = {name: [] for name, _, _ in copies}
        try:
            args.job_root = copies[0][1]
            first = measure("first", job_command(args, workload, fake.kubeconfig), fake, workdir / "first.log",
                            args.job_timeout)
            if first.exit:
                raise RuntimeError(f"first run exited {first.exit}: see {workdir / 'first.log'}")
            for round_ in range(args.rounds):
                for name, root, concurrency in copies:
                    args.job_root, args.concurrency = root, concurrency
                    m = measure(name, job_command(args, workload, fake.kubeconfig), fake,
                                workdir / f"{name}-{round_}.log", args.job_timeout)
                    if m.exit or m.counts.get("unchanged") != args.objects:
                        raise RuntimeError(f"{name}: exit {m.exit}, {m.counts}")
                    results[name].append(m)
        finally:
            fake.stop()
    print(f"\n{args.objects} objects, {args.latency_ms:g} ms, {args.rounds} "
          "interleaved no-change runs each: median (min-max)")
    columns = [("wall s", lambda m: m.seconds), ("CPU s", lambda m: m.cpu),
               ("1st request s", lambda m: m.first_request or 0.0), ("peak RSS MB", lambda m: m.maxrss_mb),
               *[(f"{stage} s", lambda m, stage=stage: m.stages.get(stage, 0.0))
                 for stage in ("source", "parse", "inventory", "apply")]]
    print(f"{'copy':<14}" + "".join(f"{title:>21}" for title, _ in columns))
    for name, runs in results.items():
        cells = []
        for _, value in columns:
            values = [value(m) for m in runs]
            cells.append(f"{median(values):.2f} ({min(values):.2f}-{max(values):.2f})")
        print(f"{name:<14}" + "".join(f"{cell:>21}" for cell in cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
