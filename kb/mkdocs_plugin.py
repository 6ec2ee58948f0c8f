"""MkDocs plugin ``kb``: serve an Obsidian vault as an offline Material site.

It reads the vault once per build with :class:`kb.vault.Vault` and rewrites every page from
the parser's records (see :mod:`kb.site_markdown`), so the site and ``kb check`` agree on
every link. Options are documented on the docs page ``kb/Site plugin.md``.

Hook order (MkDocs 1.6 renders every page's Markdown before it renders any template):
``on_config`` loads the vault and adds the Markdown extensions and assets the site needs,
``on_files`` adds the generated pages and assets, ``on_page_markdown`` rewrites each note,
``on_page_content`` records heading ids and appends the local graph and backlinks, and
``on_post_page`` corrects heading links whose predicted id turned out wrong.
"""

from __future__ import annotations

import html
import os
import posixpath
import re
import unicodedata
from functools import partial
from pathlib import Path
from typing import Any

from markdown.extensions.toc import slugify as default_slugify
from mkdocs.config import config_options as c
from mkdocs.config.base import Config
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.plugins import BasePlugin, event_priority, get_plugin_logger
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

from kb.graph import build_graph
from kb.project import Project
from kb.site_assets import ASSETS_DIR, VENDOR_DIR, VendorError, install_vendor
from kb.site_graph import backlinks_html, graph_json, local_graph_html
from kb.site_markdown import RenderContext, escape_text, heading_slugs, render_note
from kb.site_sanitize import escape_page_meta, sanitize_html
from kb.site_pages import (
    GRAPH_HTML,
    GRAPH_MARKER,
    PROGRESS_MARKER,
    QUESTIONS_MARKER,
    TAGS_LISTING,
    TAGS_MARKER,
    expand_markers,
    generated_page,
    generated_target,
    home_page,
    parse_page,
    strip_title,
)
from kb.vault import Vault

__all__ = ["KbConfig", "KbPlugin"]

log = get_plugin_logger(__name__)

ASSET_PREFIX = "assets/kb"
GRAPH_JSON = f"{ASSET_PREFIX}/graph.json"

# Our own anchor markup from kb.site_markdown: heading links carry the target note and heading.
_HEADING_LINK = re.compile(
    r'<a class="kb-link" href="(?P<href>[^"#]*)#(?P<fragment>[^"]*)" '
    r'data-kb-note="(?P<note>[^"]*)" data-kb-heading="(?P<heading>[^"]*)">'
)

# A question list of the Questions page (kb.questions writes it one item per line), and the
# comment that replaces it while Python-Markdown converts the page.
_QUESTION_LIST = re.compile(r'^<ul class="kb-questions">\n(?:<li>.*\n)*</ul>$', re.MULTILINE)
_STASH_MARKER = re.compile(r"<!-- kb:stash (\d+) -->")

_EXTENSIONS: dict[str, dict[str, Any]] = {
    "toc": {},
    "tables": {},
    "attr_list": {},
    "md_in_html": {},
    "admonition": {},
    "pymdownx.details": {},
    "pymdownx.superfences": {},
    "pymdownx.arithmatex": {"generic": True},
    "pymdownx.mark": {},
    # Obsidian has strikethrough (~~x~~) but no subscript (~x~).
    "pymdownx.tilde": {"subscript": False},
    "pymdownx.tasklist": {"custom_checkbox": True},
    "footnotes": {},
    # As in Obsidian: a bullet list and a numbered list next to each other stay two lists, and
    # a numbered list keeps its start number.
    "sane_lists": {},
    # Obsidian links bare URLs such as https://example.org.
    "pymdownx.magiclink": {},
}


