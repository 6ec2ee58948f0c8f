"""Snippet embeds and snippet pages in a site built with the kb plugin and mkdocs-jupyter."""

from __future__ import annotations

import logging
import re
import textwrap

import pytest
from mkdocs.commands.build import build
from mkdocs.config import load_config

CONFIG = """\
site_name: snippet site
theme:
  name: material
  font: false
  features:
    - content.code.copy
plugins:
  - kb
  - mkdocs-jupyter:
      execute: false
      include: ["*.ipynb"]
      cache: false
"""

SNIPPET = '''\
# kb: timeout=60
# %% [markdown]
# # Printed table

# %% Table
import sys

print("name | value", flush=True)
# The profiler line is split in the source, so only the printed output contains it whole.
print("US" + "DT:2026-12-04 20:36:59 1396:1396 SyncActivityProfilerHandler.cpp:52] profiler_start", flush=True)
print("warning on stderr", file=sys.stderr, flush=True)
print("alpha | 1", flush=True)
'''


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _build(root):
    handler = _Collect()
    logger = logging.getLogger("mkdocs")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        build(load_config(config_file=str(root / "mkdocs.yml"), site_dir=str(root / "site")))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
    return handler.messages


@pytest.fixture(scope="module")
def snippet_site(tmp_path_factory):
    root = tmp_path_factory.mktemp("snippet-site")
    (root / "mkdocs.yml").write_text(CONFIG, encoding="utf-8")
    (root / "docs").mkdir()
    (root / "docs/index.md").write_text("# Home\n\n![[table.py]]\n", encoding="utf-8")
    (root / "snippets").mkdir()
    (root / "snippets/table.py").write_text(textwrap.dedent(SNIPPET), encoding="utf-8")
    first = _build(root)
    second = _build(root)
    return root, first, second


def test_streams_merged_into_one_output_block(snippet_site):
    root, _first, _second = snippet_site
    html = (root / "site/index.html").read_text(encoding="utf-8")
    blocks = re.findall(r'<div class="kb-stream[^"]*"><pre>.*?</pre></div>', html, re.S)
    assert len(blocks) == 1
    text = re.sub(r"<[^>]+>", "", blocks[0])
    assert "name | value" in text
    assert "warning on stderr" in text
    assert "alpha | 1" in text
    assert "USDT:" not in html
    assert "no-copy" in blocks[0]


def test_snippet_execution_logged_once(snippet_site):
    root, first, second = snippet_site
    executed = [message for message in first if "executed snippet" in message]
    assert len(executed) == 1
    assert "snippets/table.py" in executed[0]
    assert re.search(r"in \d+\.\d s", executed[0])
    assert not [message for message in second if "executed snippet" in message]
    log_lines = (root / ".kb/run.log").read_text(encoding="utf-8").splitlines()
    assert len([line for line in log_lines if "table.py" in line]) == 1


def test_snippet_page_from_cached_notebook(snippet_site):
    root, _first, _second = snippet_site
    page = root / "site/snippets/table/index.html"
    assert page.is_file()
    assert "alpha | 1" in page.read_text(encoding="utf-8")
    home = (root / "site/index.html").read_text(encoding="utf-8")
    header = re.search(r'<a class="kb-snippet-page" href="([^"]+)">table.py</a>', home)
    assert header is not None
    assert header.group(1) == "snippets/table/"


def test_serve_watches_snippets(tmp_path):
    from kb.mkdocs_plugin import KbPlugin

    class Server:
        def __init__(self) -> None:
            self.watched: list[str] = []

        def watch(self, path: str) -> None:
            self.watched.append(path)

    plugin = KbPlugin()
    errors, _warnings = plugin.load_config({})
    assert errors == []
    (tmp_path / "snippets").mkdir()
    plugin.root = tmp_path
    server = Server()
    assert plugin.on_serve(server, config=None, builder=None) is server
    assert server.watched == [str(tmp_path / "snippets")]


FAILING_SNIPPET = """\
# kb: timeout=60
# %% Broken claim
assert 1 + 1 == 3, "arithmetic is off"
"""


@pytest.mark.parametrize(
    ("on_failure", "builds"),
    [("fail", False), ("warn", True)],
)
def test_failing_snippet_fails_build_by_default(tmp_path, on_failure, builds):
    config = "site_name: failing\ntheme:\n  name: material\n  font: false\nplugins:\n  - kb"
    if on_failure == "warn":
        config += ":\n      snippets_on_failure: warn"
    (tmp_path / "mkdocs.yml").write_text(config + "\n", encoding="utf-8")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs/index.md").write_text("# Home\n\n![[broken.py]]\n", encoding="utf-8")
    (tmp_path / "snippets").mkdir()
    (tmp_path / "snippets/broken.py").write_text(FAILING_SNIPPET, encoding="utf-8")

    if not builds:
        handler = _Collect()
        logger = logging.getLogger("mkdocs")
        logger.addHandler(handler)
        try:
            with pytest.raises(Exception, match="BuildError"):
                build(load_config(config_file=str(tmp_path / "mkdocs.yml"), site_dir=str(tmp_path / "site")))
        finally:
            logger.removeHandler(handler)
        errors = [message for message in handler.messages if "broken.py failed" in message]
        assert errors, handler.messages
        assert "index.md" in errors[0]
        assert "snippets/broken.py:3" in errors[0]
        assert "snippets_on_failure: warn" in errors[0]
        return

    messages = _build(tmp_path)
    html = (tmp_path / "site/index.html").read_text(encoding="utf-8")
    assert any("broken.py" in message for message in messages)
    assert "arithmetic is off" in html
    assert "kb-snippet-failed" in html or "failed" in html.lower()
