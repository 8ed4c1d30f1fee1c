"""Runs one command and reports its wall time and peak RSS, exactly, as JSON.

    python bench/measure.py RESULT.json -- COMMAND [ARG...]

Why a wrapper: ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` is the maximum over every
child a process ever reaped, so in the bench runner it would keep the largest
figure seen so far (and the runner's own pages, which a forked child inherits
until exec, would count too). This process is small, forks once, execs the
command and collects it with ``os.wait4``, whose rusage belongs to that one
child (and the git processes it reaped itself): ``ru_maxrss`` is then the
command's own high-water mark. The few MB this wrapper has when it forks can
only matter for a command smaller than it, which none measured here is.

The start time is taken just before ``fork`` and written with the result, so the
runner can line it up with the first request the API server saw.
"""

from __future__ import annotations

import json
import os
import sys
import time


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    out, command = argv[0], argv[2:]
    started = time.time()
    began = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: become the command
        try:
            os.execvp(command[0], command)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    seconds = time.monotonic() - began
    result = {"start": started, "seconds": seconds, "maxrss_kb": usage.ru_maxrss,
              "exit": os.waitstatus_to_exitcode(status), "user": usage.ru_utime, "system": usage.ru_stime}
    with open(out, "w") as handle:
        json.dump(result, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
