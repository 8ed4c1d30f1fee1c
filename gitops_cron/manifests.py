"""Manifests: the source's files → parsed objects (`Manifest`) and the errors found on the way.

Every problem is collected rather than raised, so one broken file never hides
the others; the run applies what parsed and refuses to prune. Repository content
is untrusted: YAML alias expansion and undecodable bytes are refused with a
message naming the file (sizes and symlinks were settled when the files were read).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import yaml

from gitops_cron.errors import ManifestError
from gitops_cron.tree import SourceFile

try:
    Loader: type = yaml.CSafeLoader
except AttributeError:  # PyYAML built without libyaml
    Loader = yaml.SafeLoader


@dataclass(frozen=True)
class ObjectRef:
    """An object's identity: what two documents must not both define, and what logs name."""

    group: str
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return format_ref(self.group, self.kind, self.name, self.namespace)


def format_ref(group: str, kind: str, name: str, namespace: str = "") -> str:
    """The one way an object is named, as kubectl prints it, plus `-n NS` so it can be pasted back."""
    kind_group = kind.lower() + (f".{group}" if group else "")
    return f"{kind_group}/{name}" + (f" -n {namespace}" if namespace else "")


@dataclass(frozen=True)
class Manifest:
    """One object from git. `body` is the document as written; nothing downstream mutates it."""

    body: dict[str, Any]
    location: str

    @property
    def api_version(self) -> str:
        return self.body["apiVersion"]

    @property
    def group(self) -> str:
        return group_of(self.api_version)

    @property
    def kind(self) -> str:
        return self.body["kind"]

    @property
    def name(self) -> str:
        return self.body["metadata"]["name"]

    @property
    def namespace(self) -> str:
        return self.body["metadata"].get("namespace") or ""


@dataclass(frozen=True)
class Parsed:
    """What a tree held: the objects, the errors, and the documents skipped as not Kubernetes objects."""

    manifests: tuple[Manifest, ...]
    errors: tuple[ManifestError, ...]
    skipped: tuple[str, ...]


def group_of(api_version: str) -> str:
    return api_version.rsplit("/", 1)[0] if "/" in api_version else ""


def load_manifests(files: Iterable[SourceFile], max_nodes: int) -> Parsed:
    """Parses every file; duplicates are errors naming both places."""
    manifests: list[Manifest] = []
    errors: list[ManifestError] = []
    skipped: list[str] = []
    seen: dict[ObjectRef, str] = {}
    for source in files:
        try:
            text = source.data.decode("utf-8")
        except UnicodeDecodeError as error:
            errors.append(ManifestError(source.name, f"not UTF-8 text (byte {error.start}); refused"))
            continue
        for item in parse_documents(text, source.name, max_nodes):
            if isinstance(item, ManifestError):
                errors.append(item)
            elif isinstance(item, str):
                skipped.append(item)
            else:
                ref = ref_of(item)
                if ref in seen:
                    errors.append(ManifestError(item.location, f"{ref} is also defined at {seen[ref]}"))
                    continue
                seen[ref] = item.location
                manifests.append(item)
    return Parsed(tuple(manifests), tuple(errors), tuple(skipped))


def ref_of(manifest: Manifest) -> ObjectRef:
    return ObjectRef(manifest.group, manifest.kind, manifest.namespace, manifest.name)


def parse_documents(text: str, name: str, max_nodes: int) -> Iterator[Manifest | ManifestError | str]:
    """Yields a Manifest per object, a ManifestError per broken document, a location per skipped one.

    A syntax error ends the file: the YAML stream cannot be resynchronised after it.
    """
    loader = Loader(text)
    # Without an alias (`*name`) a document holds at most two nodes per character ("a:" is a mapping,
    # a key and an empty value), so only a file with an alias or a very large one needs counting.
    count = "*" in text or 2 * len(text) + 1 > max_nodes
    try:
        while loader.check_node():
            node = loader.get_node()
            line = node.start_mark.line + 1
            location = f"{name}:{line}"
            if count and expanded_size(node, {}, max_nodes) > max_nodes:
                yield ManifestError(location, f"document expands to more than {max_nodes} YAML nodes "
                                              "(alias bomb?); refused")
                continue
            document = loader.construct_document(node)
            yield from objects_in(document, location)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
        yield ManifestError(where, f"YAML syntax error: {error.problem or error.context}")
    except yaml.YAMLError as error:
        yield ManifestError(name, f"YAML error: {error}")
    finally:
        loader.dispose()


def expanded_size(node: yaml.Node, memo: dict[int, int], limit: int) -> int:
    """Node count after alias expansion, computed on the shared graph so a bomb costs nothing to measure."""
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = limit + 1  # a cycle (recursive alias) counts as over the limit
    total = 1
    if isinstance(node, yaml.SequenceNode):
        for child in node.value:
            total += expanded_size(child, memo, limit)
            if total > limit:
                break
    elif isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            total += expanded_size(key_node, memo, limit) + expanded_size(value_node, memo, limit)
            if total > limit:
                break
    memo[key] = total
    return total


def objects_in(document: Any, location: str) -> Iterator[Manifest | ManifestError | str]:
    if document is None:
        return
    if not isinstance(document, dict):
        yield ManifestError(location, f"document is a {type(document).__name__}, not a mapping")
        return
    api_version, kind = document.get("apiVersion"), document.get("kind")
    if api_version is None and kind is None:
        yield location  # CI configs, chart values: not ours to apply
        return
    if not isinstance(api_version, str) or not api_version or not isinstance(kind, str) or not kind:
        missing = "apiVersion" if not isinstance(api_version, str) or not api_version else "kind"
        yield ManifestError(location, f"has no valid {missing}")
        return
    if kind.endswith("List") and isinstance(document.get("items"), list):
        for index, item in enumerate(document["items"]):
            yield from objects_in(item, f"{location} items[{index}]")
        return
    metadata = document.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str) or not metadata["name"]:
        yield ManifestError(location, f"{kind} has no metadata.name")
        return
    namespace = metadata.get("namespace")
    if namespace is not None and not isinstance(namespace, str):
        yield ManifestError(location, f"{kind} {metadata['name']}: metadata.namespace is not a string")
        return
    for field, value in (("name", metadata["name"]), ("namespace", namespace or "")):
        if not is_path_segment(value):
            yield ManifestError(location, f"{kind} {value!r}: metadata.{field} cannot be part of an API path "
                                          "('.', '..', or containing '/' or '%')")
            return
    yield Manifest(body=document, location=location)


def is_path_segment(name: str) -> bool:
    """The API server's rule for every object name and namespace (path segment names): a name that
    breaks it would put a request on another URL than the object's own."""
    return name not in (".", "..") and "/" not in name and "%" not in name
