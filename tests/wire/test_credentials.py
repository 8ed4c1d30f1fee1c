"""Credential hygiene: a token given for the clone reaches git and nothing else.

A real smart-HTTP git server with basic auth checks the token is used, and looks
through every process's argv and environment for it while git is talking to it.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from gitops_cron.errors import SourceError
from gitops_cron.source import checkout
from tests.conftest import GitRepo
from tests.gitserver import GitHttpServer
from tests.wire.manifests_text import configmap, namespace, secret

pytestmark = pytest.mark.wire
TOKEN = "tok-3f9c1e7a-NEVER-PRINT-ME"


@pytest.fixture
def served(tmp_path):
    repo = GitRepo(tmp_path / "srv" / "config.git")
    repo.write({"ns.yaml": namespace("demo"), "cm.yaml": configmap("app"),
                "secret.yaml": secret("db", "demo", "data-NEVER-PRINT-ME")})
    with GitHttpServer(tmp_path / "srv", "deploy", TOKEN) as server:
        yield server


def credentials(tmp_path: Path, **files: str) -> str:
    directory = tmp_path / "git-credentials"
    directory.mkdir()
    for name, value in files.items():
        (directory / name).write_text(value)
    return str(directory)


def test_token_from_mounted_files_clones_and_appears_nowhere(served, tmp_path, job, kube):
    creds = credentials(tmp_path, username="deploy", token=TOKEN)
    result = job(served.url("config.git"), "--verbose", env={"GITOPS_GIT_CREDENTIALS_DIR": creds})
    assert result.exit_code == 0, result.output
    assert served.authorized_requests > 0
    assert served.leaks == []
    assert TOKEN not in result.output
    assert "data-NEVER-PRINT-ME" not in result.output
    assert kube.get("v1", "ConfigMap", "app", "demo") is not None


def test_token_in_the_url_is_taken_out_and_redacted(served, tmp_path, job):
    url = served.url("config.git").replace("http://", f"http://deploy:{TOKEN}@")
    result = job(None, "--dry-run", env={"GITOPS_GIT_CREDENTIALS_DIR": "", "GITOPS_REPO": url})
    assert result.exit_code == 0, result.output
    # Only the job itself holds it, in the environment the user gave it; git and its helpers do not.
    assert [leak for leak in served.leaks if "reconcile.py" not in leak] == []
    assert all(" environ " in leak for leak in served.leaks)
    assert TOKEN not in result.output
    assert result.lines_with("http://***@127.0.0.1")


def test_wrong_token_exits_3_without_showing_it(served, tmp_path, job):
    creds = credentials(tmp_path, username="deploy", token="wrong-" + TOKEN)
    result = job(served.url("config.git"), env={"GITOPS_GIT_CREDENTIALS_DIR": creds})
    assert result.exit_code == 3
    assert result.lines_with("clone failed: git exited 128")
    assert TOKEN not in result.output


def test_clone_keeps_no_url_or_credential_in_git_config(served, tmp_path):
    creds = credentials(tmp_path, username="deploy", token=TOKEN)
    workdir = tmp_path / "work"
    workdir.mkdir()
    source = checkout(served.url("config.git"), "", "", creds, False, workdir, 30, 1 << 20, threading.Event())
    git_dir = workdir / "repo"
    for path in workdir.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert TOKEN.encode() not in content, path
    assert b"127.0.0.1" not in (git_dir / "config").read_bytes()
    assert "cm.yaml" in [f.name for f in source.files]
    assert not list(workdir.rglob("cm.yaml"))  # read from the object store: no working tree written


def test_ssh_without_known_hosts_is_refused_unless_explicitly_insecure(tmp_path):
    creds = credentials(tmp_path, **{"ssh-privatekey": "not-a-real-key\n"})
    workdir = tmp_path / "work"
    workdir.mkdir()
    with pytest.raises(SourceError, match="needs a known_hosts file"):
        checkout("git@git.invalid:org/repo.git", "", "", creds, False, workdir, 5, 1 << 20, threading.Event())


@pytest.fixture
def ssh_repo(tmp_path):
    import getpass
    import os

    from tests.sshserver import SSHD, SshServer
    if SSHD is None or os.geteuid() != 0:
        pytest.skip("no sshd on this machine (.ci/run installs openssh-server where apt-get works) or not root")
    repo = GitRepo(tmp_path / "ssh-srv" / "config.git")
    repo.write({"ns.yaml": namespace("demo"), "cm.yaml": configmap("over-ssh")})
    with SshServer(tmp_path / "sshd") as server:
        yield server, f"ssh://{getpass.getuser()}@127.0.0.1:{server.port}{repo.path}"


def test_ssh_clone_with_key_and_known_hosts(ssh_repo, tmp_path, job, kube):
    server, url = ssh_repo
    creds = credentials(tmp_path, **{"ssh-privatekey": (server.directory / "client_key").read_text(),
                                     "known_hosts": server.known_hosts_line()})
    result = job(url, env={"GITOPS_GIT_CREDENTIALS_DIR": creds})
    assert result.exit_code == 0, result.output
    assert kube.get("v1", "ConfigMap", "over-ssh", "demo") is not None
    assert "PRIVATE KEY" not in result.output


def test_ssh_host_key_mismatch_is_refused_unless_checking_is_turned_off(ssh_repo, tmp_path, job, kube):
    server, url = ssh_repo
    from tests.sshserver import keygen
    impostor = keygen(tmp_path / "impostor").with_suffix(".pub").read_text().split()
    creds = credentials(tmp_path, **{"ssh-privatekey": (server.directory / "client_key").read_text(),
                                     "known_hosts": f"[127.0.0.1]:{server.port} {impostor[0]} {impostor[1]}\n"})
    result = job(url, env={"GITOPS_GIT_CREDENTIALS_DIR": creds})
    assert result.exit_code == 3
    assert result.lines_with("clone failed: git exited 128: Host key verification failed.")
    assert kube.get("v1", "ConfigMap", "over-ssh", "demo") is None
    insecure = job(url, "--ssh-insecure-ignore-host-key", env={"GITOPS_GIT_CREDENTIALS_DIR": creds})
    assert insecure.exit_code == 0, insecure.output
