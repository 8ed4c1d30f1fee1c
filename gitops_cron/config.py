"""Settings: one frozen dataclass built from flags and environment (a flag wins).

Every field is declared once, with its flag, environment variable and help text;
the argument parser, the README table check and the redacted start-up log line
are all generated from that declaration.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from gitops_cron.errors import SettingsError

IN_CLUSTER_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
PROPAGATION_POLICIES = ("Background", "Foreground", "Orphan")


def setting(flag: str, env: str | None, help: str, default: Any = None, kind: str = "str") -> Any:
    """Declares a settings field; `kind` is one of str, int, float, bool, list."""
    meta = {"flag": flag, "env": env, "help": help, "kind": kind}
    if kind == "list":
        return field(default_factory=tuple, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Settings:
    """What one run does. Built only by `load_settings`."""

    repo: str = setting("--repo", "GITOPS_REPO", "git URL (https, ssh, git@host:path, file://) or a local directory read in place")
    revision: str = setting("--revision", "GITOPS_REVISION", "branch, tag or full commit SHA; default: the remote's default branch", "")
    path: str = setting("--path", "GITOPS_PATH", "subdirectory of the repository to read", "")
    inventory: str = setting("--inventory", "GITOPS_INVENTORY", "name of the inventory parent Secret (and of the run lock Lease)", "gitops-cron")
    namespace: str = setting("--namespace", "GITOPS_NAMESPACE", "namespace of the inventory parent; default: the pod's own namespace in a cluster, else gitops", "")
    default_namespace: str = setting("--default-namespace", "GITOPS_DEFAULT_NAMESPACE", "namespace for namespaced objects that name none", "default")
    prune: bool = setting("--prune", "GITOPS_PRUNE", "delete objects that left git (--no-prune to keep them)", True, "bool")
    dry_run: bool = setting("--dry-run", "GITOPS_DRY_RUN", "send every request with dryRun=All: change nothing, report what would change", False, "bool")
    plan: bool = setting("--plan", None, "read and check the manifests and print the ordered plan without contacting any cluster", False, "bool")
    field_manager: str = setting("--field-manager", "GITOPS_FIELD_MANAGER", "server-side apply field manager", "gitops-cron")
    concurrency: int = setting("--concurrency", "GITOPS_CONCURRENCY", "objects applied or deleted at once within one ordering stage", 8, "int")
    max_prune: int = setting("--max-prune", "GITOPS_MAX_PRUNE", "refuse to prune (exit 4) when more objects than this would be deleted", 100, "int")
    allow_empty: bool = setting("--allow-empty", "GITOPS_ALLOW_EMPTY", "allow a repository with no objects to prune everything", False, "bool")
    prune_protected: bool = setting("--prune-protected", "GITOPS_PRUNE_PROTECTED", "allow pruning Namespaces, CRDs, PVs and PVCs without the per-object annotation", False, "bool")
    propagation: str = setting("--propagation", "GITOPS_PROPAGATION", "deletion propagation policy for pruned objects: Background, Foreground or Orphan", "Background")
    recreate: bool = setting("--recreate", "GITOPS_RECREATE", "delete and recreate any object whose change hits an immutable field (per object: annotation gitops-cron.dev/recreate)", False, "bool")
    adopt: bool = setting("--adopt", "GITOPS_ADOPT", "take over objects that carry another inventory's part-of label", False, "bool")
    timeout: float = setting("--timeout", "GITOPS_TIMEOUT", "seconds the whole run may take", 240.0, "float")
    clone_timeout: float = setting("--clone-timeout", "GITOPS_CLONE_TIMEOUT", "seconds the clone may take", 60.0, "float")
    git_credentials_dir: str = setting("--git-credentials-dir", "GITOPS_GIT_CREDENTIALS_DIR", "directory with any of: token, username, password, ssh-privatekey, known_hosts", "/etc/gitops-cron/git")
    ssh_insecure_ignore_host_key: bool = setting("--ssh-insecure-ignore-host-key", "GITOPS_SSH_INSECURE_IGNORE_HOST_KEY", "turn off SSH host key checking (not recommended)", False, "bool")
    allow_namespaces: tuple[str, ...] = setting("--allow-namespaces", "GITOPS_ALLOW_NAMESPACES", "comma list: only objects in these namespaces may be applied", kind="list")
    deny_namespaces: tuple[str, ...] = setting("--deny-namespaces", "GITOPS_DENY_NAMESPACES", "comma list: objects in these namespaces are refused", kind="list")
    allow_kinds: tuple[str, ...] = setting("--allow-kinds", "GITOPS_ALLOW_KINDS", "comma list of Kind or Kind.group: only these kinds may be applied", kind="list")
    deny_kinds: tuple[str, ...] = setting("--deny-kinds", "GITOPS_DENY_KINDS", "comma list of Kind or Kind.group that are refused", kind="list")
    max_file_bytes: int = setting("--max-file-bytes", "GITOPS_MAX_FILE_BYTES", "manifest files larger than this are refused", 4 * 1024 * 1024, "int")
    max_yaml_nodes: int = setting("--max-yaml-nodes", "GITOPS_MAX_YAML_NODES", "a document expanding to more YAML nodes than this (alias bombs) is refused", 200_000, "int")
    full_apply_interval: float = setting("--full-apply-interval", "GITOPS_FULL_APPLY_INTERVAL", "seconds between runs that send every object; runs in between leave out objects unchanged in git and in the cluster since their last apply (0: send every object every run)", 3600.0, "float")
    lock_duration: float = setting("--lock-duration", "GITOPS_LOCK_DURATION", "seconds a run lock lasts without renewal before another run may take it over", 60.0, "float")
    kubeconfig: str = setting("--kubeconfig", "KUBECONFIG", "kubeconfig file (outside a cluster)", "")
    context: str = setting("--context", "GITOPS_CONTEXT", "kubeconfig context", "")
    log_format: str = setting("--log-format", "GITOPS_LOG_FORMAT", "text or json", "text")
    verbose: bool = setting("--verbose", "GITOPS_VERBOSE", "debug logging (HTTP requests, git progress)", False, "bool")


SETTINGS_FIELDS = tuple(f for f in dataclasses.fields(Settings))
SCP_LIKE = re.compile(r"^[\w.-]+@[\w.-]+:(?!//)")


def parse_bool(text: str) -> bool | None:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    return None


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reconcile.py",
        description="Converge a Kubernetes cluster to the YAML in a git repository, once, and exit.",
        epilog="Every flag also reads the environment variable named in its help; a flag wins.",
    )
    for f in SETTINGS_FIELDS:
        meta = f.metadata
        help_text = meta["help"] + (f" [{meta['env']}]" if meta["env"] else "")
        if meta["kind"] == "bool":
            parser.add_argument(meta["flag"], dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            parser.add_argument(meta["flag"], dest=f.name, default=None, metavar=f.name.upper(), help=help_text)
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    return parser


NUMBERS = {"int": (int, "a whole number"), "float": (float, "a number of seconds")}


def convert(f: dataclasses.Field, raw: Any, source: str, problems: list[str]) -> Any:
    """Turns one raw flag or environment value into the field's type, noting problems."""
    kind = f.metadata["kind"]
    if isinstance(raw, bool) or raw is None:
        return raw
    if kind == "bool":
        value = parse_bool(raw)
        if value is None:
            problems.append(f"{source}: expected true or false, got {raw!r}")
        return value
    if kind in NUMBERS:
        parse, expected = NUMBERS[kind]
        try:
            return parse(raw)
        except ValueError:
            problems.append(f"{source}: expected {expected}, got {raw!r}")
            return None
    if kind == "list":
        return tuple(item.strip() for item in raw.split(",") if item.strip())
    return raw.strip()


