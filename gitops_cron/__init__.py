"""gitops-cron: converge a cluster to the YAML in a git repository, once per run.

The stages live one per module and data flows one way through them:
config → source → manifests → plan → (kube: discovery, lock, inventory) →
apply → prune → report. Only `source` runs git, only `manifests` parses YAML,
and only `kube`, `lock`, `inventory`, `apply` and `prune` talk to the cluster.
"""

__version__ = "0.1.0"
