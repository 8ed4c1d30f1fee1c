"""Source: settings → the manifest files of one revision (`Checkout`), through git driven by `sh`.

The clone is a shallow fetch of one revision into an empty repository, read
from git's object store without a working tree (tree.py): the URL
is passed on the command line only, never written to `.git/config`, and it never
carries credentials. HTTPS credentials reach git through a credential helper
that reads the mounted files itself, so the secret is in no argv, URL,
environment variable, log line or error text. SSH uses a private key file and
a known_hosts file with host key checking on.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import sh

from gitops_cron import tree
from gitops_cron.errors import Interrupted, ManifestError, SourceError
from gitops_cron.tree import SourceFile

FULL_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")
DEFAULT_TOKEN_USERNAME = "x-access-token"
OUTPUT_BUFFER = 64 * 1024
# Only what git and ssh need; everything else in our environment (which may hold
# settings or tokens of other tools) stays out of their processes.
PASSED_ENVIRONMENT = ("PATH", "LANG", "LC_ALL", "TZ", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY",
                      "https_proxy", "http_proxy", "no_proxy", "SSL_CERT_FILE", "SSL_CERT_DIR", "GIT_SSL_CAINFO")


@dataclass(frozen=True)
class Checkout:
    """The manifest files of one revision, read, with the files refused on the way, and where they came from."""

    origin: str
    commit: str | None
    files: tuple[SourceFile, ...]
    errors: tuple[ManifestError, ...]


@dataclass(frozen=True)
class Credentials:
    """Paths of the credential files found; contents are read only by git's helper and ssh."""

    username_file: Path | None = None
    password_file: Path | None = None
    token_file: Path | None = None
    ssh_key_file: Path | None = None
    known_hosts_file: Path | None = None


def redact_url(text: str) -> str:
    """Removes userinfo (`user:token@`) from every URL in `text`."""
    return USERINFO.sub(r"\g<scheme>***@", text)


def is_local_directory(repo: str) -> bool:
    return "://" not in repo and Path(repo).is_dir()


def is_ssh(repo: str) -> bool:
    return repo.startswith("ssh://") or ("://" not in repo and "@" in repo.split(":", 1)[0])


def split_userinfo(repo: str) -> tuple[str, str | None, str | None]:
    """Takes `user:password@` out of an http(s) URL so it can go through the helper instead."""
    if not repo.startswith(("http://", "https://")):
        return repo, None, None
    parts = urlsplit(repo)
    if parts.username is None:
        return repo, None, None
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc)), parts.username, parts.password


def find_credentials(directory: str) -> Credentials:
    base = Path(directory) if directory else None

    def present(name: str) -> Path | None:
        if base is None:
            return None
        candidate = base / name
        return candidate if candidate.is_file() and candidate.stat().st_size > 0 else None

    return Credentials(
        username_file=present("username"),
        password_file=present("password"),
        token_file=present("token"),
        ssh_key_file=present("ssh-privatekey") or present("identity"),
        known_hosts_file=present("known_hosts"),
    )


def credential_helper(username_file: Path | None, secret_file: Path, default_username: str | None) -> str:
    """A git credential helper script that answers `get` from files, so no secret passes through us."""
    if username_file is not None:
        user = f'printf "username=%s\\n" "$(cat {shlex.quote(str(username_file))})"'
    else:
        user = f'printf "username=%s\\n" {shlex.quote(default_username or DEFAULT_TOKEN_USERNAME)}'
    secret = f'printf "password=%s\\n" "$(cat {shlex.quote(str(secret_file))})"'
    return f'!f() {{ test "$1" = get || exit 0; {user}; {secret}; }}; f'


