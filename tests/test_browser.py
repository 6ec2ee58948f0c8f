"""Drive the built study site in headless Chromium (the Debian package, never a download)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest

from conftest import serve_directory
from site_build import build_site

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"

NOTES = {
    "index.md": "# Home\n\nStart with [[Loss#Derivation|the derivation]] or [[Summary]].\n",
    "Loss.md": (
        "---\ntags: [ml]\n---\n# Loss\n\nThe loss is $L = \\frac{1}{n}\\sum_i (y_i - f(x_i))^2$.\n\n"
        + "\n\n".join(f"Filler paragraph {i} so the heading sits below the fold." for i in range(40))
        + "\n\n## Derivation\n\n$$\n\\nabla L = -\\frac{2}{n} \\sum_i (y_i - f(x_i)) \\nabla f\n$$\n\n"
        "See [[Gradient Descent]].\n"
    ),
    "Gradient Descent.md": "# Gradient Descent\n\nStep against the gradient of the [[Loss]]. ^step\n",
    "Summary.md": "# Summary\n\n![[Gradient Descent]]\n\n> [!note] Callout\n> Uses #ml too.\n",
    "topics/Deep.md": "# Deep\n\nA note one folder down reads [[Gradient Descent]].\n",
    # Long names at the edges of the graph test that labels stay inside the canvas.
    "topics/A deliberately long note name for the graph edge.md": "# Long\n\n[[Deep]]\n",
    "Another long note name that the graph must fit.md": "# Long too\n\n[[Summary]]\n",
}
# A chain of notes with long names spreads the graph wider than a narrow canvas.
NOTES.update({
    f"chain/Chained note number {i} with a long name.md": (
        f"# Chain {i}\n\n[[Chained note number {i + 1} with a long name]]\n" if i < 7 else "# End\n"
    )
    for i in range(8)
})

# Instant navigation needs site_url, and Material 9.8 intercepts only links whose port matches
# it, so the site is built for the port the test server listens on.
CONFIG = """\
site_name: test vault
site_url: http://127.0.0.1:{port}/
theme:
  name: material
  font: false
  features:
    - navigation.instant
plugins:
  - search
  - tags
  - kb:
      graph_unresolved: false
markdown_extensions:
  - toc:
      permalink: true
      slugify: !!python/object/apply:pymdownx.slugs.slugify
        kwds:
          case: lower
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    with serve_directory(root / "site") as url:
        port = urlsplit(url).port
        site = build_site(root, NOTES, config=CONFIG.format(port=port))
        yield url, site


