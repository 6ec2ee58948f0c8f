"""Bad files in a vault: each gives one clear warning, the rest loads, and kb writes nothing.

Every test builds a vault with one bad file next to a good note ``Good.md`` that links to
``Target.md``, then checks the warning (file, line where there is one, code) and that the good
note still resolves.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from kb.parse import MAX_LINKS_PER_NOTE
from kb.vault import Vault


def write_good_notes(root: Path) -> None:
    (root / "Good.md").write_text("See [[Target]].\n", encoding="utf-8")
    (root / "Target.md").write_text("# Target\n", encoding="utf-8")


def tree_hash(root: Path) -> str:
    """Hash every path, link target and file content under ``root`` without following links."""
    digest = hashlib.sha256()
    for directory, folders, files in os.walk(root, followlinks=False):
        folders.sort()
        for name in sorted(files + folders):
            full = os.path.join(directory, name)
            digest.update(os.path.relpath(full, root).encode("utf-8", "surrogateescape"))
            if os.path.islink(full):
                digest.update(b"link:" + os.readlink(full).encode("utf-8", "surrogateescape"))
            elif os.path.isfile(full):
                digest.update(Path(full).read_bytes())
    return digest.hexdigest()


def problems_for(vault: Vault, path: str) -> list[tuple[str | None, int | None, str]]:
    return [(p.path, p.line, p.code) for p in vault.problems if p.path == path]


def assert_good_note_loads(vault: Vault) -> None:
    assert vault.notes["Good.md"].links[0].target == "Target.md"


FRONTMATTER_CASES = [
    # (name, file text, expected line, expected code, text the message must contain)
    ("invalid-yaml", "---\ntags: [a\n---\nbody\n", 3, "invalid-frontmatter", "invalid YAML"),
    ("tab-indent", "---\ntitle: \"a\tb\"\ntags:\n\t- a\n---\nbody\n", 4, "invalid-frontmatter", "tab"),
    ("duplicate-key", "---\ntags: [a]\ntags: [b]\n---\nbody\n", 3, "invalid-frontmatter", "duplicate key 'tags'"),
    ("list", "---\n- a\n- b\n---\nbody\n", 2, "invalid-frontmatter", "list"),
    ("scalar", "---\njust text\n---\nbody\n", 2, "invalid-frontmatter", "str"),
    ("tags-int", "---\ntags: 5\n---\nbody\n", 2, "invalid-property", "'tags' must be a list"),
    ("tags-map", "---\ntitle: x\ntags: {a: 1}\n---\nbody\n", 3, "invalid-property", "'tags' must be a list"),
    ("tag-item-map", "---\ntags:\n  - ok\n  - {a: 1}\n---\nbody\n", 2, "invalid-property", "not text"),
    ("requires-int", "---\nrequires: 7\n---\nbody\n", 2, "invalid-property", "'requires' must be a list"),
    ("requires-map", "---\nx: 1\nrequires: {a: b}\n---\nbody\n", 3, "invalid-property", "'requires' must be a list"),
    ("aliases-int", "---\naliases: 7\n---\nbody\n", 2, "invalid-property", "'aliases' must be a list"),
    ("answers-int", "---\nx: 1\nanswers: 5\n---\nbody\n", 3, "invalid-property", "'answers' must be a list"),
    ("unclosed", "---\ntags: [a]\nbody\n", 1, "unclosed-frontmatter", "never closed"),
]


@pytest.mark.parametrize(
    "text, line, code, words", [case[1:] for case in FRONTMATTER_CASES],
    ids=[case[0] for case in FRONTMATTER_CASES],
)
def test_bad_frontmatter_one_warning(tmp_path, text, line, code, words):
    write_good_notes(tmp_path)
    (tmp_path / "Bad.md").write_text(text, encoding="utf-8")
    vault = Vault.load(tmp_path)

    assert problems_for(vault, "Bad.md") == [("Bad.md", line, code)]
    message = str(next(p for p in vault.problems if p.path == "Bad.md"))
    assert message.startswith(f"Bad.md:{line}: warning: ")
    assert words in message
    assert "Bad.md" in vault.notes
    assert_good_note_loads(vault)


def test_tags_string_accepted(tmp_path):
    (tmp_path / "N.md").write_text("---\ntags: ml, attention\n---\n", encoding="utf-8")
    vault = Vault.load(tmp_path)
    assert vault.problems == []
    assert vault.notes["N.md"].tag_names == ["ml", "attention"]


def test_requires_string_becomes_list(tmp_path):
    (tmp_path / "N.md").write_text('---\nrequires: "[[Target]]"\n---\n', encoding="utf-8")
    (tmp_path / "Target.md").write_text("# Target", encoding="utf-8")
    vault = Vault.load(tmp_path)
    assert vault.problems == []
    assert vault.notes["N.md"].links[0].target == "Target.md"


def test_non_utf8_bytes(tmp_path):
    write_good_notes(tmp_path)
    (tmp_path / "Latin.md").write_bytes(b"first line\nna\xefve [[Target]]\n")
    vault = Vault.load(tmp_path)

    assert problems_for(vault, "Latin.md") == [("Latin.md", 2, "invalid-encoding")]
    assert "0xef" in str(vault.problems[0])
    assert vault.notes["Latin.md"].links[0].target == "Target.md"
    assert_good_note_loads(vault)


def test_bom_stripped(tmp_path):
    write_good_notes(tmp_path)
    (tmp_path / "Bom.md").write_bytes(b"\xef\xbb\xbf---\ntags: [bom]\n---\n[[Target]]\n")
    vault = Vault.load(tmp_path)

    assert problems_for(vault, "Bom.md") == []
    assert vault.notes["Bom.md"].tag_names == ["bom"]
    assert vault.notes["Bom.md"].links[0].line == 4


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32"])
def test_other_unicode_encodings_read(tmp_path, encoding):
    write_good_notes(tmp_path)
    text = "# Wide\n\nSee [[Target]] and naïve text.\n"
    bom = {"utf-16-be": b"\xfe\xff"}.get(encoding, b"")
    (tmp_path / "Wide.md").write_bytes(bom + text.encode(encoding))
    vault = Vault.load(tmp_path)

    assert problems_for(vault, "Wide.md") == [("Wide.md", 1, "invalid-encoding")]
    assert "re-save it as UTF-8" in str(vault.problems[0])
    assert vault.notes["Wide.md"].text == text
    assert vault.notes["Wide.md"].links[0].target == "Target.md"
    assert_good_note_loads(vault)


def test_binary_file_skipped(tmp_path):
    write_good_notes(tmp_path)
    (tmp_path / "Image.md").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    vault = Vault.load(tmp_path)

    assert problems_for(vault, "Image.md") == [("Image.md", None, "binary-note")]
    assert "Image.md" not in vault.notes
    assert_good_note_loads(vault)


def test_empty_file_info(tmp_path):
    write_good_notes(tmp_path)
    (tmp_path / "Empty.md").write_bytes(b"")
    (tmp_path / "Blank.md").write_text("  \n\n", encoding="utf-8")
    vault = Vault.load(tmp_path)

    assert problems_for(vault, "Empty.md") == [("Empty.md", None, "empty-note")]
    assert problems_for(vault, "Blank.md") == [("Blank.md", None, "empty-note")]
    assert vault.problems[0].severity == "info"
    assert_good_note_loads(vault)


@pytest.mark.slow
def test_large_note_warns_and_parses(tmp_path):
    write_good_notes(tmp_path)
    paragraph = "Text with [[Target]] and #tag and $x$ and `code [[no]]`.\n\n"
    count = 20 * 1024 * 1024 // len(paragraph) + 1
    (tmp_path / "Huge.md").write_text(paragraph * count, encoding="utf-8")

    started = time.perf_counter()
    vault = Vault.load(tmp_path)
    elapsed = time.perf_counter() - started

    assert problems_for(vault, "Huge.md") == [
        ("Huge.md", None, "large-note"),
        ("Huge.md", 400_001, "too-many-links"),
    ]
    assert "21.0 MB" in str(vault.problems[0])
    assert f"{count - MAX_LINKS_PER_NOTE} more links" in str(vault.problems[1])
    assert len(vault.notes["Huge.md"].links) == MAX_LINKS_PER_NOTE
    assert_good_note_loads(vault)
    # About 10 s on a shared 2-core machine; the limit only catches superlinear slowdowns.
    assert elapsed < 120


def test_symlink_loop_and_outside(tmp_path):
    vault_dir = tmp_path / "vault"
    vault_dir.mkdir()
    write_good_notes(vault_dir)
    outside = tmp_path / "secret.md"
    outside.write_text("[[Target]]", encoding="utf-8")
    (vault_dir / "sub").mkdir()
    os.symlink("loop2.md", vault_dir / "sub" / "loop1.md")
    os.symlink("loop1.md", vault_dir / "sub" / "loop2.md")
    os.symlink(outside, vault_dir / "Outside.md")
    os.symlink(tmp_path, vault_dir / "parent")
    os.symlink("sub", vault_dir / "again")
    os.symlink("Target.md", vault_dir / "Alias.md")
    vault = Vault.load(vault_dir)

    codes = {(p.path, p.code) for p in vault.problems}
    assert codes == {
        ("sub/loop1.md", "symlink-skipped"),
        ("sub/loop2.md", "symlink-skipped"),
        ("Outside.md", "symlink-skipped"),
        ("parent", "symlink-skipped"),
        ("again", "symlink-skipped"),
    }
    assert "outside the vault" in next(str(p) for p in vault.problems if p.path == "Outside.md")
    assert "loop" in next(str(p) for p in vault.problems if p.path == "sub/loop1.md")
    assert "Outside.md" not in vault.notes
    assert "Alias.md" in vault.notes  # a file link inside the vault is read
    assert_good_note_loads(vault)


ODD_NAMES = [
    "odd :*?\"<>| name.md",
    " leading space.md",
    "trailing space .md",
    "new\nline.md",
    "tab\tname.md",
    "dots..md",
    "Ünïcödé & emoji 🎉.md",
    "#hash [brackets] ^caret.md",
]


def test_odd_file_names(tmp_path):
    write_good_notes(tmp_path)
    for name in ODD_NAMES:
        (tmp_path / name).write_text("[[Target]]\n", encoding="utf-8")
    vault = Vault.load(tmp_path)

    for name in ODD_NAMES:
        assert vault.notes[name].links[0].target == "Target.md", name
    assert_good_note_loads(vault)


def test_problem_line_escapes_control_characters(tmp_path):
    (tmp_path / "new\nline.md").write_text("", encoding="utf-8")
    vault = Vault.load(tmp_path)
    assert [str(p) for p in vault.problems] == [
        "new\\nline.md: info: note is empty; write something in it or delete it"
    ]


def test_yaml_alias_bomb_bounded(tmp_path):
    write_good_notes(tmp_path)
    levels = ["a: &a [" + ", ".join(['"lol"'] * 9) + "]"]
    for index, name in enumerate("bcdefghi"):
        previous = "abcdefghi"[index]
        levels.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]")
    text = "---\n" + "\n".join(levels) + "\nrequires: ['[[Target]]']\n---\nbody [[Target]]\n"
    (tmp_path / "Bomb.md").write_text(text, encoding="utf-8")

    tracemalloc.start()
    started = time.perf_counter()
    vault = Vault.load(tmp_path)
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    assert elapsed < 10
    assert peak < 50 * 1024 * 1024
    assert problems_for(vault, "Bomb.md") == [("Bomb.md", 2, "invalid-frontmatter")]
    assert "aliases" in str(vault.problems[0])
    assert vault.notes["Bomb.md"].frontmatter == {}
    assert [link.raw for link in vault.notes["Bomb.md"].links] == ["[[Target]]"]
    assert_good_note_loads(vault)


def test_yaml_self_reference_bounded(tmp_path):
    (tmp_path / "Loop.md").write_text("---\na: &a [x, *a]\n---\n", encoding="utf-8")
    vault = Vault.load(tmp_path)
    assert problems_for(vault, "Loop.md") == [("Loop.md", 2, "invalid-frontmatter")]


def test_yaml_small_aliases_allowed(tmp_path):
    (tmp_path / "N.md").write_text("---\nbase: &b [ml]\ntags: *b\n---\n", encoding="utf-8")
    vault = Vault.load(tmp_path)
    assert vault.problems == []
    assert vault.notes["N.md"].tag_names == ["ml"]


def test_unreadable_file(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root can read a file without read permission")
    write_good_notes(tmp_path)
    locked = tmp_path / "Locked.md"
    locked.write_text("x", encoding="utf-8")
    locked.chmod(0)
    try:
        vault = Vault.load(tmp_path)
    finally:
        locked.chmod(0o644)
    assert problems_for(vault, "Locked.md") == [("Locked.md", None, "unreadable-file")]
    assert_good_note_loads(vault)


def test_commands_never_write_vault(tmp_path):
    vault_dir = tmp_path / "vault"
    vault_dir.mkdir()
    write_good_notes(vault_dir)
    (vault_dir / "Bad.md").write_text("---\ntags: [a\n---\n[[Missing]]\n", encoding="utf-8")
    (vault_dir / "Latin.md").write_bytes(b"caf\xe9 [[Target]]")
    (vault_dir / "new\nline.md").write_text("", encoding="utf-8")
    os.symlink("loop", vault_dir / "loop")
    before = tree_hash(vault_dir)

    commands = [
        ["links"], ["links", "--format", "json"], ["tags"], ["graph"], ["graph", "Good"],
        ["graph", "--format", "json"], ["check"], ["check", "--strict"],
    ]
    for command in commands:
        result = subprocess.run(
            [sys.executable, "-m", "kb.cli", *command, "--vault", str(vault_dir)],
            capture_output=True, text=True, timeout=120, cwd=tmp_path,
        )
        assert result.returncode in (0, 1), (command, result.stderr)
        assert "Traceback" not in result.stderr, command

    assert tree_hash(vault_dir) == before
    assert sorted(os.listdir(tmp_path)) == ["vault"]