def git_environment(repo: str, credentials: Credentials, workdir: Path, insecure_host_key: bool,
                    url_username: str | None, url_password_file: Path | None,
                    environ: dict[str, str]) -> dict[str, str]:
    """The whole environment git runs with: hermetic config, no prompts, our helper or ssh command."""
    env = {name: environ[name] for name in PASSED_ENVIRONMENT if name in environ}
    env.update({
        "HOME": str(workdir),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "true",
        "SSH_ASKPASS": "true",
        "LC_ALL": "C",
    })
    config: list[tuple[str, str]] = [("credential.helper", ""), ("advice.detachedHead", "false"),
                                     ("init.defaultBranch", "main"), ("protocol.version", "2")]
    if url_password_file is not None:
        config.append(("credential.helper", credential_helper(None, url_password_file, url_username)))
    elif credentials.token_file is not None:
        config.append(("credential.helper", credential_helper(credentials.username_file, credentials.token_file, None)))
    elif credentials.password_file is not None:
        config.append(("credential.helper", credential_helper(credentials.username_file, credentials.password_file, None)))
    env["GIT_CONFIG_COUNT"] = str(len(config))
    for index, (key, value) in enumerate(config):
        env[f"GIT_CONFIG_KEY_{index}"] = key
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    if is_ssh(repo):
        env["GIT_SSH_COMMAND"] = ssh_command(credentials, workdir, insecure_host_key)
    return env


def ssh_command(credentials: Credentials, workdir: Path, insecure_host_key: bool) -> str:
    """ssh options for git; the key is copied with mode 0600 because ssh refuses group-readable keys."""
    options = ["ssh", "-F", os.devnull, "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=20"]
    if credentials.ssh_key_file is not None:
        key = workdir / "ssh-key"
        shutil.copyfile(credentials.ssh_key_file, key)
        key.chmod(0o600)
        options += ["-i", str(key)]
    if insecure_host_key:
        options += ["-o", "StrictHostKeyChecking=no", "-o", f"UserKnownHostsFile={os.devnull}"]
    elif credentials.known_hosts_file is not None:
        options += ["-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={credentials.known_hosts_file}"]
    else:
        raise SourceError("ssh clone needs a known_hosts file in the credentials directory "
                          "(or --ssh-insecure-ignore-host-key to turn host key checking off)")
    return " ".join(shlex.quote(option) for option in options)


class Git:
    """Runs git commands with one environment, a deadline and a stop signal."""

    def __init__(self, env: dict[str, str], deadline: float, stopping: threading.Event, origin: str) -> None:
        self.env = env
        self.deadline = deadline
        self.stopping = stopping
        self.origin = origin

    def __call__(self, *args: str, operation: str = "clone") -> str:
        return self.run(*args, operation=operation).decode("utf-8", "replace").strip()

    def run(self, *args: str, operation: str = "clone", stdin: bytes | None = None) -> bytes:
        """git's raw output. sh hands output over line by line unless told a buffer size, which
        made reading a thousand files through `cat-file` take 0.17 s instead of 0.02 s."""
        process = sh.git(*args, _env=self.env, _bg=True, _bg_exc=False, _new_session=True, _tty_out=False,
                         _in=stdin, _out_bufsize=OUTPUT_BUFFER)
        # sh notices on its own that a background process ended only once a second; asking it
        # (a non-blocking waitpid) every few milliseconds saves most of that second per command.
        while process.process.is_alive()[0]:
            if self.stopping.wait(0.005) or time.monotonic() >= self.deadline:
                self.kill(process)
                if self.stopping.is_set():
                    raise Interrupted(f"{self.origin} {operation} interrupted: terminating")
                raise SourceError(f"{self.origin} {operation} failed: timed out")
        # The process has ended; this also waits until sh has collected all of its output.
        exit_code = process.process.wait()
        if exit_code != 0:
            raise SourceError(f"{self.origin} {operation} failed: git exited {exit_code}: "
                              f"{last_line(process.process.stderr)}")
        return process.process.stdout

    @staticmethod
    def kill(process: sh.RunningCommand) -> None:
        try:
            process.process.kill_group()
        except (ProcessLookupError, OSError):
            pass


# git ends an ssh failure with these lines; the cause (host key, permission) is the line before them.
GIT_BOILERPLATE = ("fatal: Could not read from remote repository.", "Please make sure you have the correct access rights",
                   "and the repository exists.")


def last_line(stderr: bytes) -> str:
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    telling = [line for line in lines if not line.startswith(GIT_BOILERPLATE)]
    return redact_url((telling or lines)[-1]) if lines else "no message"