@pytest.fixture
def page(browser, server):
    """A page whose every request is recorded; requests that leave 127.0.0.1 are aborted."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    requests: list[str] = []
    errors: list[str] = []

    def route(route_request):
        url = route_request.request.url
        requests.append(url)
        host = urlsplit(url).hostname
        if url.startswith(("data:", "blob:")) or host == "127.0.0.1":
            route_request.continue_()
        else:
            route_request.abort()

    context.route("**/*", route)
    opened = context.new_page()
    opened.on("console", lambda message: message.type == "error" and errors.append(message.text))
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    outside = [url for url in requests if not url.startswith(("data:", "blob:"))
               and urlsplit(url).hostname != "127.0.0.1"]
    assert outside == [], f"requests left 127.0.0.1: {outside}"
    assert errors == [], f"console errors: {errors}"
    context.close()


def test_heading_link_lands_on_heading(page, server):
    base, _site = server
    page.goto(base)
    page.click("a.kb-link:has-text('the derivation')")
    page.wait_for_url("**/Loss/#derivation")
    heading = page.locator("h2#derivation")
    heading.wait_for()
    box = heading.bounding_box()
    assert box is not None and 0 <= box["y"] < 900


def test_backlinks_and_local_graph(page, server):
    base, _site = server
    page.goto(base + "Gradient%20Descent/")
    backlinks = page.locator(".kb-backlinks")
    backlinks.scroll_into_view_if_needed()
    assert backlinks.is_visible()
    assert backlinks.locator("a.kb-backlink", has_text="Loss").count() == 1
    local = page.locator(".kb-graph-local[data-kb-ready='1']")
    local.wait_for(timeout=15000)
    assert local.locator("canvas").first.is_visible()
    assert int(local.get_attribute("data-kb-nodes")) >= 2
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "note-page.png"), full_page=True)


def test_formula_renders(page, server):
    base, _site = server
    page.goto(base + "Loss/")
    page.locator(".arithmatex .katex").first.wait_for()
    assert page.locator(".arithmatex .katex-display").count() >= 1


def test_transcluded_note_opens(page, server):
    base, _site = server
    page.goto(base + "Summary/")
    embed = page.locator(".kb-embed")
    assert "Step against the gradient" in embed.inner_text()
    page.locator(".admonition.note").wait_for()
    embed.locator("a.kb-embed-source").click()
    page.wait_for_url("**/Gradient%20Descent/")
    # Instant navigation changes the URL before it swaps the content, so wait for the heading.
    page.wait_for_function(
        "() => (document.querySelector('article h1') || {}).textContent?.startsWith('Gradient Descent')"
    )
    assert page.locator("article h1").first.inner_text().startswith("Gradient Descent")


def test_global_graph_nodes_and_click(page, server):
    base, _site = server
    page.goto(base + "graph/")
    graph = page.locator(".kb-graph-global[data-kb-ready='1']")
    graph.wait_for(timeout=20000)
    assert int(graph.get_attribute("data-kb-nodes")) == len(NOTES)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "graph-page.png"), full_page=True)

    point = page.evaluate(
        """() => {
            const el = document.querySelector('.kb-graph-global');
            const node = el.kbGraph.graphData().nodes.find(n => n.label === 'Summary');
            const xy = el.kbGraph.graph2ScreenCoords(node.x, node.y);
            const box = el.querySelector('canvas').getBoundingClientRect();
            return {x: box.left + xy.x, y: box.top + xy.y};
        }"""
    )
    page.mouse.move(point["x"], point["y"])
    page.wait_for_timeout(300)
    page.mouse.click(point["x"], point["y"])
    page.wait_for_url("**/Summary/")
    page.wait_for_function(
        "() => (document.querySelector('article h1') || {}).textContent?.startsWith('Summary')"
    )
    assert page.locator("article h1").first.inner_text().startswith("Summary")


def _hover_preview(page, selector):
    """Rest the pointer on the link ``selector`` and return the preview box once it shows."""
    page.locator(selector).first.hover()
    preview = page.locator(".kb-preview:not([hidden])")
    preview.wait_for(timeout=10000)
    return preview


def test_preview_links_resolve(page, server):
    base, _site = server
    page.goto(base + "topics/Deep/")
    preview = _hover_preview(page, "a.kb-link:has-text('Gradient Descent')")
    hrefs = preview.locator("a[href]").evaluate_all("links => links.map(a => a.href)")
    assert hrefs, "the preview shows no links"
    for href in hrefs:
        response = page.request.get(href.split("#")[0])
        assert response.status == 200, f"{href} in the preview returned {response.status}"


def test_graph_labels_inside_canvas(page, server):
    base, _site = server
    # At this width the chain of long names is wider than the canvas, so the fit zooms out.
    page.set_viewport_size({"width": 800, "height": 900})
    page.goto(base + "graph/")
    graph = page.locator(".kb-graph-global[data-kb-ready='1']")
    graph.wait_for(timeout=20000)
    page.wait_for_timeout(500)
    outside = page.evaluate(
        """() => {
            const el = document.querySelector('.kb-graph-global');
            const canvas = el.querySelector('canvas');
            const box = canvas.getBoundingClientRect();
            const measure = document.createElement('canvas').getContext('2d');
            measure.font = '10px sans-serif';
            const scale = el.kbGraph.zoom();
            if (scale < 1.2) return ['labels hidden at zoom ' + scale];
            return el.kbGraph.graphData().nodes.filter(n => {
                const xy = el.kbGraph.graph2ScreenCoords(n.x, n.y);
                const half = measure.measureText(n.label).width / 2;
                return xy.x - half < 0 || xy.x + half > box.width || xy.y + 5 * scale + 12 > box.height;
            }).map(n => n.label);
        }"""
    )
    assert outside == []
    legend = graph.locator(".kb-graph-legend-item")
    assert legend.count() >= 2
    assert "topics" in graph.locator(".kb-graph-legend").inner_text()


def test_features_after_instant_navigation(page, server):
    base, _site = server
    page.goto(base)
    page.evaluate("() => { window.kbNoReload = true; }")
    page.click("a.kb-link:has-text('Summary')")
    page.wait_for_url("**/Summary/")
    page.locator("a.kb-link:has-text('Loss')").first.wait_for()
    assert page.evaluate("() => window.kbNoReload === true"), "the click reloaded the page"
    local = page.locator(".kb-graph-local[data-kb-ready='1']")
    local.wait_for(timeout=15000)

    page.locator(".md-header__button.md-logo").click()
    page.wait_for_url(base)
    page.click("a.kb-link:has-text('the derivation')")
    page.wait_for_url("**/Loss/#derivation")
    assert page.evaluate("() => window.kbNoReload === true"), "the click reloaded the page"
    page.locator(".arithmatex .katex").first.wait_for(timeout=10000)

    preview = _hover_preview(page, "a.kb-link:has-text('Gradient Descent')")
    assert "Step against the gradient" in preview.inner_text()