class KbConfig(Config):
    """Options of the ``kb`` plugin, grouped by prefix."""

    snippets_dir = c.Type(str, default="snippets")
    """Folder of runnable snippets beside mkdocs.yml, linkable as ``[[name.py]]``."""
    snippets_on_failure = c.Choice(("fail", "warn"), default="fail")
    """Effect of an embedded snippet that fails. ``fail`` stops the build with the snippet's
    location and error, and ``warn`` logs a warning and shows the code under a failure box."""

    embed_max_depth = c.Type(int, default=8)
    """Nesting depth at which transclusion stops with a visible marker."""

    links_warn_unresolved = c.Type(bool, default=True)
    """Log unresolved, ambiguous and broken heading or block links as warnings."""

    backlinks_enabled = c.Type(bool, default=True)
    backlinks_title = c.Type(str, default="Backlinks")

    graph_enabled = c.Type(bool, default=True)
    graph_page = c.Type(str, default="graph.md")
    """Path of the generated global graph page in the site."""
    graph_local = c.Type(bool, default=True)
    """Show a local graph on every note page."""
    graph_local_depth = c.Type(int, default=1)
    """Link distance the local graph shows at first; the reader can widen it."""
    graph_color_by = c.Choice(("folder", "tag"), default="folder")
    graph_unresolved = c.Type(bool, default=True)
    """Show unresolved link targets as nodes."""
    graph_attachments = c.Type(bool, default=False)

    tags_page = c.Type(str, default="tags.md")
    """Generated tags index page (used when Material's tags plugin is enabled)."""

    questions_page = c.Type(str, default="questions.md")

    fold_enabled = c.Type(bool, default=True)
    """Fold one section of every note until the reader opens it."""
    fold_heading = c.Type(str, default="Reference explanation")

    preview_enabled = c.Type(bool, default=True)
    """Show a preview of a linked note when the pointer rests on the link."""

    math_enabled = c.Type(bool, default=True)
    """Render $...$ and $$...$$ with the vendored KaTeX."""

    strict_line_breaks = c.Type(bool, default=False)
    """Obsidian's setting of the same name: when False, a single line break in a paragraph
    shows as a line break (the ``nl2br`` extension), as Obsidian shows it by default."""

    graph_exclude = c.Type(list, default=["kb/"])
    """Folders (with a trailing slash) or note paths left out of the graph view."""


