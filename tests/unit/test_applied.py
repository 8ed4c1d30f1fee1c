"""The applied record: when an object may be left out, and what the record keeps after a run."""

import base64
import gzip
import json

import pytest

from gitops_cron import applied
from gitops_cron.applied import Entry, Record
from gitops_cron.apply import Change
from gitops_cron.manifests import ObjectRef
from gitops_cron.plan import ApiResource, Desired, Plan
from gitops_cron.run import applied_record

CONFIGMAP = ApiResource("", "v1", "ConfigMap", "configmaps", True)
SECRET = ApiResource("", "v1", "Secret", "secrets", True)


def desired(name, data="v", resource=CONFIGMAP):
    ref = ObjectRef(resource.group, resource.kind, "demo", name)
    body = {"apiVersion": "v1", "kind": resource.kind, "metadata": {"name": name, "namespace": "demo"},
            "data": {"key": data}}
    return Desired(ref, resource, body, f"{name}.yaml:1")


def recorded(*objects, version="7", manager="gitops-cron"):
    return Record({applied.key_of(d.ref): Entry(version, applied.fingerprint(d, manager)) for d in objects})


def test_fingerprint_follows_the_body_and_the_field_manager_not_key_order():
    one = desired("a")
    reordered = Desired(one.ref, CONFIGMAP, dict(reversed(list(one.body.items()))), one.location)
    assert applied.fingerprint(one, "m") == applied.fingerprint(reordered, "m")
    assert applied.fingerprint(one, "m") != applied.fingerprint(desired("a", "w"), "m")
    assert applied.fingerprint(one, "m") != applied.fingerprint(one, "other")


def test_only_members_at_the_recorded_version_with_the_same_body_are_left_out():
    same, edited, moved, absent = desired("same"), desired("edited"), desired("moved"), desired("absent")
    record = recorded(same, edited, moved, absent)
    now = [same, desired("edited", "changed in git"), moved, absent, desired("new")]
    live = {same.ref: "7", edited.ref: "7", moved.ref: "8", desired("new").ref: "7"}
    assert applied.unchanged_since_applied(now, live, record, "gitops-cron") == {same.ref}


def test_a_record_made_by_another_field_manager_leaves_nothing_out():
    one = desired("a")
    assert applied.unchanged_since_applied([one], {one.ref: "7"}, recorded(one, manager="kubectl"), "gitops-cron") == set()


def test_secrets_are_never_left_out_nor_recorded():
    password = desired("db", "hunter2", SECRET)
    record = Record({applied.key_of(password.ref): Entry("7", applied.fingerprint(password, "gitops-cron"))})
    assert applied.unchanged_since_applied([password], {password.ref: "7"}, record, "gitops-cron") == set()
    assert applied.updated(Record(), [password], {password.ref: "9"}, frozenset(), "gitops-cron", 0).entries == {}


@pytest.mark.parametrize("interval, last, due", [(0, 999.0, True), (3600, 999.0, False), (3600, 0.0, True),
                                                 (60, 930.0, True), (60, 950.0, False)])
def test_full_apply_due(interval, last, due):
    assert applied.full_apply_due(Record({}, last), 1000.0, interval) is due


def test_updated_keeps_fresh_versions_carries_what_was_not_sent_and_drops_the_rest():
    sent, kept, failed, gone = desired("sent"), desired("kept"), desired("failed"), desired("gone")
    before = recorded(sent, kept, failed, gone)
    after = applied.updated(before, [sent, kept, failed], {sent.ref: "20"}, frozenset({kept.ref}), "gitops-cron", 5.0)
    assert after.entries == {applied.key_of(sent.ref): Entry("20", applied.fingerprint(sent, "gitops-cron")),
                             applied.key_of(kept.ref): before.entries[applied.key_of(kept.ref)]}
    assert after.full_apply_time == 5.0


def test_encode_decode_round_trip():
    record = Record({"/ConfigMap/demo/a": Entry("12", "abc"), "apps/Deployment/demo/web": Entry("13", "def")}, 1234.5)
    assert applied.decode(applied.encode(record)) == record
    assert applied.encode(Record()) == "" and applied.decode("") == Record()


@pytest.mark.parametrize("data", [
    "not base64!",
    base64.b64encode(b"not gzip").decode(),
    base64.b64encode(gzip.compress(b"[1, 2]")).decode(),
    base64.b64encode(gzip.compress(json.dumps({"version": 99, "objects": {}}).encode())).decode(),
    base64.b64encode(gzip.compress(json.dumps({"version": 1, "objects": {"k": ["1"]}}).encode())).decode(),
])
def test_an_unreadable_record_is_an_empty_one(data, caplog):
    assert applied.decode(data) == Record()
    assert "unreadable" in caplog.text


def test_a_record_too_big_for_the_parent_is_left_out(monkeypatch, caplog):
    monkeypatch.setattr(applied, "MAX_ENCODED_BYTES", 4096)
    objects = [desired(f"cm{i}") for i in range(500)]
    record = applied.updated(Record(), objects, {d.ref: str(i) for i, d in enumerate(objects)}, frozenset(), "m", 1.0)
    assert applied.encode(record) == ""
    assert "applied record of 500 object(s)" in caplog.text and "over the 4 KiB" in caplog.text


def test_a_full_apply_counts_only_when_it_reached_every_object():
    a, b = desired("a"), desired("b")
    plan = Plan(((a, b),))
    before = Record({}, 100.0)
    both = [Change(str(a.ref), "unchanged", resource_version="5"), Change(str(b.ref), "configured", resource_version="6")]
    done = applied.decode(applied_record(before, plan, both, frozenset(), "m", 2000.0))
    assert done.full_apply_time == 2000.0 and set(done.entries) == {applied.key_of(a.ref), applied.key_of(b.ref)}
    interrupted = applied.decode(applied_record(before, plan, both[:1], frozenset(), "m", 2000.0))
    assert interrupted.full_apply_time == 100.0 and set(interrupted.entries) == {applied.key_of(a.ref)}
    partial = applied.decode(applied_record(before, plan, both, frozenset(), "m", None))
    assert partial.full_apply_time == 100.0
