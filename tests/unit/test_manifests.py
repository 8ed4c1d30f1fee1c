"""Parsing rules: what becomes an object, what is skipped, and what is an error naming its place."""

import os
from pathlib import Path

import pytest
import yaml

from gitops_cron.manifests import Loader, ObjectRef, expanded_size, load_manifests
from gitops_cron.tree import list_directory, read_files, select

LIMIT = 1_000_000


def parse(tmp_path: Path, files: dict[str, str], max_bytes: int = LIMIT, max_nodes: int = 10_000):
    """Through the local-directory reader, as `--repo DIR` reads."""
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    chosen, errors = select(list_directory(tmp_path), "", max_bytes)
    read, read_errors = read_files(chosen)
    parsed = load_manifests(read, max_nodes)
    return [name for name, _ in chosen], [*errors, *read_errors, *parsed.errors], parsed


CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n"


def test_finds_yaml_and_yml_recursively_in_sorted_order_skipping_hidden(tmp_path):
    found, errors, _ = parse(tmp_path, {"b/x.yml": CM.format(name="x"), "a.yaml": CM.format(name="a"),
                                        ".github/ci.yaml": "on: push\n", "b/.hidden.yaml": CM.format(name="h"),
                                        "notes.txt": "hi"})
    assert found == ["a.yaml", "b/x.yml"]
    assert errors == []


def test_multi_document_file_skips_empty_documents_and_non_objects(tmp_path):
    _, errors, parsed = parse(tmp_path, {"m.yaml": "---\n" + CM.format(name="a") + "---\n---\n# only a comment\n"
                                         "---\nvalues: {replicas: 3}\n---\n" + CM.format(name="b")})
    assert [m.name for m in parsed.manifests] == ["a", "b"]
    assert parsed.skipped == ("m.yaml:10",)
    assert errors == []


def test_list_kind_is_expanded(tmp_path):
    text = "apiVersion: v1\nkind: List\nitems:\n- " + CM.format(name="a").replace("\n", "\n  ") + "\n- " + \
        CM.format(name="b").replace("\n", "\n  ")
    _, errors, parsed = parse(tmp_path, {"l.yaml": text})
    assert errors == []
    assert [m.name for m in parsed.manifests] == ["a", "b"]
    assert parsed.manifests[1].location == "l.yaml:1 items[1]"


@pytest.mark.parametrize("text, reason", [
    ("apiVersion: v1\nmetadata: {name: x}\n", "has no valid kind"),
    ("kind: ConfigMap\nmetadata: {name: x}\n", "has no valid apiVersion"),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n", "ConfigMap has no metadata.name"),
    ("- just\n- a list\n", "document is a list, not a mapping"),
])
def test_malformed_object_is_an_error_naming_file_and_line(tmp_path, text, reason):
    _, errors, parsed = parse(tmp_path, {"bad.yaml": CM.format(name="ok") + "---\n" + text})
    assert [m.name for m in parsed.manifests] == ["ok"]
    assert [str(e) for e in errors] == [f"bad.yaml:6: {reason}"]


def test_yaml_syntax_error_names_file_line_and_column(tmp_path):
    _, errors, parsed = parse(tmp_path, {"good.yaml": CM.format(name="good"),
                                         "broken.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [x\n"})
    assert [m.name for m in parsed.manifests] == ["good"]
    assert len(errors) == 1 and str(errors[0]).startswith("broken.yaml:5:1: YAML syntax error")


def test_same_object_twice_is_an_error_naming_both_files(tmp_path):
    _, errors, parsed = parse(tmp_path, {"a.yaml": CM.format(name="x"), "b.yaml": CM.format(name="x")})
    assert len(parsed.manifests) == 1
    assert [str(e) for e in errors] == ["b.yaml:1: configmap/x is also defined at a.yaml:1"]


