"""Report: logging set-up (text or JSON lines), stage timings, and the closing summary.

Library chatter (urllib3, kubernetes, sh) stays quiet unless --verbose, because
at debug level those libraries print request headers, and headers hold tokens.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

from gitops_cron.apply import Change
from gitops_cron.config import Settings
from gitops_cron.source import redact_url

log = logging.getLogger("gitops_cron")
ACTIONS = ("created", "configured", "unchanged", "recreated", "pruned", "failed", "skipped")
STANDARD_RECORD_FIELDS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the event's structured fields beside the message."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact_url(record.getMessage()),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in STANDARD_RECORD_FIELDS})
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact_url(super().format(record))


def setup_logging(log_format: str, verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)-5s %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("urllib3", "kubernetes", "sh"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)
    if not verbose:
        logging.getLogger("sh").setLevel(logging.ERROR)


def log_settings(settings: Settings) -> None:
    """The effective settings, so a run's log says what it was asked to do. Credentials are file paths."""
    shown = {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}
    shown["repo"] = redact_url(settings.repo)
    text = " ".join(f"{k}={v if not isinstance(v, tuple) else ','.join(v)}" for k, v in shown.items())
    log.info("settings %s", text, extra={"settings": {k: list(v) if isinstance(v, tuple) else v
                                                      for k, v in shown.items()}})


@contextmanager
def stage(name: str, timings: dict[str, float]) -> Iterator[None]:
    """Logs how long a stage took, whether it finished or raised."""
    started = time.monotonic()
    try:
        yield
    finally:
        seconds = time.monotonic() - started
        timings[name] = seconds
        log.info("stage %s done in %.2fs", name, seconds, extra={"stage": name, "seconds": round(seconds, 3)})


@dataclass
class Summary:
    """What the run did, built up as it goes; its counts are also written to the inventory parent."""

    commit: str | None = None
    changes: list[Change] = field(default_factory=list)
    result: str = "converged"
    message: str = ""
    started: float = field(default_factory=time.monotonic)
    timings: dict[str, float] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {**dict.fromkeys(ACTIONS, 0), **Counter(change.action for change in self.changes)}

    @property
    def changed(self) -> bool:
        counts = self.counts()
        return any(counts[a] for a in ("created", "configured", "recreated", "pruned"))

    def log(self, exit_code: int, dry_run: bool) -> None:
        counts = self.counts()
        seconds = time.monotonic() - self.started
        text = " ".join(f"{k}={v}" for k, v in counts.items())
        prefix = "DRY-RUN " if dry_run else ""
        level = logging.INFO if exit_code == 0 else logging.ERROR
        requests = sum(self.requests.values())
        log.log(level, "%ssummary commit=%s result=%s %s seconds=%.2f requests=%d exit=%d%s", prefix,
                self.commit or "none", self.result, text, seconds, requests, exit_code,
                f" reason: {self.message}" if self.message else "",
                extra={"summary": {"commit": self.commit, "result": self.result, **counts,
                                   "seconds": round(seconds, 3), "requests": dict(self.requests),
                                   "exit_code": exit_code, "reason": self.message, "dry_run": dry_run}})
