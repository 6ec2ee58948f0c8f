"""Build a tiny vault into a Material site with the kb plugin, for the site tests."""

from __future__ import annotations

import json
import logging
import textwrap
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

from mkdocs.commands.build import build
from mkdocs.config import load_config

CONFIG = """\
site_name: test vault
use_directory_urls: {directory_urls}
theme:
  name: material
  font: false
plugins:
  - search
  - tags
  - kb:
      graph_unresolved: {unresolved}
markdown_extensions:
  - toc:
      permalink: true
      slugify: !!python/object/apply:pymdownx.slugs.slugify
        kwds:
          case: lower
"""


@dataclass
class Site:
    root: Path
    site: Path
    warnings: list[str] = field(default_factory=list)
    directory_urls: bool = True

    def page_path(self, note: str) -> Path:
        """Path of the HTML page built from the vault path ``note``."""
        stem = note[:-3]
        if not self.directory_urls:
            return self.site / f"{stem}.html"
        if stem == "index" or stem.endswith("/index"):
            return self.site / f"{stem}.html"
        return self.site / stem / "index.html"

    def html(self, note: str) -> str:
        return self.page_path(note).read_text(encoding="utf-8")

    def article(self, note: str) -> str:
        text = self.html(note)
        start = text.index("<article")
        return text[start:text.index("</article>", start)]

    def graph(self) -> dict:
        return json.loads((self.site / "assets/kb/graph.json").read_text(encoding="utf-8"))

    def links(self, note: str) -> list["Anchor"]:
        parser = _AnchorParser()
        parser.feed(self.article(note))
        return parser.anchors

    def resolve(self, note: str, href: str) -> tuple[Path, str]:
        """Map a link on the page of ``note`` to the file it opens and its fragment."""
        page = self.page_path(note).relative_to(self.site).as_posix()
        parts = urlsplit(urljoin("http://site/" + page, href))
        path = unquote(parts.path).lstrip("/")
        target = self.site / path
        if path == "" or path.endswith("/"):
            target = target / "index.html"
        return target, unquote(parts.fragment)

    def ids(self, file: Path) -> set[str]:
        parser = _AnchorParser()
        parser.feed(file.read_text(encoding="utf-8"))
        return parser.ids


@dataclass
class Anchor:
    href: str
    text: str
    attributes: dict[str, str]


class _AnchorParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.anchors: list[Anchor] = []
        self.ids: set[str] = set()
        self._open: Anchor | None = None

    def handle_starttag(self, tag, attrs):
        attributes = {name: value or "" for name, value in attrs}
        if "id" in attributes:
            self.ids.add(attributes["id"])
        if tag == "a" and "href" in attributes:
            self._open = Anchor(attributes["href"], "", attributes)
            self.anchors.append(self._open)

    def handle_endtag(self, tag):
        if tag == "a":
            self._open = None

    def handle_data(self, data):
        if self._open is not None:
            self._open.text += data


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def build_site(
    tmp_path: Path,
    notes: dict[str, str | bytes],
    *,
    directory_urls: bool = True,
    unresolved: bool = True,
    config: str | None = None,
) -> Site:
    """Write ``notes`` (vault path to text) into a vault, build it, return the site."""
    docs = tmp_path / "docs"
    for path, content in notes.items():
        file = docs / path
        file.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            file.write_bytes(content)
        else:
            file.write_text(textwrap.dedent(content), encoding="utf-8")
    config_file = tmp_path / "mkdocs.yml"
    config_file.write_text(
        config or CONFIG.format(
            directory_urls=str(directory_urls).lower(), unresolved=str(unresolved).lower()
        ),
        encoding="utf-8",
    )
    handler = _Collect()
    logger = logging.getLogger("mkdocs")
    logger.addHandler(handler)
    try:
        loaded = load_config(config_file=str(config_file), site_dir=str(tmp_path / "site"))
        build(loaded)
    finally:
        logger.removeHandler(handler)
    return Site(tmp_path, tmp_path / "site", handler.messages, directory_urls)