class KbPlugin(BasePlugin[KbConfig]):
    supports_multiple_instances = False

    def __init__(self) -> None:
        self.vault: Vault | None = None
        self.graph = None
        self.files: Files | None = None
        self._files_by_path: dict[str, File] | None = None
        """Files by source path, made on the first page of a build, when no plugin adds or
        replaces files any more. ``Files.get_file_from_path`` normalises each path first,
        which took a tenth of a second per thousand notes."""
        self.root: Path | None = None
        self.slugify = default_slugify
        self.separator = "-"
        self.generated: dict[str, str] = {}
        """Site path to text of each page kb wrote because the vault has no note of that name."""
        self.vendor: list[Path] = []
        """Vendored KaTeX and force-graph files, listed once per build by ``on_config``."""
        self.notebook_pages: dict[str, str] = {}
        """Vault path of a snippet to the site path of its notebook page."""
        self._slug_cache: dict[str, list[str]] = {}
        self._page_ids: dict[str, list[tuple[str, str]]] = {}
        self._tags_plugin = None

    # Configuration -------------------------------------------------------------------------

    @event_priority(0)
    def on_config(self, config: MkDocsConfig) -> MkDocsConfig:
        """Load the vault, add required Markdown extensions and assets. Priority 0."""
        self.root = Path(config.config_file_path or ".").resolve().parent
        docs_dir = Path(config.docs_dir)
        self._slug_cache = {}
        self._page_ids = {}
        self._stashed: dict[str, list[str]] = {}

        for name, options in _EXTENSIONS.items():
            if name == "pymdownx.arithmatex" and not self.config.math_enabled:
                continue
            if name not in config.markdown_extensions:
                config.markdown_extensions.append(name)
            # An option the site's own configuration sets wins over kb's default.
            for option, value in options.items():
                config.mdx_configs.setdefault(name, {}).setdefault(option, value)
        if not self.config.strict_line_breaks and "nl2br" not in config.markdown_extensions:
            config.markdown_extensions.append("nl2br")
        if self.config.math_enabled:
            config.mdx_configs.setdefault("pymdownx.arithmatex", {})["generic"] = True
        toc = config.mdx_configs.get("toc", {})
        self.slugify = toc.get("slugify", default_slugify)
        self.separator = toc.get("separator", "-")

        try:
            self.vendor = install_vendor()
        except VendorError as error:
            log.error("%s", error)
            self.vendor = []
        css = [f"{ASSET_PREFIX}/vendor/katex/dist/katex.min.css", f"{ASSET_PREFIX}/kb.css"]
        js = [
            f"{ASSET_PREFIX}/vendor/katex/dist/katex.min.js",
            # Renders the $...$ of notebook pages, which do not go through arithmatex.
            f"{ASSET_PREFIX}/vendor/katex/dist/contrib/auto-render.min.js",
        ] if self.config.math_enabled else []
        js += [f"{ASSET_PREFIX}/vendor/force-graph/dist/force-graph.min.js", f"{ASSET_PREFIX}/kb.js"]
        for path in css:
            if path not in config.extra_css:
                config.extra_css.append(path)
        known = {str(script) for script in config.extra_javascript}
        for path in js:
            if path not in known:
                config.extra_javascript.append(path)

        snippets = self.root / self.config.snippets_dir
        extra = {}
        if snippets.is_dir() and not _is_inside(snippets, docs_dir):
            extra["snippets"] = snippets
        self.vault = Vault.load(docs_dir, extra_roots=extra)

        self._tags_plugin = config.plugins.get("material/tags") or config.plugins.get("tags")
        if self._tags_plugin is not None and not getattr(self._tags_plugin.config, "enabled", True):
            self._tags_plugin = None
        log.debug("loaded %d notes from %s", len(self.vault.notes), docs_dir)
        return config

    # Files ---------------------------------------------------------------------------------

    @event_priority(0)
    def on_files(self, files: Files, *, config: MkDocsConfig) -> Files:
        """Add generated pages, vendored assets, snippets and the graph data. Priority 0."""
        assert self.vault is not None
        self._drop_outside_files(files, config)
        self._drop_unread_notes(files)
        self.generated = {}
        pages = [("questions", self.config.questions_page, "Open questions")]
        if self.config.graph_enabled:
            pages.append(("graph", self.config.graph_page, "Graph of notes"))
        if self._tags_plugin is not None:
            pages.append(("tags", self.config.tags_page, "Tags"))
        for kind, path, _label in pages:
            self._add_page(files, config, path, generated_page(kind))
        if not any(file.src_uri in ("index.md", "README.md") for file in files.documentation_pages()):
            links = [(path, label) for _kind, path, label in pages]
            self._add_page(files, config, "index.md", home_page(self.vault, links))
        self.notebook_pages = self._add_notebook_pages(files, config)

        for source in sorted(ASSETS_DIR.glob("kb.*")):
            self._add_asset(files, config, f"{ASSET_PREFIX}/{source.name}", source)
        for source in self.vendor:
            relative = source.relative_to(VENDOR_DIR).as_posix()
            self._add_asset(files, config, f"{ASSET_PREFIX}/vendor/{relative}", source)
        for path, source in sorted(self.vault.files.items()):
            if path.startswith("snippets/") and files.get_file_from_path(path) is None:
                self._add_asset(files, config, path, source)
        self.files = files
        self._files_by_path = None
        self._link_generated_pages(files)
        self.graph = build_graph(self.vault, include_unresolved=True)

        if self.config.links_warn_unresolved:
            for problem in self.vault.link_problems():
                log.warning("%s", problem)
        for problem in self.vault.problems:
            # Bad input (an unreadable or binary note, invalid front matter) is a warning, so
            # `mkdocs build --strict` stops on it as it does on a broken link.
            (log.warning if problem.severity in ("error", "warning") else log.info)("%s", problem)

        if self.config.graph_enabled:
            G = self.graph if self.config.graph_unresolved else build_graph(self.vault, False)
            data = graph_json(
                G, self._site_url, include_attachments=self.config.graph_attachments,
                color_by=self.config.graph_color_by, local_depth=self.config.graph_local_depth,
                exclude=tuple(self.config.graph_exclude), titles=self._graph_titles(),
            )
            files.append(File.generated(config, GRAPH_JSON, content=data))
        return files

    def _drop_unread_notes(self, files: Files) -> None:
        """Remove the notes that the vault load skipped (binary, too large or unreadable).

        Their warnings name each one, and MkDocs would stop the build on reading them.
        """
        assert self.vault is not None
        for file in list(files.documentation_pages()):
            path = unicodedata.normalize("NFC", file.src_uri)
            if path in self.vault.files and path not in self.vault.notes:
                files.remove(file)

    def _drop_outside_files(self, files: Files, config: MkDocsConfig) -> None:
        """Remove files that MkDocs found through symbolic links pointing outside docs_dir.

        MkDocs 1.6 follows every symbolic link while it lists docs_dir, so without this a link
        such as ``docs/leak.txt -> ~/.ssh/id_rsa`` would be copied into the site.
        """
        docs = Path(config.docs_dir).resolve()
        for file in list(files):
            if file.abs_src_path is None or file.generated_by is not None or file.src_dir is None:
                continue
            if Path(file.src_dir).resolve() != docs:
                continue  # a theme file
            real = Path(os.path.realpath(file.abs_src_path))
            if not real.is_relative_to(docs):
                files.remove(file)
                log.warning(
                    "%s: skipped, it is a symbolic link to %s outside the docs folder; copy "
                    "the file into the vault to publish it", file.src_uri, real,
                )

    def _link_generated_pages(self, files: Files) -> None:
        """Resolve Markdown links to pages that exist only in the site (graph, tags, questions)."""
        assert self.vault is not None
        for link in self.vault.links:
            if link.target is not None or link.syntax != "markdown" or not link.target_text:
                continue
            candidate = generated_target(link.source, link.target_text)
            if candidate in self.generated and files.get_file_from_path(candidate) is not None:
                link.target = candidate
                link.would_create = None

    def _add_page(self, files: Files, config: MkDocsConfig, path: str, content: str) -> None:
        """Add the generated page ``path`` unless the vault has a note of that name."""
        if files.get_file_from_path(path) is not None:
            return  # the vault's own note is used, with its kb markers filled
        folded = path.casefold()
        for file in files:
            if file.src_uri.casefold() == folded:
                log.warning(
                    "%s: kb would generate '%s' beside it, and the two names collide on "
                    "case-insensitive file systems (macOS, Windows); the note is used. Rename "
                    "the note to '%s' to silence this", file.src_uri, path, path,
                )
                return
        files.append(File.generated(config, path, content=content))
        self.generated[path] = content

    def _add_notebook_pages(self, files: Files, config: MkDocsConfig) -> dict[str, str]:
        """Add a page per snippet, rendered by mkdocs-jupyter from the executed notebook that
        the run cache holds. Needs the ``mkdocs-jupyter`` plugin (with ``execute: false``) and
        returns snippet vault path to page path."""
        assert self.vault is not None
        if "mkdocs-jupyter" not in config.plugins:
            return {}
        write_pages = _optional("kb.site_snippets", "write_notebook_pages")
        project = self._project()
        if write_pages is None or not project.snippets_dir.is_dir():
            return {}
        out_dir = project.cache_dir / "site"
        pages = {}
        for page in write_pages(project, out_dir, on_failure="warn", logger=log):
            path = f"snippets/{page.snippet.name}"
            if files.get_file_from_path(page.src_uri) is None:
                # A File with src_dir, not File.generated: mkdocs-jupyter 0.26 wraps each
                # notebook File and cannot read the source path of a generated one.
                files.append(File(
                    page.src_uri, src_dir=str(out_dir), dest_dir=config.site_dir,
                    use_directory_urls=config.use_directory_urls,
                ))
            pages[path] = page.src_uri
        snippet_files = _optional("kb.snippets", "snippet_files")
        for source in snippet_files(project.snippets_dir) if snippet_files else []:
            path = f"snippets/{source.name}"
            if path not in pages:
                log.info("%s: no snippet page, because it has no passing run", path)
        return pages

    def _add_asset(self, files: Files, config: MkDocsConfig, path: str, source: Path) -> None:
        existing = files.get_file_from_path(path)
        if existing is not None:
            files.remove(existing)
        files.append(File.generated(config, path, abs_src_path=str(source)))

    def _graph_titles(self) -> dict[str, str]:
        """Return the label of each index note: its page title, as the site's navigation shows."""
        assert self.vault is not None
        titles = {}
        for path, note in self.vault.notes.items():
            if not _is_home(path):
                continue
            title = note.frontmatter.get("title")
            if not title and note.headings and note.headings[0].level == 1:
                title = note.headings[0].text
            titles[path] = str(title or ("Home" if path == "index.md" else posixpath.dirname(path)))
        return titles

    def _excluded_from_graph(self, path: str) -> bool:
        return any(
            path == entry or (entry.endswith("/") and path.startswith(entry))
            for entry in self.config.graph_exclude
        )

    def _project(self) -> Project:
        assert self.root is not None and self.vault is not None
        project = Project(root=self.root, vault_dir=self.vault.root)
        project.__dict__["vault"] = self.vault  # reuse this build's parse (a cached_property)
        return project

    # URLs ----------------------------------------------------------------------------------

    def _file(self, path: str) -> File | None:
        assert self.files is not None
        if self._files_by_path is not None:
            return self._files_by_path.get(path)
        return self.files.get_file_from_path(path)

    def _site_url(self, path: str) -> str | None:
        file = self._file(path)
        return file.url if file is not None else None

    def _relative_url(self, page: Page, path: str) -> str | None:
        file = self._file(path)
        if file is None:
            return None
        return file.url_relative_to(page.file)

    def _anchor(self, path: str, chain: list[str]) -> str | None:
        assert self.vault is not None
        note = self.vault.notes[path]
        slugs = self._slug_cache.get(path)
        if slugs is None:
            slugs = heading_slugs(note, self.slugify, self.separator)
            self._slug_cache[path] = slugs
        position = 0
        found = None
        for segment in (segment.casefold() for segment in chain):
            while position < len(note.headings) and note.headings[position].text.casefold() != segment:
                position += 1
            if position == len(note.headings):
                return None
            found = position
            position += 1
        return slugs[found] if found is not None else None

    def _tag_url(self, page: Page, name: str) -> str | None:
        if self._tags_plugin is None:
            return None
        tags_url = self._relative_url(page, self.config.tags_page)
        if tags_url is None:
            return None
        options = self._tags_plugin.config
        slug = options.tags_slugify(name, options.tags_slugify_separator)
        return f"{tags_url}#{options.tags_slugify_format.format(slug=slug)}"

    def _snippet_embed(self, page: Page, path: str, cell: str | None) -> str:
        assert self.vault is not None
        source = self.vault.files[path]
        render = _optional("kb.site_snippets", "render_embed")
        if render is None:
            return _snippet_code(source, cell)
        on_failure = "raise" if self.config.snippets_on_failure == "fail" else "warn"
        try:
            # Runs the snippet when the run cache has no result for its current code.
            body = render(source, cell, project=self._project(), on_failure=on_failure, logger=log)
        except RuntimeError as error:  # SnippetRenderError: e.g. no cell of that title
            if type(error).__name__ == "SnippetFailedError":
                raise PluginError(
                    f"{page.file.src_uri}: embedded {error} (set the kb option "
                    "snippets_on_failure: warn to build anyway with a failure box)"
                ) from error
            log.warning("%s: %s", path, error)
            return _snippet_code(source, cell)
        except PermissionError as error:  # UntrustedCodeError: outside snippets/ and docs/
            log.warning("%s: %s", path, error)
            return _snippet_code(source, cell)
        notebook = self.notebook_pages.get(path)
        url = self._relative_url(page, notebook) if notebook else None
        if url is None:
            return body
        label = escape_text(posixpath.basename(path) + (f" > {cell}" if cell else ""))
        header = (
            f'<p class="kb-snippet-header"><a class="kb-snippet-page" href="{escape_text(url)}">'
            f"{label}</a></p>"
        )
        return header + "\n\n" + body

    # Pages ---------------------------------------------------------------------------------

    def on_page_read_source(self, *, page: Page, config: MkDocsConfig) -> str | None:
        """Give MkDocs the text kb parsed, so each page matches its parse even when the file
        changed, vanished or held invalid UTF-8 after the vault was loaded.

        NOTE: MkDocs 1.6 deprecates this event and allows one plugin to handle it.
        """
        if self.vault is None:
            return None
        note = self.vault.notes.get(unicodedata.normalize("NFC", page.file.src_uri))
        if note is not None:
            return note.text
        if page.file.abs_src_path is None:
            return None
        # A note created after the vault was loaded: read it here, because `mkdocs serve` may
        # delete it again before MkDocs reads it, which would stop the rebuild.
        try:
            with open(page.file.abs_src_path, encoding="utf-8-sig", errors="strict") as handle:
                return handle.read()
        except FileNotFoundError:
            log.warning("%s: deleted while the site was built; the next build leaves it out",
                        page.file.src_uri)
            return ""
        except UnicodeDecodeError as error:
            log.warning("%s: byte %d is not valid UTF-8; re-save the note as UTF-8",
                        page.file.src_uri, error.start)
            return "This note is not valid UTF-8, so the site cannot show it. Re-save it as UTF-8.\n"
        except OSError:
            return None  # MkDocs reads it again and reports the error itself

    @event_priority(50)
    def on_page_markdown(
        self, markdown: str, *, page: Page, config: MkDocsConfig, files: Files
    ) -> str:
        """Rewrite the note behind ``page`` for the site. Priority 50: before Material's tags
        plugin (-50) reads the tags, and before other plugins see Obsidian syntax."""
        assert self.vault is not None
        # Plugins after kb may have replaced files (mkdocs-jupyter wraps each notebook), so
        # URLs come from the final collection.
        if self._files_by_path is None or files is not self.files:
            self.files = files
            self._files_by_path = {file.src_uri: file for file in files}
        path = unicodedata.normalize("NFC", page.file.src_uri)
        note = self.vault.notes.get(path)
        if note is None and path in self.generated:
            note = parse_page(self.vault, self.generated[path], path, self.generated)
        if note is not None:
            expanded = expand_markers(note.text, self._fill_marker)
            if expanded is not None:
                note = parse_page(self.vault, expanded, path, self.generated)
            context = RenderContext(
                vault=self.vault,
                page_path=path,
                url_for=partial(self._relative_url, page),
                anchor_for=self._anchor,
                tag_url=partial(self._tag_url, page),
                snippet_embed=partial(self._snippet_embed, page),
                max_depth=self.config.embed_max_depth,
                fold_heading=self.config.fold_heading if self.config.fold_enabled else None,
            )
            markdown = render_note(context, note)
            if expanded is not None:
                markdown = self._stash_lists(path, markdown)
            tags = list(page.meta.get("tags") or []) if isinstance(page.meta.get("tags"), list) else []
            seen = {str(tag).casefold() for tag in tags}
            for tag in note.tags:
                if tag.written.casefold() not in seen:
                    seen.add(tag.written.casefold())
                    tags.append(tag.written)
            if tags:
                page.meta["tags"] = tags
        escape_page_meta(page.meta)
        return markdown

    def _stash_lists(self, path: str, markdown: str) -> str:
        """Set the question lists of a page aside until its HTML exists.

        The lists are HTML that kb wrote, with links already rendered. Python-Markdown would
        only read them tag by tag and pass them through, which took most of the Questions
        page's build time on a vault with hundreds of questions. A comment replaces each list
        until ``on_page_content`` puts it back.
        """
        stashed = self._stashed[path] = []

        def stash(match: re.Match[str]) -> str:
            stashed.append(match.group())
            return f"<!-- kb:stash {len(stashed) - 1} -->"

        return _QUESTION_LIST.sub(stash, markdown)

    def _restore_lists(self, path: str, html_text: str) -> str:
        stashed = self._stashed.pop(path, None)
        if not stashed:
            return html_text
        return _STASH_MARKER.sub(lambda match: stashed[int(match.group(1))], html_text)

    def _fill_marker(self, marker: str) -> str | None:
        """Return the Markdown that replaces a kb marker in a note, or None to keep it."""
        if marker == GRAPH_MARKER:
            return GRAPH_HTML if self.config.graph_enabled else None
        if marker == TAGS_MARKER:
            if self._tags_plugin is None:
                return "Tags are listed when Material's `tags` plugin is enabled in mkdocs.yml."
            return TAGS_LISTING
        if marker == PROGRESS_MARKER:
            progress = _optional("kb.questions", "progress_markdown")
            return progress(self._project()) if progress is not None else None
        if marker == QUESTIONS_MARKER:
            questions = _optional("kb.questions", "questions_page_markdown")
            if questions is None:
                return "The questions list needs the module `kb.questions`."
            return strip_title(questions(self._project()))
        return None

    def on_serve(self, server, *, config: MkDocsConfig, builder):
        """Rebuild the site when a snippet changes, since pages show snippet outputs."""
        if self.root is not None:
            snippets = self.root / self.config.snippets_dir
            if snippets.is_dir():
                server.watch(str(snippets))
        return server

    @event_priority(-50)
    def on_page_content(
        self, html_text: str, *, page: Page, config: MkDocsConfig, files: Files
    ) -> str:
        """Record the page's heading ids, then append the local graph and backlinks.
        Priority -50: after other plugins have changed the content."""
        assert self.vault is not None and self.graph is not None
        ids: list[tuple[str, str]] = []
        stack = list(page.toc)
        while stack:
            item = stack.pop(0)
            ids.append((item.id, html.unescape(item.title)))
            stack[:0] = item.children
        path = unicodedata.normalize("NFC", page.file.src_uri)
        self._page_ids[path] = ids
        html_text = self._restore_lists(path, html_text)
        if path not in self.vault.notes:
            # Notebook pages show the project's own snippet outputs, which are trusted.
            return html_text if path.endswith(".ipynb") else sanitize_html(html_text)

        parts = [html_text]
        if self.config.graph_enabled and self.config.graph_local and not self._excluded_from_graph(path):
            parts.append(local_graph_html(path, self.config.graph_local_depth))
        if self.config.backlinks_enabled:
            parts.append(
                backlinks_html(
                    self.graph, self.vault, path, partial(self._relative_url, page),
                    self.config.backlinks_title,
                )
            )
        return sanitize_html("\n".join(parts))

    @event_priority(0)
    def on_post_page(self, output: str, *, page: Page, config: MkDocsConfig) -> str:
        """Point heading links at the ids the target pages really have, and switch on link
        previews. Priority 0."""
        if self.config.preview_enabled:
            output = output.replace("</head>", '<meta name="kb-previews" content="on">\n</head>', 1)
        if 'data-kb-heading="' not in output:
            return output
        return _HEADING_LINK.sub(self._fix_heading_link, output)

    def _fix_heading_link(self, match: re.Match[str]) -> str:
        note = html.unescape(match["note"])
        ids = self._page_ids.get(note)
        fragment = match["fragment"]
        if not ids or any(_quote_id(page_id) == fragment for page_id, _title in ids):
            return match.group()
        wanted = html.unescape(match["heading"]).casefold()
        for page_id, title in ids:
            if title.strip().casefold() == wanted:
                fixed = f'href="{match["href"]}#{escape_text(_quote_id(page_id))}"'
                return match.group().replace(
                    f'href="{match["href"]}#{fragment}"', fixed, 1
                )
        return match.group()