def checkout(repo: str, revision: str, path: str, credentials_dir: str, insecure_host_key: bool,
             workdir: Path, clone_timeout: float, max_file_bytes: int, stopping: threading.Event) -> Checkout:
    """The manifest files of `revision` (a shallow fetch), or of a local directory read in place."""
    origin = f"{redact_url(repo)}@{revision or 'HEAD'}"
    deadline = time.monotonic() + clone_timeout
    if is_local_directory(repo):
        root = Path(repo).resolve()
        env = git_environment(repo, Credentials(), workdir, False, None, None, dict(os.environ))
        commit = local_commit(Git(env, deadline, stopping, origin), root)
        entries = tree.list_directory(root)
        chosen, errors = tree.select(entries, directory_of(entries, path, origin), max_file_bytes)
        files, read_errors = tree.read_files(chosen)
        return Checkout(origin, commit, tuple(files), tuple(errors + read_errors))
    root = workdir / "repo"
    url, url_username, url_password = split_userinfo(repo)
    password_file = None
    if url_password is not None:
        password_file = workdir / "url-password"
        password_file.write_text(url_password)
        password_file.chmod(0o600)
    env = git_environment(url, find_credentials(credentials_dir), workdir, insecure_host_key,
                          url_username, password_file, dict(os.environ))
    git = Git(env, deadline, stopping, origin)
    commit = fetch(git, url, revision, root)
    entries = list_revision(git, root, commit)
    chosen, errors = tree.select(entries, directory_of(entries, path, origin), max_file_bytes)
    return Checkout(origin, commit, read_blobs(git, root, chosen), tuple(errors))


def fetch(git: Git, url: str, revision: str, root: Path) -> str:
    """The commit of `revision`, fetched (depth 1) into a new bare-bones repository."""
    git("init", "-q", "--bare", str(root))
    # Fetching by URL rather than through a remote keeps the URL out of the repository's config.
    try:
        git("-C", str(root), "fetch", "-q", "--depth=1", "--no-tags", url, revision or "HEAD")
        target = "FETCH_HEAD"
    except SourceError:
        if not FULL_SHA.match(revision):
            raise
        # Servers that refuse a want of an unadvertised commit: fetch the branches and look for it.
        git("-C", str(root), "fetch", "-q", "--no-tags", url, "+refs/heads/*:refs/remotes/origin/*")
        target = revision
    commit = git("-C", str(root), "rev-parse", "--verify", "--end-of-options", f"{target}^{{commit}}",
                 operation="checkout")
    if FULL_SHA.match(revision) and commit != revision:
        raise SourceError(f"{git.origin} checkout failed: got commit {commit}, not the requested one")
    return commit


def list_revision(git: Git, root: Path, commit: str) -> dict[str, tree.Entry]:
    """Every file of the commit, symlinks with their targets (a symlink's blob is its target)."""
    listing = git.run("-C", str(root), "ls-tree", "-r", "-l", "-z", "--full-tree", commit, operation="checkout")
    entries, links = tree.parse_ls_tree(listing)
    if links:
        targets = cat_files(git, root, [entries[path].source for path in links])
        for path in links:
            target = targets.get(entries[path].source, b"").decode("utf-8", "surrogateescape")
            entries[path] = replace(entries[path], link=target)
    return entries


def read_blobs(git: Git, root: Path, chosen: list[tuple[str, tree.Entry]]) -> tuple[SourceFile, ...]:
    blobs = cat_files(git, root, [entry.source for _, entry in chosen])
    return tuple(SourceFile(name, blobs[entry.source]) for name, entry in chosen)


def cat_files(git: Git, root: Path, object_ids: list[str]) -> dict[str, bytes]:
    if not object_ids:
        return {}
    request = "".join(f"{oid}\n" for oid in dict.fromkeys(object_ids)).encode()
    output = git.run("-C", str(root), "cat-file", "--batch", operation="checkout", stdin=request)
    try:
        return tree.parse_cat_file(output)
    except ValueError as error:
        raise SourceError(f"{git.origin} checkout failed: {error}") from None


def directory_of(entries: dict[str, tree.Entry], path: str, origin: str) -> str:
    try:
        return tree.resolve_directory(entries, path)
    except ValueError as error:
        raise SourceError(f"{origin} path {path!r} failed: {error}") from None


def local_commit(git: Git, root: Path) -> str | None:
    """The HEAD commit of a local directory that is a git work tree; None for a plain directory."""
    if not (root / ".git").exists():
        return None
    try:
        return git("-C", str(root), "rev-parse", "HEAD", operation="read")
    except SourceError:
        return None
