"""A hostile vault cannot read or publish files outside itself or inject HTML or terminal escapes.

A secret file is planted beside the vault (tmp/secret.txt next to tmp/docs). Links of every
form point at it, and the whole built site is searched for its content.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kb.cli import main as kb_main
from kb.vault import Vault
from site_build import build_site

SECRET = "TOP-SECRET-7f3a9c"

ESCAPING_LINKS = [
    "![[../secret.txt]]",
    "![[../../secret.txt]]",
    "[[../secret.txt]]",
    "[x](../secret.txt)",
    "![x](../secret.txt)",
    "[x](../../secret.txt)",
    "[x](%2e%2e%2fsecret.txt)",
    "[x](..%2Fsecret.txt)",
    "[x](%2e%2e/%2e%2e/secret.txt)",
    "![[%2e%2e%2fsecret.txt]]",
    "[x](/../secret.txt)",
    "[x](<../secret.txt>)",
    "![[{absolute}]]",
    "[x]({absolute})",
    "[x](file://{absolute})",
    "![[linked/secret.txt]]",
    "![[leak.txt]]",
    "[x](leak.txt)",
]


def plant(tmp_path: Path) -> tuple[Path, str]:
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET, encoding="utf-8")
    docs = tmp_path / "docs"
    docs.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET, encoding="utf-8")
    # NOTE: a link to a parent folder (docs/up -> ..) makes MkDocs 1.6 itself walk in a loop
    # until the path is too long, so the site test uses a link to a sibling folder.
    os.symlink(outside, docs / "linked")
    os.symlink(secret, docs / "leak.txt")
    body = "\n\n".join(link.format(absolute=secret) for link in ESCAPING_LINKS)
    return secret, "# Escape\n\n" + body + "\n"


def site_text(site: Path) -> str:
    chunks = []
    for directory, _folders, files in os.walk(site, followlinks=False):
        for name in files:
            chunks.append((Path(directory) / name).read_bytes().decode("utf-8", "replace"))
    return "\n".join(chunks)


def test_escaping_links_never_resolve(tmp_path):
    secret, text = plant(tmp_path)
    (tmp_path / "docs" / "Escape.md").write_text(text, encoding="utf-8")
    vault = Vault.load(tmp_path / "docs")

    assert sorted(vault.files) == ["Escape.md"]
    links = vault.notes["Escape.md"].links
    assert len(links) == len(ESCAPING_LINKS) - 1  # file:// is an external URL, not a link
    for link in links:
        assert link.target is None, link.raw
    problems = {p.code for p in vault.problems}
    assert problems == {"symlink-skipped"}


def test_site_never_publishes_outside_file(tmp_path):
    secret, text = plant(tmp_path)
    site = build_site(tmp_path, {"Escape.md": text, "Other.md": "# Other\n\n[[Escape]]\n"})

    published = site_text(site.site)
    assert SECRET not in published
    assert not any(
        name in ("secret.txt", "leak.txt")
        for _directory, _folders, files in os.walk(site.site) for name in files
    )
    assert "Escape" in site.article("Escape.md")


def test_cli_never_reads_outside_file(tmp_path):
    secret, text = plant(tmp_path)
    (tmp_path / "docs" / "Escape.md").write_text(text, encoding="utf-8")
    for command in (["links"], ["links", "--format", "json"], ["graph", "--format", "json"], ["check"]):
        result = subprocess.run(
            [sys.executable, "-m", "kb.cli", *command, "--vault", str(tmp_path / "docs")],
            capture_output=True, text=True, timeout=120, cwd=tmp_path,
        )
        assert SECRET not in result.stdout + result.stderr, command
        assert "Traceback" not in result.stderr, command


# HTML and script injection ----------------------------------------------------------------

IMG = "<img src=x onerror=alert(1)>"
SCRIPT = "<script>window.__pwned=1</script>"

HOSTILE_NOTES = {
    f"{IMG}.md": f"---\ntitle: '{SCRIPT}'\naliases: ['{IMG}']\ntags: ['{IMG}']\n---\n# {SCRIPT}\n\nBody.\n",
    "Host.md": (
        f"# Host\n\n[[{IMG}]] and [[{IMG}|{SCRIPT}]] and [[{IMG}#{SCRIPT}]]\n\n"
        f"![[{IMG}]]\n\n"
        f"> [!note] {SCRIPT}\n> callout body\n\n"
        f"> [!tip]- {IMG}\n> folded\n\n"
        f"[[Missing {SCRIPT}]]\n\n"
        f"Does {SCRIPT} leak into the questions page?\n"
    ),
}


def test_injection_escaped_in_site(tmp_path):
    site = build_site(tmp_path, HOSTILE_NOTES)
    pages = site_text(site.site)

    assert "<script>window.__pwned" not in pages
    assert "<img src=x onerror" not in pages
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in site.article("Host.md")
    graph = (site.site / "assets/kb/graph.json").read_text(encoding="utf-8")
    assert "<" not in graph and ">" not in graph


def test_callout_titles_escaped_in_site(tmp_path):
    site = build_site(tmp_path, {"Host.md": HOSTILE_NOTES["Host.md"], f"{IMG}.md": "# Img\n"})
    article = site.article("Host.md")
    assert '<p class="admonition-title">&lt;script&gt;window.__pwned=1&lt;/script&gt;</p>' in article
    assert "<summary>&lt;img src=x onerror=alert(1)&gt;</summary>" in article


def test_injection_in_cli_output(tmp_path, capsys):
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in HOSTILE_NOTES.items():
        (docs / name).write_text(text, encoding="utf-8")
    (docs / "Escapes \x1b[31m.md").write_text("[[Host]] [[\x1b]0;title\x07x]]\n", encoding="utf-8")
    for command in (["links"], ["check"], ["graph"], ["graph", "Host"], ["graph", "--format", "dot"],
                    ["graph", "--format", "mermaid"], ["graph", "--format", "graphml"]):
        kb_main([*command, "--vault", str(docs)])
        output = capsys.readouterr()
        assert "\x1b" not in output.out + output.err, command
    kb_main(["graph", "--format", "graphml", "--vault", str(docs)])
    graphml = capsys.readouterr().out
    assert "<script>" not in graphml
    assert "<img src" not in graphml


# YAML tags never construct Python objects -----------------------------------------------------


def test_python_yaml_tags_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    payload = f"!!python/object/apply:os.system ['touch {marker}']"
    project = tmp_path / "project"
    docs = project / "docs"
    docs.mkdir(parents=True)
    (docs / "Tagged.md").write_text(f"---\ntitle: {payload}\n---\n# Tagged\n", encoding="utf-8")
    (project / "mkdocs.yml").write_text(
        f"site_name: yaml\ndocs_dir: {payload}\nplugins:\n  - kb\n", encoding="utf-8"
    )
    result = subprocess.run(
        [sys.executable, "-m", "kb.cli", "check", "--vault", str(docs)],
        capture_output=True, text=True, timeout=120, cwd=project,
    )
    assert "Traceback" not in result.stderr
    assert "invalid YAML" in result.stdout
    assert "Tagged.md:2" in result.stdout
    assert not marker.exists()

    (project / "mkdocs.yml").write_text(
        f"site_name: yaml\ntheme:\n  name: material\n  font: false\nplugins:\n"
        f"  - kb:\n      backlinks_title: {payload}\n", encoding="utf-8",
    )
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--site-dir", str(tmp_path / "site")],
        capture_output=True, text=True, timeout=300, cwd=project,
    )
    # NOTE: MkDocs itself reads mkdocs.yml with a loader that accepts !!python tags; the
    # build must still refuse the option because it is not text.
    assert build.returncode != 0 or not marker.exists()
