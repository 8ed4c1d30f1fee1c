"""One reconcile run in this process under cProfile, worker threads included.

    .venv/bin/python bench/profile_job.py [--top 40] [--out FILE] -- RECONCILE_ARGS...

cProfile sees only the thread that enabled it, and the apply loop runs in a
thread pool; so every thread started during the run gets a profiler of its
own, and the statistics of all of them are merged before printing. Numbers are
inflated by the profiler itself: read them as shares, not as times.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--out", help="write the merged statistics here (pstats format)")
    parser.add_argument("job", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    job_args = args.job[1:] if args.job[:1] == ["--"] else args.job

    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()
    original_run = threading.Thread.run

    def profiled_run(self: threading.Thread) -> None:
        profile = cProfile.Profile()
        with lock:
            profiles.append(profile)
        profile.enable()
        try:
            original_run(self)
        finally:
            profile.disable()

    threading.Thread.run = profiled_run  # type: ignore[method-assign]
    import reconcile

    main_profile = cProfile.Profile()
    profiles.append(main_profile)
    main_profile.enable()
    try:
        code = reconcile.main(job_args)
    finally:
        main_profile.disable()
    with lock:
        stats = pstats.Stats(*[p for p in profiles if p.getstats()])
    if args.out:
        stats.dump_stats(args.out)
    print(f"\nreconcile exited {code}; {len(profiles)} profiled threads", file=sys.stderr)
    stats.sort_stats(args.sort).print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
