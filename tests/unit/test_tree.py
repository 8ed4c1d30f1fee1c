"""Which files of a listing are manifests: suffixes, hidden paths, sizes, and symlinks resolved on the
listing alone (a git tree's links are data: nothing outside the repository may be read through one)."""

import pytest

from gitops_cron.tree import OUTSIDE, Entry, parse_cat_file, parse_ls_tree, resolve, resolve_directory, select


def listing(*files, links=None, size=10):
    entries = {path: Entry(path, size, f"blob-{path}") for path in files}
    entries.update({path: Entry(path, len(target), f"blob-{path}", target) for path, target in (links or {}).items()})
    return entries


def chosen(entries, directory="", limit=1000):
    picked, errors = select(entries, directory, limit)
    return [(name, entry.path) for name, entry in picked], [str(e) for e in errors]


def test_yaml_files_under_the_directory_sorted_hidden_skipped():
    entries = listing("b/x.yml", "a.yaml", ".github/ci.yaml", "b/.hidden.yaml", "notes.txt", "b/c/deep.yaml")
    assert chosen(entries) == ([("a.yaml", "a.yaml"), ("b/c/deep.yaml", "b/c/deep.yaml"), ("b/x.yml", "b/x.yml")], [])
    assert chosen(entries, "b") == ([("b/c/deep.yaml", "b/c/deep.yaml"), ("b/x.yml", "b/x.yml")], [])


def test_hidden_only_counts_below_the_directory():
    assert chosen(listing(".config/app/a.yaml"), ".config/app") == ([(".config/app/a.yaml", ".config/app/a.yaml")], [])


def test_files_over_the_limit_are_refused_unread():
    assert chosen(listing("big.yaml", size=5000), limit=4000) == (
        [], ["big.yaml: file is 5000 bytes, over the 4000-byte limit; refused"])


@pytest.mark.parametrize("target", ["/etc/passwd", "../../outside.yaml", "a/../../../x.yaml", "/var/run/secrets/token"])
def test_links_that_leave_the_repository_are_refused(target):
    entries = listing("ok.yaml", links={"app/link.yaml": target})
    assert chosen(entries) == ([("ok.yaml", "ok.yaml")], ["app/link.yaml: symlink leads outside the repository; refused"])


def test_a_link_into_the_tree_outside_the_directory_reads_the_target_under_the_links_name():
    entries = listing("shared/base.yaml", links={"app/base.yaml": "../shared/base.yaml"})
    assert chosen(entries, "app") == ([("app/base.yaml", "shared/base.yaml")], [])


def test_a_link_to_a_file_that_is_read_anyway_is_not_read_twice():
    entries = listing("app/a.yaml", links={"app/alias.yaml": "a.yaml"})
    assert chosen(entries, "app") == ([("app/a.yaml", "app/a.yaml")], [])


def test_a_link_to_a_non_yaml_file_in_the_directory_is_read_through_the_link():
    entries = listing("app/data.txt", links={"app/data.yaml": "data.txt"})
    assert chosen(entries, "app") == ([("app/data.yaml", "app/data.txt")], [])


def test_links_through_linked_directories_are_resolved_and_still_checked():
    entries = listing("real/x.yaml", links={"alias": "real", "out": "..", "via.yaml": "alias/x.yaml",
                                            "escape.yaml": "out/etc/passwd"})
    assert resolve(entries, "via.yaml") == "real/x.yaml"
    assert resolve(entries, "escape.yaml") == OUTSIDE
    assert chosen(entries)[1] == ["escape.yaml: symlink leads outside the repository; refused"]


def test_dangling_and_looping_links_are_errors():
    entries = listing(links={"gone.yaml": "missing.yaml", "a.yaml": "b.yaml", "b.yaml": "a.yaml"})
    assert resolve(entries, "a.yaml") is None
    assert chosen(entries)[1] == ["a.yaml: symlink leads to no file in the repository; refused",
                                  "b.yaml: symlink leads to no file in the repository; refused",
                                  "gone.yaml: symlink leads to no file in the repository; refused"]


def test_directory_of_the_path_setting():
    entries = listing("clusters/prod/a.yaml", links={"prod": "clusters/prod", "escape": "../.."})
    assert resolve_directory(entries, "") == ""
    assert resolve_directory(entries, "clusters/prod/") == "clusters/prod"
    assert resolve_directory(entries, "prod") == "clusters/prod"
    with pytest.raises(ValueError, match="leads outside the repository"):
        resolve_directory(entries, "escape")
    with pytest.raises(ValueError, match="no such directory"):
        resolve_directory(entries, "clusters/staging")


def test_ls_tree_and_cat_file_output_are_parsed():
    output = b"\x00".join([b"100644 blob aaaa     12\tapp/a.yaml", b"120000 blob bbbb      9\tapp/l.yaml",
                            b"160000 commit cccc       -\tvendor/sub", b"100755 blob dddd    3\tname with\ttab.yaml", b""])
    entries, links = parse_ls_tree(output)
    assert sorted(entries) == ["app/a.yaml", "app/l.yaml", "name with\ttab.yaml"]
    assert entries["app/a.yaml"] == Entry("app/a.yaml", 12, "aaaa")
    assert links == ["app/l.yaml"]
    assert parse_cat_file(b"aaaa blob 5\nhello\nbbbb blob 0\n\ncccc blob 3\na\nb\n") == {
        "aaaa": b"hello", "bbbb": b"", "cccc": b"a\nb"}
