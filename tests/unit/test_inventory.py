"""The ApplySet id, checked against KEP-3659's definition with worked values."""

from gitops_cron.inventory import applyset_id, live_of, split_list
from gitops_cron.plan import ApiResource


def test_applyset_id_matches_the_kep_definition():
    # KEP-3659: applyset-<base64url(sha256("<name>.<namespace>.<kind>.<group>")), no padding>-v1.
    # The digests below were computed outside Python:
    #   printf 'gitops-cron.gitops.Secret.' | openssl dgst -sha256 -binary | base64 | tr '+/' '-_' | tr -d =
    assert applyset_id("gitops-cron", "gitops") == "applyset-FvxGnLnWyOUrbxBNXbCxQ1mBV0KIecBiPv8NN3HtUoE-v1"
    assert applyset_id("test-set", "default", "ConfigMap", "") == \
        "applyset-5lCGfqffIEKbtRno3jN93Gx9OTWWcjpTkM2dCujD-18-v1"


def test_applyset_id_fits_a_label_value():
    value = applyset_id("a" * 253, "b" * 63)
    assert len(value) <= 63


def test_annotation_lists_parse_empty_and_spaced_values():
    assert split_list("") == frozenset()
    assert split_list("Deployment.apps, Namespace,,") == {"Deployment.apps", "Namespace"}


def test_live_member_records_apply_managers_and_controller():
    item = {"metadata": {"name": "web", "namespace": "demo", "uid": "u1", "resourceVersion": "7",
                         "managedFields": [{"manager": "gitops-cron", "operation": "Apply"},
                                           {"manager": "kubectl", "operation": "Update"}],
                         "ownerReferences": [{"kind": "Foo", "name": "f", "controller": True}]}}
    live = live_of(item, ApiResource("apps", "v1", "Deployment", "deployments", True))
    assert live.applied_by == {"gitops-cron"}
    assert live.controller == "Foo/f"
    assert str(live.ref) == "deployment.apps/web -n demo"
