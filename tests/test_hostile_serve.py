"""`mkdocs serve` keeps serving while notes are edited, renamed and deleted in rapid bursts.

The server runs on 127.0.0.1 on a free port. After each burst of file operations a page is
polled, and once the edits stop the served pages must match the final files.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest

pytestmark = pytest.mark.slow

CONFIG = """\
site_name: served vault
theme:
  name: material
  font: false
plugins:
  - kb
"""

OPERATIONS = 200
BURST = 20
NOTES = 12
DEADLINE = 110  # seconds for the whole test, server start included


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, ""
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, ""


def page_url(base: str, name: str) -> str:
    return f"{base}{quote(name)}/"


def note_text(name: str, version: int, names: list[str]) -> str:
    links = " ".join(f"[[{other}]]" for other in names[:3] if other != name)
    return f"# {name}\n\nversion-{name.replace(' ', '_')}-{version}\n\n{links}\n"


def test_serve_survives_rapid_edits(tmp_path):
    started = time.monotonic()
    root = tmp_path / "project"
    docs = root / "docs"
    docs.mkdir(parents=True)
    (root / "mkdocs.yml").write_text(CONFIG, encoding="utf-8")
    (docs / "index.md").write_text("# Home\n\nStable page.\n", encoding="utf-8")
    names = [f"Note {i}" for i in range(NOTES)]
    versions = {name: 0 for name in names}
    for name in names:
        (docs / f"{name}.md").write_text(note_text(name, 0, names), encoding="utf-8")

    port = free_port()
    base = f"http://127.0.0.1:{port}/"
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "mkdocs", "serve", "--dev-addr", f"127.0.0.1:{port}"],
        cwd=root, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        while fetch(base)[0] != 200:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() - started < 60, "mkdocs serve did not start"
            time.sleep(0.5)

        rng = random.Random(7)
        counts = {"edit": 0, "rename": 0, "delete": 0, "create": 0}
        created = NOTES
        polls = 0
        for operation in range(OPERATIONS):
            kind = rng.choice(["edit", "edit", "rename", "delete", "create"])
            if kind != "create" and len(names) < 3:
                kind = "create"
            if kind == "edit":
                name = rng.choice(names)
                versions[name] += 1
                (docs / f"{name}.md").write_text(note_text(name, versions[name], names), encoding="utf-8")
            elif kind == "rename":
                name = rng.choice(names)
                new = f"Renamed {operation}"
                os.replace(docs / f"{name}.md", docs / f"{new}.md")
                names[names.index(name)] = new
                versions[new] = versions.pop(name)
                (docs / f"{new}.md").write_text(note_text(new, versions[new], names), encoding="utf-8")
            elif kind == "delete":
                name = rng.choice(names)
                (docs / f"{name}.md").unlink()
                names.remove(name)
                del versions[name]
            else:
                name = f"Created {created}"
                created += 1
                names.append(name)
                versions[name] = 0
                (docs / f"{name}.md").write_text(note_text(name, 0, names), encoding="utf-8")
            counts[kind] += 1
            if (operation + 1) % BURST == 0:
                status, _body = fetch(base)
                polls += 1
                assert status == 200, f"after {operation + 1} operations: HTTP {status}"
                assert server.poll() is None, "mkdocs serve exited"
                time.sleep(0.3)

        # The last rebuild may still be running: wait until every final page is served.
        expected = {name: f"version-{name.replace(' ', '_')}-{versions[name]}" for name in names}
        pending = dict(expected)
        while pending and time.monotonic() - started < DEADLINE:
            for name, token in list(pending.items()):
                status, body = fetch(page_url(base, name))
                if status == 200 and token in body:
                    del pending[name]
            time.sleep(0.5)
        assert pending == {}, f"pages not matching their files: {sorted(pending)}"

        gone = [f"Note {i}" for i in range(NOTES) if f"Note {i}" not in names]
        for name in gone:
            assert fetch(page_url(base, name))[0] == 404, name
        assert server.poll() is None
        assert sum(counts.values()) == OPERATIONS
        assert polls == OPERATIONS // BURST
        print(f"serve survived {counts} with {len(names)} notes left, {len(gone)} originals gone")
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
    assert time.monotonic() - started < DEADLINE + 20
    output = (tmp_path / "serve.log").read_text()
    assert "Traceback" not in output, output[-3000:]


def test_late_notes_never_stop_a_rebuild(tmp_path, caplog):
    """A note created after the vault load and deleted before MkDocs reads it: under
    `mkdocs serve` this happens when edits come fast, and it must not stop the rebuild."""
    from mkdocs.config.defaults import MkDocsConfig
    from mkdocs.structure.files import File
    from mkdocs.structure.pages import Page

    from kb.mkdocs_plugin import KbPlugin
    from kb.vault import Vault

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "Kept.md").write_text("# Kept\n", encoding="utf-8")
    plugin = KbPlugin()
    assert plugin.load_config({}) == ([], [])
    plugin.vault = Vault.load(docs)

    config = MkDocsConfig()
    config.load_dict({"site_name": "race", "docs_dir": str(docs)})
    (docs / "Late.md").write_text("# Late\n", encoding="utf-8")
    late_page = Page(None, File("Late.md", str(docs), str(tmp_path / "site"), True), config)
    deleted_page = Page(None, File("Gone.md", str(docs), str(tmp_path / "site"), True), config)
    loaded_page = Page(None, File("Kept.md", str(docs), str(tmp_path / "site"), True), config)

    assert plugin.on_page_read_source(page=loaded_page, config=config) == "# Kept\n"
    assert plugin.on_page_read_source(page=late_page, config=config) == "# Late\n"
    with caplog.at_level("WARNING"):
        assert plugin.on_page_read_source(page=deleted_page, config=config) == ""
    assert "Gone.md: deleted while the site was built" in caplog.text

    (docs / "Garbled.md").write_bytes(b"# Garbled\n\xff\xfe [[")
    garbled_page = Page(None, File("Garbled.md", str(docs), str(tmp_path / "site"), True), config)
    with caplog.at_level("WARNING"):
        text = plugin.on_page_read_source(page=garbled_page, config=config)
    assert text.startswith("This note is not valid UTF-8")
    assert "Garbled.md: byte 10 is not valid UTF-8; re-save the note as UTF-8" in caplog.text
