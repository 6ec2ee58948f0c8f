"""Sanitise the HTML of site pages, as Obsidian does for notes, so a vault's raw HTML runs no script.

Markdown passes raw HTML through, so a note can carry ``<script>``, ``onerror=`` handlers or
``javascript:`` links. :func:`sanitize_html` keeps an allowlist of the tags and attributes that
kb, Python-Markdown, PyMdown Extensions and Material write into page content, and drops the
rest. The allowlist covers classes, ids, ``data-`` and ``aria-`` attributes, arithmatex spans,
admonitions, details, tabs, task lists, inline SVG icons, images, audio, video, PDF objects and
iframes. :func:`escape_page_meta` escapes the front matter values that Material's templates
print without escaping (the page title, description and tags).

The sanitiser is nh3, the Python binding of the Rust crate ammonia, which parses the fragment
with the HTML5 parsing algorithm before it filters.

NOTE: ids are kept because heading anchors need them, so a note can still name an element
``id="x"`` and shadow an undefined global ``window.x``. A link to an ``.html`` attachment of the
vault opens that file in the site's origin when the reader clicks it.
"""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import unquote, urlsplit

import nh3

__all__ = ["escape_page_meta", "sanitize_html"]

_SVG_TAGS = {
    "svg", "g", "path", "circle", "ellipse", "line", "polygon", "polyline", "rect", "title",
}
_MEDIA_TAGS = {"audio", "video", "source", "track", "picture", "object", "iframe"}
_EXTRA_TAGS = {
    "section", "main", "input", "label", "tfoot", "figure", "figcaption", "aside",
}
TAGS = nh3.ALLOWED_TAGS | _SVG_TAGS | _MEDIA_TAGS | _EXTRA_TAGS

_SVG_PRESENTATION = {
    "fill", "fill-rule", "clip-rule", "stroke", "stroke-width", "stroke-linecap",
    "stroke-linejoin", "opacity", "transform",
}
ATTRIBUTES: dict[str, set[str]] = {
    "*": {"class", "id", "title", "lang", "dir", "role", "style", "tabindex", "hidden"},
    "a": {"href", "name", "target", "rel", "hreflang"},
    "img": {"src", "alt", "width", "height", "loading", "align"},
    "input": {"type", "checked", "disabled", "name"},
    "label": {"for"},
    "ol": {"start", "type", "reversed"},
    "li": {"value"},
    "td": {"colspan", "rowspan", "align", "headers"},
    "th": {"colspan", "rowspan", "align", "headers", "scope"},
    "col": {"span", "align"},
    "colgroup": {"span", "align"},
    "time": {"datetime"},
    "del": {"cite", "datetime"},
    "ins": {"cite", "datetime"},
    "q": {"cite"},
    "blockquote": {"cite"},
    "details": {"open"},
    "audio": {"src", "controls", "loop", "muted", "preload"},
    "video": {"src", "controls", "loop", "muted", "preload", "poster", "width", "height"},
    "source": {"src", "type", "media"},
    "track": {"src", "kind", "srclang", "label", "default"},
    "object": {"data", "type", "width", "height"},
    "iframe": {"src", "width", "height", "allowfullscreen", "loading"},
    "svg": {"viewBox", "xmlns", "width", "height", "focusable", "preserveAspectRatio"}
    | _SVG_PRESENTATION,
    "g": _SVG_PRESENTATION,
    "path": {"d"} | _SVG_PRESENTATION,
    "circle": {"cx", "cy", "r"} | _SVG_PRESENTATION,
    "ellipse": {"cx", "cy", "rx", "ry"} | _SVG_PRESENTATION,
    "line": {"x1", "y1", "x2", "y2"} | _SVG_PRESENTATION,
    "polygon": {"points"} | _SVG_PRESENTATION,
    "polyline": {"points"} | _SVG_PRESENTATION,
    "rect": {"x", "y", "width", "height", "rx", "ry"} | _SVG_PRESENTATION,
}

# An iframe runs in an opaque origin: it may run its own scripts but cannot reach the site's
# pages, storage or dialogs (no allow-same-origin, no allow-modals).
FORCED_ATTRIBUTES = {"iframe": {"sandbox": "allow-scripts allow-popups allow-presentation"}}

URL_SCHEMES = {"http", "https", "mailto", "tel", "data"}
_URL_ATTRIBUTES = {"href", "src", "data", "poster", "cite"}

STYLE_PROPERTIES = {
    "text-align", "vertical-align", "color", "background-color", "font-weight", "font-style",
    "font-size", "text-decoration", "width", "height", "max-width", "max-height", "min-width",
    "margin", "margin-left", "margin-right", "padding", "border", "white-space",
}
# Values that load resources or run code in some browser even inside an allowed property.
_UNSAFE_STYLE = re.compile(r"url\s*\(|expression\s*\(|javascript:|@import|\\|behavior|-moz-binding", re.I)

_DATA_IMAGE = re.compile(r"data:image/(png|jpeg|gif|webp|avif|bmp|svg\+xml)[;,]", re.I)
_SCHEME = re.compile(r"^([a-z][a-z0-9+.\-]*):", re.I)


def _url_allowed(element: str, attribute: str, value: str) -> bool:
    """Check a URL attribute: data: URLs only as image sources, PDF objects only as PDFs."""
    # Browsers ignore tabs, newlines and leading control characters in a scheme, so a check
    # on the raw value would miss "java\tscript:".
    compact = re.sub(r"[\x00-\x20]", "", html.unescape(value))
    match = _SCHEME.match(compact)
    scheme = match.group(1).lower() if match else None
    if scheme is not None and scheme not in URL_SCHEMES:
        return False
    if scheme == "data":
        return element == "img" and attribute == "src" and bool(_DATA_IMAGE.match(compact))
    if element == "object":
        return unquote(urlsplit(compact).path).lower().endswith(".pdf")
    return True


def _filter_attribute(element: str, attribute: str, value: str) -> str | None:
    if attribute in _URL_ATTRIBUTES and not _url_allowed(element, attribute, value):
        return None
    if attribute == "style" and _UNSAFE_STYLE.search(value):
        return None
    if element == "input" and attribute == "type" and value.lower() not in ("checkbox", "radio"):
        return None
    return value


def sanitize_html(text: str) -> str:
    """Return ``text`` with every tag, attribute and URL outside the allowlist removed.

    ``script`` and ``style`` elements go with their content, other disallowed tags leave their
    text behind, and comments are removed.
    """
    return nh3.clean(
        text,
        tags=TAGS,
        clean_content_tags={"script", "style", "template", "noscript"},
        attributes=ATTRIBUTES,
        attribute_filter=_filter_attribute,
        generic_attribute_prefixes={"data-", "aria-"},
        set_tag_attribute_values=FORCED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        filter_style_properties=STYLE_PROPERTIES,
        link_rel=None,
    )


# Front matter keys that Material prints into pages as HTML without escaping them.
_PRINTED_KEYS = ("title", "description", "subtitle", "status", "tags")


def escape_page_meta(meta: dict[str, Any]) -> None:
    """Escape, in place, the front matter strings that Material's templates print unescaped.

    MkDocs reads ``title`` from front matter as raw text, while a title taken from the first
    heading is already HTML, so only front matter needs escaping. Tags are escaped before
    Material's tags plugin reads them, so the tags index, search index and tag chips show the
    text as written.
    """
    for key in _PRINTED_KEYS:
        value = meta.get(key)
        if isinstance(value, str):
            meta[key] = html.escape(value)
        elif isinstance(value, list):
            meta[key] = [html.escape(item) if isinstance(item, str) else item for item in value]
