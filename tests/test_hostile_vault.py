"""Hostile and broken vaults: kb stays up, reports each problem with its line, and loses nothing.

These cases add to tests/test_vault_bad_input.py: nesting that used to take exponential time
or overflow Python-Markdown's recursion, line numbers under lone CR line breaks, NUL bytes,
very long lines and link counts, embeds of a note in itself, files that vanish during a build,
and a vault that kb may only read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from kb.graph import build_graph, dependency_graph, dependency_tree, learning_order
from kb.parse import MAX_INDENT_COLUMNS, MAX_QUOTE_DEPTH, parse_note
from kb.vault import Vault
from site_build import build_site

PROJECT = Path(__file__).resolve().parents[1]


def run_kb(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kb.cli", *args], capture_output=True, text=True,
        timeout=timeout, cwd=cwd,
    )


def parse_in_subprocess(text: str, timeout: float) -> dict:
    """Parse ``text`` in a child process, so a runaway regular expression ends at ``timeout``."""
    script = textwrap.dedent("""
        import json, sys, time
        from kb.parse import parse_note
        text = sys.stdin.read()
        started = time.perf_counter()
        note = parse_note(text, "Deep.md")
        print(json.dumps({
            "seconds": time.perf_counter() - started,
            "links": len(note.links),
            "blocks": len(note.blocks),
            "problems": [[p.code, p.line] for p in note.problems],
        }))
    """)
    result = subprocess.run(
        [sys.executable, "-c", script], input=text, capture_output=True, text=True,
        timeout=timeout, cwd=PROJECT,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# Time: inputs that used to take exponential or quadratic time -------------------------------


def test_spaced_quote_nesting_is_linear():
    # "> > > ..." made the heading and callout patterns backtrack exponentially: 22 levels took
    # about 2.5 s, so 500 levels never finished.
    summary = parse_in_subprocess("> " * 500 + "deep [[Target]]\n", timeout=30)
    assert summary["links"] == 1
    assert summary["seconds"] < 5
    assert summary["problems"] == [["too-deep-nesting", 1]]


def test_block_id_on_every_line_is_linear():
    # Each inline block id walked up to the start of its paragraph: quadratic in the length.
    lines = 30_000
    summary = parse_in_subprocess("".join(f"line {i} ^b{i}\n" for i in range(lines)), timeout=60)
    assert summary["blocks"] == lines
    assert summary["seconds"] < 15


def test_block_ids_keep_paragraph_start():
    note = parse_note("# H\nfirst\nsecond ^a\nthird ^b\n\nalone\n^c\n", "N.md")
    spans = {block.id: (block.start_line, block.end_line) for block in note.blocks}
    assert spans == {"a": (2, 3), "b": (2, 4), "c": (6, 6)}


# Line numbers ----------------------------------------------------------------------------


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"], ids=["lf", "crlf", "cr"])
def test_problem_lines_for_every_line_break(tmp_path, newline):
    def write(name: str, lines: list[bytes]) -> None:
        (tmp_path / name).write_bytes(newline.encode().join(lines) + newline.encode())

    write("Latin.md", [b"one", b"two", b"na\xefve [[Missing]]"])
    write("Tags.md", [b"---", b"title: x", b"tags: 5", b"---", b"body"])
    write("Tab.md", [b"---", b"title: x", b"list:", b"\t- a", b"---", b"body"])
    write("Link.md", [b"one", b"", b"[[Missing]]"])
    vault = Vault.load(tmp_path)

    found = {(p.path, p.code): p.line for p in vault.problems + vault.link_problems()}
    assert found[("Latin.md", "invalid-encoding")] == 3
    assert found[("Latin.md", "unresolved-link")] == 3
    assert found[("Tags.md", "invalid-property")] == 3
    assert found[("Tab.md", "invalid-frontmatter")] == 4
    assert "tab" in next(str(p) for p in vault.problems if p.path == "Tab.md")
    assert found[("Link.md", "unresolved-link")] == 3


# NUL bytes, long lines, many links -------------------------------------------------------


def test_nul_bytes_after_first_block(tmp_path):
    # A NUL in the first 8 KiB marks a binary file; later NULs are kept as text.
    text = "x" * 9000 + "\n\x00 [[Tar\x00get]] [[Target]] #t\x00ag\n"
    (tmp_path / "Nul.md").write_text(text, encoding="utf-8")
    (tmp_path / "Target.md").write_text("# Target\n", encoding="utf-8")
    vault = Vault.load(tmp_path)

    links = vault.notes["Nul.md"].links
    assert [link.target for link in links] == [None, "Target.md"]
    assert links[0].line == 2
    for command in (["check"], ["links", "--format", "json"], ["graph", "--format", "json"]):
        result = run_kb(*command, "--vault", str(tmp_path), cwd=tmp_path)
        assert result.returncode in (0, 1), result.stderr
        assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_long_line_and_many_links(tmp_path):
    links = 100_000
    body = "x" * 1_000_000 + " [[Target]]\n" + "".join(f"[[N{i}]] " for i in range(links))
    (tmp_path / "Big.md").write_text(body + "\n", encoding="utf-8")
    (tmp_path / "Target.md").write_text("# Target\n", encoding="utf-8")

    started = time.perf_counter()
    vault = Vault.load(tmp_path)
    assert time.perf_counter() - started < 30
    assert len(vault.notes["Big.md"].links) == links + 1
    assert vault.notes["Big.md"].links[0].target == "Target.md"
    assert len(vault.link_problems()) == links

    check = run_kb("check", "--vault", str(tmp_path), cwd=tmp_path, timeout=180)
    assert check.returncode == 0, check.stderr
    assert check.stdout.count("no note or file named") == links
    assert f"{links} warnings" in check.stderr
    graph = run_kb("graph", "Big", "--vault", str(tmp_path), cwd=tmp_path, timeout=180)
    assert graph.returncode == 0, graph.stderr
    # Unresolved targets are not prerequisites: the tree shows Target, and the 100,000 missing
    # notes are listed on stderr.
    assert graph.stdout.count("(link)") == 1
    assert graph.stderr.startswith("missing notes")
    assert len(graph.stderr.splitlines()) == links + 1


# Deep nesting ------------------------------------------------------------------------------


DEEP = {
    "lists": "".join("  " * i + f"- item {i} [[Target]]\n" for i in range(500)),
    "quotes": ">" * 500 + " deep [[Target]]\n",
    "spaced-quotes": "> " * 500 + "deep [[Target]]\n",
    "callouts": "".join("> " * i + f"[!note] Level {i}\n" for i in range(1, 501)),
}


@pytest.mark.parametrize("name", list(DEEP))
def test_deep_nesting_reported_with_line(name):
    note = parse_note("# Deep\n\n" + DEEP[name], "Deep.md")
    problems = [(p.code, p.line) for p in note.problems]
    first_deep = {
        "lists": 3 + MAX_INDENT_COLUMNS // 2 + 1,
        "callouts": 3 + MAX_QUOTE_DEPTH,
    }.get(name, 3)
    assert problems == [("too-deep-nesting", first_deep)]
    assert str(MAX_QUOTE_DEPTH) in note.problems[0].message


def test_nesting_within_limits_is_quiet():
    text = "".join("  " * i + "- item\n" for i in range(MAX_INDENT_COLUMNS // 2))
    text += "> " * MAX_QUOTE_DEPTH + "quote\n"
    text += "```\n" + " " * 500 + "code stays\n```\n"
    assert parse_note(text, "N.md").problems == []


@pytest.mark.slow
def test_deep_nesting_site_builds(tmp_path):
    # Python-Markdown raised RecursionError on 500-deep lists and callouts, ending the build.
    notes = {"Target.md": "# Target\n", "Code.md": "```\n" + " " * 300 + "kept as written\n```\n"}
    notes.update({f"{name}.md": "# Deep\n\n" + text for name, text in DEEP.items()})
    site = build_site(tmp_path, notes)

    assert "item 499" in site.article("lists.md")
    assert "Level 500" in site.article("callouts.md")
    assert "deep" in site.article("spaced-quotes.md")
    assert " " * 300 + "kept as written" in site.html("Code.md")


# Embeds and long prerequisite chains ------------------------------------------------------


def test_self_and_mutual_embeds_in_site(tmp_path):
    site = build_site(
        tmp_path,
        {
            "Self.md": "# Self\n\nSelf text.\n\n![[Self]]\n\n![[Self#Self]]\n",
            "A.md": "# A\n\nA text.\n\n![[B]]\n",
            "B.md": "# B\n\nB text.\n\n![[A]]\n",
        },
    )
    self_page = site.article("Self.md")
    # The page, then its section "Self" once: inside that, both embeds are cycles.
    assert self_page.count("embed cycle stopped here") == 3
    assert self_page.count("Self text.") == 2
    assert site.article("A.md").count("B text.") == 1
    assert site.article("B.md").count("A text.") == 1


@pytest.mark.slow
def test_thousand_note_requires_chain(tmp_path):
    count = 1000
    for index in range(count):
        requires = f"---\nrequires: ['[[C{index + 1}]]']\n---\n" if index + 1 < count else ""
        (tmp_path / f"C{index}.md").write_text(f"{requires}# C{index}\n", encoding="utf-8")
    (tmp_path / "C0.md").write_text(
        "---\nrequires: ['[[C1]]']\n---\n# C0\n\n![[C1]] ![[C0]]\n", encoding="utf-8"
    )
    (tmp_path / f"C{count - 1}.md").write_text(
        "---\nrequires: ['[[C0]]']\n---\n# end\n", encoding="utf-8"
    )
    vault = Vault.load(tmp_path)
    D = dependency_graph(build_graph(vault))
    tree = dependency_tree(D, "C0.md", None)
    depth, node = 0, tree
    while node.children:
        node = node.children[0]
        depth += 1
    assert depth == count
    assert node.node == "C0.md" and node.cycle
    order, cut = learning_order(D, "C0.md")
    assert len(order) == count
    assert len(cut) == 1

    for command in (["graph", "C0"], ["graph", "C0", "--order"], ["graph", "C0", "--format", "json"],
                    ["graph", "--path", "C0", "C999"], ["check"]):
        result = run_kb(*command, "--vault", str(tmp_path), cwd=tmp_path)
        assert "RecursionError" not in result.stderr, command
        assert result.returncode in (0, 1), (command, result.stderr)
    check = run_kb("check", "--vault", str(tmp_path), cwd=tmp_path)
    assert "prerequisite cycle" in check.stdout


# Files that change while kb reads them -----------------------------------------------------


def test_file_deleted_between_scan_and_read(tmp_path, monkeypatch):
    for name in ("A", "B", "C"):
        (tmp_path / f"{name}.md").write_text(f"[[{name}]] [[C]]\n", encoding="utf-8")
    original = Vault._read_note

    def read_then_vanish(self, path):
        if path == "A.md":
            (tmp_path / "B.md").unlink()
            (tmp_path / "C.md").rename(tmp_path / "D.md")
        return original(self, path)

    monkeypatch.setattr(Vault, "_read_note", read_then_vanish)
    vault = Vault.load(tmp_path)

    assert sorted(vault.notes) == ["A.md"]
    messages = {p.path: str(p) for p in vault.problems}
    assert set(messages) == {"B.md", "C.md"}
    assert "was removed or renamed while kb read the vault" in messages["B.md"]
    assert vault.notes["A.md"].links[0].target == "A.md"


def test_site_build_survives_deleted_note(tmp_path, monkeypatch):
    from kb.mkdocs_plugin import KbPlugin

    original = KbPlugin.on_files

    def on_files_then_delete(self, files, *, config):
        result = original(self, files, config=config)
        (Path(config.docs_dir) / "Gone.md").unlink()
        return result

    monkeypatch.setattr(KbPlugin, "on_files", on_files_then_delete)
    site = build_site(
        tmp_path,
        {
            "Stay.md": "# Stay\n\n[[Gone]]\n",
            "Gone.md": "# Gone\n\nGone text [[Stay]]\n",
            "Latin.md": b"# Latin\n\ncaf\xe9 [[Stay]]\n",
        },
    )
    # Each page shows the text kb parsed, so links and backlinks agree with it.
    assert "Gone text" in site.article("Gone.md")
    assert 'href="../Gone/"' in site.article("Stay.md")
    assert "caf\ufffd" in site.article("Latin.md")


# A vault kb may only read ------------------------------------------------------------------

READ_ONLY_GUARD = textwrap.dedent("""
    import os, sys
    vault = os.path.realpath(sys.argv[1])
    WRITES = {"os.remove", "os.rename", "os.replace", "os.rmdir", "os.mkdir", "os.chmod",
              "os.truncate", "os.symlink", "os.link", "os.utime", "shutil.rmtree"}

    def inside(path):
        try:
            real = os.path.realpath(os.fsdecode(path))
        except (TypeError, ValueError):
            return False
        return real == vault or real.startswith(vault + os.sep)

    def guard(event, args):
        if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
            mode, flags = args[1], args[2]
            writing = (mode is not None and any(c in str(mode) for c in "wax+")) or (
                flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND))
            if writing and inside(args[0]):
                raise PermissionError(f"read-only vault: write to {args[0]}")
        elif event in WRITES and args and inside(args[0]):
            raise PermissionError(f"read-only vault: {event} {args[0]}")

    sys.addaudithook(guard)
    sys.argv = sys.argv[2:]
    import runpy
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
""")


def test_read_only_vault_check_and_build(tmp_path):
    project = tmp_path / "project"
    docs = project / "docs"
    docs.mkdir(parents=True)
    (docs / "A.md").write_text("# A\n\n[[B]] #tag\n\n> [!note] Title\n> text\n", encoding="utf-8")
    (docs / "B.md").write_text("---\ntags: [b]\n---\n# B\n\n![[A]]\n", encoding="utf-8")
    (project / "mkdocs.yml").write_text(
        "site_name: ro\ntheme:\n  name: material\n  font: false\nplugins:\n  - kb\n",
        encoding="utf-8",
    )
    guard = tmp_path / "guard.py"
    guard.write_text(READ_ONLY_GUARD, encoding="utf-8")
    for path in [docs / "A.md", docs / "B.md", docs]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        check = subprocess.run(
            [sys.executable, str(guard), str(docs), "kb.cli", "check"],
            capture_output=True, text=True, timeout=120, cwd=project,
        )
        site = tmp_path / "site"
        build = subprocess.run(
            [sys.executable, str(guard), str(docs), "mkdocs", "build", "--site-dir", str(site)],
            capture_output=True, text=True, timeout=300, cwd=project,
        )
    finally:
        docs.chmod(0o755)
    assert check.returncode == 0, check.stderr
    assert "read-only vault" not in check.stderr
    assert build.returncode == 0, build.stderr
    assert "read-only vault" not in build.stderr
    assert (site / "A" / "index.html").is_file()
    assert sorted(os.listdir(docs)) == ["A.md", "B.md"]