def _quote_id(page_id: str) -> str:
    from urllib.parse import quote

    return quote(page_id, safe="-_.~:/=&")


def _is_home(path: str) -> bool:
    """Return whether MkDocs makes the page ``path`` the index page of its folder."""
    name = path.rsplit("/", 1)[-1]
    return name in ("index.md", "README.md")


def _is_inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def _optional(module: str, name: str):
    """Return ``module.name`` when that module exists (it is written separately), else None."""
    import importlib

    try:
        loaded = importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name != module:
            raise
        return None
    return getattr(loaded, name, None)


def _snippet_code(source: Path, cell: str | None) -> str:
    """Show a snippet (or the cell titled ``cell``) as a highlighted code block."""
    lines = source.read_text(encoding="utf-8").splitlines()
    if cell:
        chosen: list[str] = []
        inside = False
        for line in lines:
            if line.startswith("# %%"):
                inside = line[4:].strip() == cell.strip()
                continue
            if inside:
                chosen.append(line)
        if chosen:
            lines = chosen
    fence = "`" * max(3, max((len(run) for run in re.findall(r"`+", "\n".join(lines))), default=0) + 1)
    title = escape_text(posixpath.basename(str(source)) + (f" > {cell}" if cell else ""))
    return f'{fence}python title="{title}"\n' + "\n".join(lines).strip("\n") + f"\n{fence}"
