"""README commands and tables, checked against the code they describe."""

import re
from pathlib import Path

from gitops_cron.config import SETTINGS_FIELDS
from gitops_cron.errors import EXIT_FAILED, EXIT_OK, EXIT_PRUNE_REFUSED, EXIT_SETTINGS, EXIT_SOURCE
from tests.conftest import ROOT, run_job

README = (ROOT / "README.md").read_text()


def test_quickstart_plan_reads_the_example_repository_without_a_cluster():
    assert ".venv/bin/python reconcile.py --plan --repo examples/demo" in README
    result = run_job("--plan", "--repo", "examples/demo", env={"KUBECONFIG": "/nonexistent"})
    assert result.exit_code == 0, result.output
    for line in ["customresourcedefinition.apiextensions.k8s.io/widgets.example.gitops-cron.dev",
                 "namespace/demo", "configmap/web-content -n demo", "service/web -n demo",
                 "deployment.apps/web -n demo", "widget.example.gitops-cron.dev/blue -n demo",
                 "applyset.kubernetes.io/id=applyset-FvxGnLnWyOUrbxBNXbCxQ1mBV0KIecBiPv8NN3HtUoE-v1"]:
        assert line in result.stdout
    order = [result.stdout.index(kind) for kind in ("customresourcedefinition", "namespace/demo",
                                                     "configmap/web-content", "deployment.apps/web", "widget.")]
    assert order == sorted(order)


def test_settings_table_lists_every_setting_with_its_flag_and_variable():
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `(--[a-z-]+)`[^|]*\| `?([A-Z_]*)`? *\|", README, re.M)}
    for f in SETTINGS_FIELDS:
        flag, env = f.metadata["flag"], f.metadata["env"] or ""
        assert flag in rows, f"{flag} missing from README settings table"
        assert rows[flag] == env, f"{flag}: README says {rows[flag]!r}, code reads {env!r}"
    assert len(rows) == len(SETTINGS_FIELDS)


def test_exit_code_table_matches_the_code():
    codes = dict(re.findall(r"^\| ([0-4]) \| ([^|]+)\|", README, re.M))
    assert set(codes) == {str(c) for c in (EXIT_OK, EXIT_FAILED, EXIT_SETTINGS, EXIT_SOURCE, EXIT_PRUNE_REFUSED)}
    assert "bad settings" in codes[str(EXIT_SETTINGS)] and "prune" in codes[str(EXIT_PRUNE_REFUSED)]


def test_ci_runs_the_readme_test_command():
    command = ".venv/bin/python -m pytest"
    assert f"```sh\n{command}\n```" in README
    assert command in Path(ROOT / ".ci" / "run").read_text().splitlines()[-1]
