"""Settings: flags over environment, types, and one line naming every bad setting."""

import pytest

from gitops_cron.config import SETTINGS_FIELDS, load_settings
from gitops_cron.errors import SettingsError


def test_flag_wins_over_environment(tmp_path):
    env = {"GITOPS_REPO": str(tmp_path), "GITOPS_CONCURRENCY": "3", "GITOPS_PRUNE": "false"}
    settings = load_settings(["--concurrency", "5"], env)
    assert settings.concurrency == 5 and settings.prune is False and settings.repo == str(tmp_path)
    assert load_settings(["--prune"], env).prune is True


def test_defaults(tmp_path):
    settings = load_settings(["--repo", str(tmp_path)], {})
    assert (settings.inventory, settings.namespace, settings.default_namespace, settings.field_manager) == (
        "gitops-cron", "gitops", "default", "gitops-cron")
    assert settings.prune and not settings.dry_run and settings.propagation == "Background"


def test_lists_are_comma_separated(tmp_path):
    settings = load_settings(["--repo", str(tmp_path)], {"GITOPS_DENY_KINDS": "ClusterRoleBinding, Role,"})
    assert settings.deny_kinds == ("ClusterRoleBinding", "Role")


@pytest.mark.parametrize("repo", ["https://example.com/org/repo.git", "ssh://git@example.com/org/repo.git",
                                  "git@example.com:org/repo.git", "file:///srv/repo"])
def test_repository_url_forms_are_accepted(repo):
    assert load_settings(["--repo", repo], {}).repo == repo


def test_every_problem_is_named_in_one_error():
    with pytest.raises(SettingsError) as raised:
        load_settings(["--concurrency", "x", "--path", "../up", "--namespace", "Bad_NS"],
                      {"GITOPS_PRUNE": "maybe", "GITOPS_TIMEOUT": "-1"})
    message = str(raised.value)
    for part in ("--repo/GITOPS_REPO: required", "--concurrency: expected a whole number",
                 "GITOPS_PRUNE: expected true or false", "--path/GITOPS_PATH: must be a relative path",
                 "--namespace/GITOPS_NAMESPACE: 'Bad_NS' is not a valid Kubernetes name",
                 "--timeout/GITOPS_TIMEOUT: must be a positive number"):
        assert part in message
    assert raised.value.exit_code == 2 and "\n" not in message


def test_every_setting_has_a_flag_and_help():
    for f in SETTINGS_FIELDS:
        assert f.metadata["flag"].startswith("--") and f.metadata["help"]