def test_alias_bomb_is_refused_without_expanding_it(tmp_path):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for level in range(1, 12):
        bomb += f"l{level}: &l{level} [" + ", ".join([f"*{'a' if level == 1 else f'l{level - 1}'}"] * 10) + "]\n"
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata:\n  " + bomb.replace("\n", "\n  ")
    _, errors, parsed = parse(tmp_path, {"bomb.yaml": text, "ok.yaml": CM.format(name="ok")})
    assert [m.name for m in parsed.manifests] == ["ok"]
    assert len(errors) == 1 and "alias bomb" in str(errors[0]) and str(errors[0]).startswith("bomb.yaml:1")


def test_a_large_document_without_aliases_is_still_held_to_the_node_limit(tmp_path):
    items = "".join(f"  k{i}: v\n" for i in range(400))  # 801 nodes in data alone, no alias
    _, errors, parsed = parse(tmp_path, {"wide.yaml": CM.format(name="wide") + "data:\n" + items}, max_nodes=500)
    assert parsed.manifests == ()
    assert [str(e) for e in errors] == [
        "wide.yaml:1: document expands to more than 500 YAML nodes (alias bomb?); refused"]


@pytest.mark.parametrize("text", ["a:\n" * 40, "- \n" * 40, "{" + ",".join("k" * 40) + "}", "[" * 20 + "]" * 20])
def test_two_nodes_per_character_bounds_a_document_without_aliases(text):
    for node in yaml.compose_all(text, Loader=Loader):
        assert expanded_size(node, {}, 10**9) <= 2 * len(text) + 1


def test_oversized_file_is_refused(tmp_path):
    _, errors, parsed = parse(tmp_path, {"big.yaml": CM.format(name="big") + "data:\n  k: " + "x" * 5000 + "\n"},
                              max_bytes=1000)
    assert parsed.manifests == ()
    assert "over the 1000-byte limit" in str(errors[0])


def test_undecodable_file_is_reported(tmp_path):
    (tmp_path / "latin1.yaml").write_bytes(b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: caf\xe9}\n")
    _, errors, parsed = parse(tmp_path, {"ok.yaml": CM.format(name="ok")})
    assert [m.name for m in parsed.manifests] == ["ok"]
    assert [str(e) for e in errors] == ["latin1.yaml: not UTF-8 text (byte 51); refused"]


def test_symlink_outside_the_repository_is_refused(tmp_path):
    outside = tmp_path / "outside"
    repo = tmp_path / "repo"
    outside.mkdir()
    repo.mkdir()
    (outside / "token.yaml").write_text(CM.format(name="stolen"))
    (repo / "link.yaml").symlink_to(outside / "token.yaml")
    (repo / "dir").symlink_to(outside)
    found, errors = select(list_directory(repo), "", LIMIT)
    assert found == []  # and the linked directory is not walked
    assert [str(e) for e in errors] == ["link.yaml: symlink leads outside the repository; refused"]


def test_object_identity_uses_group_kind_namespace_name(tmp_path):
    _, _, parsed = parse(tmp_path, {"d.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: demo}\n"})
    manifest = parsed.manifests[0]
    assert (manifest.group, manifest.kind, manifest.namespace, manifest.name) == ("apps", "Deployment", "demo", "web")
    assert str(ObjectRef("apps", "Deployment", "demo", "web")) == "deployment.apps/web -n demo"


@pytest.mark.parametrize("name, field", [("..", "name"), ("a/b", "name"), ("50%", "name"), (".", "namespace")])
def test_names_that_cannot_be_a_path_segment_are_refused(tmp_path, name, field):
    metadata = {"name": name} if field == "name" else {"name": "ok", "namespace": name}
    text = yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata})
    _, errors, parsed = parse(tmp_path, {"cm.yaml": text})
    assert parsed.manifests == ()
    assert [str(e) for e in errors] == [f"cm.yaml:1: ConfigMap {name!r}: metadata.{field} cannot be part of an API "
                                        "path ('.', '..', or containing '/' or '%')"]


def test_a_fifo_in_a_local_directory_is_not_read(tmp_path):
    os.mkfifo(tmp_path / "pipe.yaml")
    found, errors, parsed = parse(tmp_path, {"ok.yaml": CM.format(name="ok")})
    assert found == ["ok.yaml"] and errors == []
