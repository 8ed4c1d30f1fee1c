#!/usr/bin/env python3
"""gitops-cron entry point: converge the cluster to a git repository once, then exit.

Exit codes: 0 converged (or another run holds the lock), 1 some objects failed or
pruning was skipped because of errors, 2 bad settings, 3 source unavailable,
4 prune refused by a guard.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path

from gitops_cron import __version__
from gitops_cron.config import load_settings
from gitops_cron.errors import GitopsError, Interrupted, SettingsError, exit_code_for
from gitops_cron.report import Summary, log_settings, setup_logging
from gitops_cron.run import reconcile

log = logging.getLogger("gitops_cron")


def main(argv: list[str] | None = None) -> int:
    if "--version" in (argv if argv is not None else sys.argv[1:]):
        print(f"gitops-cron {__version__}")
        return 0
    stopping = threading.Event()

    def terminate(signum: int, _frame: object) -> None:
        # Start no new work; the stages check this event and the lock is released on the way out.
        log.warning("received %s: finishing requests in flight, starting nothing new, not pruning",
                    signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, terminate)
    try:
        settings = load_settings(sys.argv[1:] if argv is None else argv, os.environ)
    except SettingsError as error:
        print(f"gitops-cron: {error}", file=sys.stderr)
        return exit_code_for(error)
    setup_logging(settings.log_format, settings.verbose)
    log_settings(settings)
    summary = Summary()
    with tempfile.TemporaryDirectory(prefix="gitops-cron-") as workdir:
        try:
            exit_code = reconcile(settings, Path(workdir), stopping, summary)
        except GitopsError as error:
            exit_code = exit_code_for(error)
            if summary.result in ("converged", "skipped"):
                summary.result = "interrupted" if isinstance(error, Interrupted) else "failed"
            summary.message = str(error)
            log.error("%s", error)
    if stopping.is_set() and exit_code == 0:
        exit_code = exit_code_for(Interrupted())
    summary.log(exit_code, settings.dry_run)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
