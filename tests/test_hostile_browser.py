"""Load a site built from a vault full of HTML and script payloads in headless Chromium.

Every payload either sets ``window.__pwned = 1`` or opens a dialog, so a payload that runs
shows up as the flag, a dialog or a console error. Chromium is the Debian package at
/usr/bin/chromium; the site is served by http.server on 127.0.0.1 on a free port, and every
request for another host is aborted.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

import pytest

from conftest import serve_directory
from site_build import build_site

pytestmark = [pytest.mark.browser, pytest.mark.slow]


IMG = "<img src=x onerror=alert(1)>"
SCRIPT = "<script>window.__pwned=1</script>"
SET_FLAG = "window.__pwned=1"

# Raw HTML that Markdown passes through unchanged, each a different way to run script.
RAW_HTML = [
    f"<img src=x onerror={SET_FLAG}>",
    f"<svg onload={SET_FLAG}><circle r=1></circle></svg>",
    f'<details open ontoggle="{SET_FLAG}"><summary>s</summary>d</details>',
    f'<a href="javascript:{SET_FLAG}" id="js-link">javascript link</a>',
    f'<a href="java&#9;script:{SET_FLAG}" id="tab-link">tab in scheme</a>',
    f'<iframe srcdoc="<script>parent.{SET_FLAG}</script>"></iframe>',
    f'<iframe src="javascript:parent.{SET_FLAG}"></iframe>',
    '<object data="evil.html"></object>',
    f'<embed src="data:text/html,<script>parent.{SET_FLAG}</script>">',
    f'<form action="javascript:{SET_FLAG}"><button id="form-button">go</button></form>',
    f'<math><mtext><table><mglyph><style><img src=x onerror="{SET_FLAG}">',
    f'<div style="background:url(javascript:{SET_FLAG})">styled</div>',
    f'<meta http-equiv="refresh" content="0;url=javascript:{SET_FLAG}">',
    f"<base href=\"javascript:{SET_FLAG}//\">",
    f"<style>@import 'javascript:{SET_FLAG}';</style>",
    f'<input autofocus onfocus="{SET_FLAG}">',
    f'<video><source onerror="{SET_FLAG}"></video>',
    f"<noscript><p title=\"</noscript><img src=x onerror={SET_FLAG}>\"></noscript>",
]

NOTES = {
    "index.md": "# Home\n\n[[Host]] and [[Payload note]]\n",
    f"{IMG}.md": (
        f"---\ntitle: '{SCRIPT}'\ndescription: '\"><script>{SET_FLAG}</script>'\n"
        f"aliases: ['{IMG}']\ntags: ['{IMG}']\n---\n# {SCRIPT}\n\nBody of the image note.\n"
    ),
    "Host.md": (
        f"---\ntags: [host]\n---\n# Host\n\n"
        f"[[{IMG}]] and [[{IMG}|{SCRIPT}]] and [[{IMG}#{SCRIPT}]] and [[Payload note|{IMG}]]\n\n"
        f"![[{IMG}]]\n\n"
        f"> [!note] {SCRIPT}\n> callout body\n\n"
        f"> [!tip]- {IMG}\n> folded\n\n"
        f"[[Missing {SCRIPT}]]\n\n"
        f"Does {SCRIPT} reach the questions page?\n"
    ),
    "Payload note.md": (
        f"---\ntitle: '{IMG}'\n---\n# Payload {SCRIPT}\n\n## {IMG}\n\n"
        + "\n\n".join(RAW_HTML)
        + f"\n\n[link text {IMG}]({quote('Host')}.md)\n\nWhat does {IMG} do?\n"
    ),
}

PAGES = ["", "Host/", "Payload%20note/", quote(IMG, safe="") + "/", "graph/", "questions/", "tags/"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile-browser")
    site = build_site(root, NOTES)
    # A page that would run script if a payload loaded it in the site's origin.
    (site.site / "Payload note" / "evil.html").write_text(
        f"<script>parent.{SET_FLAG}; {SET_FLAG}</script>", encoding="utf-8"
    )
    with serve_directory(site.site) as url:
        yield url


@pytest.fixture
def watched(browser):
    """A browser page with its dialogs, console errors and script errors recorded."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    events: dict[str, list[str]] = {"dialogs": [], "errors": [], "requests": []}

    def route(route_request):
        url = route_request.request.url
        events["requests"].append(url)
        if url.startswith(("data:", "blob:")) or urlsplit(url).hostname == "127.0.0.1":
            route_request.continue_()
        else:
            route_request.abort()

    def on_dialog(dialog):
        events["dialogs"].append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def on_console(message):
        # A missing image (the payloads' src=x) is an expected load failure, not a script.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            events["errors"].append(message.text)

    context.route("**/*", route)
    opened = context.new_page()
    opened.on("dialog", on_dialog)
    opened.on("console", on_console)
    opened.on("pageerror", lambda error: events["errors"].append(str(error)))
    yield opened, events
    context.close()


def flag(page) -> object:
    """Return window.__pwned, which is 1 only when a payload ran (an element id would clobber it
    with an element, so only the number counts)."""
    return page.evaluate("() => window.__pwned === 1 ? 1 : null")


def test_payload_pages_run_no_script(watched, server):
    page, events = watched
    for path in PAGES:
        page.goto(server + path)
        page.wait_for_load_state("load")
        page.wait_for_timeout(300)
        assert flag(page) is None, path
        assert events["dialogs"] == [], path
        assert events["errors"] == [], path
    assert all(urlsplit(url).hostname in (None, "127.0.0.1") for url in events["requests"])


def test_payload_links_do_nothing(watched, server):
    page, events = watched
    page.goto(server + "Payload%20note/")
    for selector in ("#js-link", "#tab-link", "#form-button"):
        found = page.locator(selector)
        if found.count():
            found.first.click()
            page.wait_for_timeout(200)
    assert flag(page) is None
    assert events["dialogs"] == []
    assert events["errors"] == []


def test_titles_shown_as_text(watched, server):
    page, events = watched
    page.goto(server + quote(IMG, safe="") + "/")
    assert page.title().startswith(SCRIPT)
    assert page.locator(".md-tag").first.inner_text() == IMG
    page.goto(server + "Host/")
    assert page.locator("p.admonition-title").first.inner_text() == SCRIPT
    assert page.locator("details.tip summary").first.inner_text() == IMG


def test_graph_page_runs_no_script(watched, server):
    page, events = watched
    page.goto(server + "graph/")
    graph = page.locator(".kb-graph-global[data-kb-ready='1']")
    graph.wait_for(timeout=20000)
    labels = page.evaluate(
        "() => document.querySelector('.kb-graph-global').kbGraph.graphData().nodes.map(n => n.label)"
    )
    assert any(IMG in label for label in labels)
    assert flag(page) is None
    assert events["dialogs"] == []
    assert events["errors"] == []


def test_link_preview_runs_no_script(watched, server):
    page, events = watched
    page.goto(server + "Host/")
    for link in page.locator("article a.kb-link[data-kb-note]").all():
        link.hover()
        page.wait_for_timeout(600)
    preview = page.locator(".kb-preview")
    preview.wait_for(state="attached", timeout=5000)
    assert flag(page) is None
    assert events["dialogs"] == []
    assert events["errors"] == []
