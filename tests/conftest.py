"""Fixtures shared by the tiers: git repositories in temp dirs, and the job run as the CronJob runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.controlplane.fixture import control_plane  # noqa: F401  (pytest fixture)

ROOT = Path(__file__).resolve().parent.parent
GIT_ENV = {"GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.com", "GIT_COMMITTER_NAME": "test",
           "GIT_COMMITTER_EMAIL": "test@example.com", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


class GitRepo:
    """A real git repository to clone through file://; each change is a commit."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True)
        self.git("init", "-q", "-b", "main")

    @property
    def url(self) -> str:
        return self.path.as_uri()

    def git(self, *args: str) -> str:
        env = {**os.environ, **GIT_ENV}
        return subprocess.run(["git", "-C", str(self.path), *args], check=True, capture_output=True, text=True,
                              env=env).stdout.strip()

    def write(self, files: dict[str, str], message: str = "change") -> str:
        for name, text in files.items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        return self.commit(message)

    def remove(self, *names: str, message: str = "remove") -> str:
        self.git("rm", "-q", "-r", *names)
        return self.commit(message)

    def commit(self, message: str) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD")


@pytest.fixture
def git_repo(tmp_path: Path) -> GitRepo:
    return GitRepo(tmp_path / "config-repo")


@dataclass
class JobResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def lines_with(self, text: str) -> list[str]:
        return [line for line in self.output.splitlines() if text in line]


def run_job(*args: str, kubeconfig: str | Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 120) -> JobResult:
    """reconcile.py as a subprocess, the way the CronJob runs it."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("GITOPS_", "KUBECONFIG"))}
    environment.update({"GITOPS_GIT_CREDENTIALS_DIR": "", "PYTHONUNBUFFERED": "1"})
    if kubeconfig is not None:
        environment["KUBECONFIG"] = str(kubeconfig)
    environment.update(env or {})
    completed = subprocess.run([sys.executable, str(ROOT / "reconcile.py"), *args], capture_output=True, text=True,
                               env=environment, timeout=timeout, cwd=ROOT)
    return JobResult(completed.returncode, completed.stdout, completed.stderr)
