"""Applied: which objects this run need not send, and the record that tells.

After each apply we keep, per object, the resourceVersion the server answered
and a fingerprint of the body we sent. Every write to an object, by anyone,
gives it a new resourceVersion (it is etcd's revision of the key), so a member
the inventory listing still shows at that resourceVersion is exactly what our
last apply left. If git still asks for the same body, applying it again would
change nothing, and the object is reported unchanged without a request. Any
write in between (drift), any change in git or in how we apply, and the object
is sent. A stale record can only cause an extra apply, never a skipped one.

Every `--full-apply-interval` a run sends every object anyway, as kubectl
would: the record proves the object did not change, not that the server would
still answer the same (a new mutating webhook, a changed CRD default).

Secrets are always sent: a fingerprint of their body, stored where others can
read it, would let a reader test guesses of their values.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import logging
import zlib
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from gitops_cron.manifests import ObjectRef
from gitops_cron.plan import Desired

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
# Secret data is limited to 1 MiB in all; past half of it (about 18,000 objects) the record is left out
# rather than risk the parent write, and every object is sent on every run.
MAX_ENCODED_BYTES = 512 * 1024


@dataclass(frozen=True)
class Entry:
    resource_version: str
    fingerprint: str


@dataclass(frozen=True)
class Record:
    """What our applies left, by object key; `full_apply_time` is when a run last sent every object."""

    entries: Mapping[str, Entry] = field(default_factory=dict)
    full_apply_time: float = 0.0


def key_of(ref: ObjectRef) -> str:
    return f"{ref.group}/{ref.kind}/{ref.namespace}/{ref.name}"


def recordable(desired: Desired) -> bool:
    return not (desired.ref.group == "" and desired.ref.kind == "Secret")


def fingerprint(desired: Desired, field_manager: str) -> str:
    """Of everything that decides what an apply does: the exact bytes sent and who sends them."""
    digest = hashlib.blake2b(field_manager.encode() + b"\0" + desired.payload, digest_size=12).digest()
    return base64.urlsafe_b64encode(digest).decode()


def full_apply_due(record: Record, now: float, interval: float) -> bool:
    return interval <= 0 or record.full_apply_time <= 0 or now - record.full_apply_time >= interval


def unchanged_since_applied(objects: Iterable[Desired], live_versions: Mapping[ObjectRef, str], record: Record,
                            field_manager: str) -> frozenset[ObjectRef]:
    """Members still at the resourceVersion our last apply of the same body left them at."""
    unchanged = set()
    for desired in objects:
        entry = record.entries.get(key_of(desired.ref))
        live = live_versions.get(desired.ref)
        if (entry is not None and live and live == entry.resource_version and recordable(desired)
                and entry.fingerprint == fingerprint(desired, field_manager)):
            unchanged.add(desired.ref)
    return frozenset(unchanged)


def updated(record: Record, objects: Iterable[Desired], applied: Mapping[ObjectRef, str],
            not_sent: frozenset[ObjectRef], field_manager: str, full_apply_time: float) -> Record:
    """The record after a run: fresh entries for what it applied, old ones for what it did not send.

    Objects that failed, or that an interrupted run never reached, lose their entry (and are
    sent next time); objects no longer in git drop out."""
    entries: dict[str, Entry] = {}
    for desired in objects:
        if not recordable(desired):
            continue
        key = key_of(desired.ref)
        if desired.ref in applied:
            entries[key] = Entry(applied[desired.ref], fingerprint(desired, field_manager))
        elif desired.ref in not_sent and key in record.entries:
            entries[key] = record.entries[key]
    return Record(entries, full_apply_time)


def encode(record: Record) -> str:
    """Base64 of gzipped JSON, as Secret data; "" when there is nothing to keep or it is too big."""
    if not record.entries and not record.full_apply_time:
        return ""
    document = {"version": FORMAT_VERSION, "fullApplyTime": round(record.full_apply_time, 3),
                "objects": {key: [e.resource_version, e.fingerprint] for key, e in sorted(record.entries.items())}}
    raw = gzip.compress(json.dumps(document, separators=(",", ":")).encode(), compresslevel=6, mtime=0)
    encoded = base64.b64encode(raw).decode()
    if len(encoded) > MAX_ENCODED_BYTES:
        log.warning("applied record of %d object(s) is %d KiB, over the %d KiB the inventory parent keeps; "
                    "every object is sent on every run", len(record.entries), len(encoded) // 1024,
                    MAX_ENCODED_BYTES // 1024)
        return ""
    return encoded


def decode(data: str) -> Record:
    """The record from the parent; an unreadable one is an empty record (every object is sent)."""
    if not data:
        return Record()
    try:
        document = json.loads(gzip.decompress(base64.b64decode(data, validate=True)))
        if document.get("version") != FORMAT_VERSION:
            raise ValueError(f"format version {document.get('version')!r}")
        entries = {str(key): Entry(str(value[0]), str(value[1])) for key, value in document["objects"].items()}
        return Record(entries, float(document.get("fullApplyTime") or 0.0))
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OSError, EOFError, zlib.error) as error:
        log.warning("applied record in the inventory parent is unreadable (%s); every object is sent", error)
        return Record()