def pod_namespace() -> str | None:
    try:
        return IN_CLUSTER_NAMESPACE_FILE.read_text().strip() or None
    except OSError:
        return None


def load_settings(argv: Sequence[str], environ: Mapping[str, str]) -> Settings:
    """Builds the run's settings; raises SettingsError naming every bad setting at once."""
    args = make_parser().parse_args(list(argv))
    problems: list[str] = []
    values: dict[str, Any] = {}
    for f in SETTINGS_FIELDS:
        meta = f.metadata
        flag_value = getattr(args, f.name)
        if flag_value is not None:
            value = convert(f, flag_value, meta["flag"], problems)
        elif meta["env"] and environ.get(meta["env"], "") != "":
            value = convert(f, environ[meta["env"]], meta["env"], problems)
        else:
            continue
        if value is not None:
            values[f.name] = value
    if not values.get("namespace"):
        values["namespace"] = pod_namespace() or "gitops"
    settings = Settings(**values)
    problems.extend(check_settings(settings))
    if problems:
        raise SettingsError("bad settings: " + "; ".join(problems))
    return settings


def describe(f_name: str) -> str:
    meta = Settings.__dataclass_fields__[f_name].metadata
    return meta["flag"] + (f"/{meta['env']}" if meta["env"] else "")


def check_settings(s: Settings) -> list[str]:
    """Everything wrong with a Settings, one phrase each, naming the setting."""
    problems = []
    if not s.repo:
        problems.append(f"{describe('repo')}: required (a git URL or a local directory)")
    elif not looks_like_repo(s.repo):
        problems.append(f"{describe('repo')}: not a git URL or an existing directory")
    if s.path and (Path(s.path).is_absolute() or ".." in Path(s.path).parts):
        problems.append(f"{describe('path')}: must be a relative path inside the repository")
    for name in ("inventory", "namespace", "default_namespace"):
        value = getattr(s, name)
        pattern = DNS_SUBDOMAIN if name == "inventory" else DNS_LABEL
        if not pattern.match(value):
            problems.append(f"{describe(name)}: {value!r} is not a valid Kubernetes name")
    if not s.field_manager or len(s.field_manager) > 128:
        problems.append(f"{describe('field_manager')}: must be 1 to 128 characters")
    if s.concurrency < 1 or s.concurrency > 64:
        problems.append(f"{describe('concurrency')}: must be between 1 and 64")
    for name in ("max_prune", "max_file_bytes", "max_yaml_nodes", "full_apply_interval"):
        if getattr(s, name) < 0:
            problems.append(f"{describe(name)}: must not be negative")
    for name in ("timeout", "clone_timeout", "lock_duration"):
        if getattr(s, name) <= 0:
            problems.append(f"{describe(name)}: must be a positive number of seconds")
    if s.propagation not in PROPAGATION_POLICIES:
        problems.append(f"{describe('propagation')}: must be one of {', '.join(PROPAGATION_POLICIES)}")
    if s.log_format not in ("text", "json"):
        problems.append(f"{describe('log_format')}: must be text or json")
    if s.plan and s.dry_run:
        problems.append("--plan and --dry-run: choose one (--plan contacts no cluster)")
    return problems


def looks_like_repo(repo: str) -> bool:
    if re.match(r"^(https?|ssh|git|file)://", repo) or SCP_LIKE.match(repo):
        return True
    return Path(repo).is_dir()

