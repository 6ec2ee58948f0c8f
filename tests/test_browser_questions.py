"""Follow a question of the person's note to its answer's code and own-words section.

Builds this project's own vault (snippet results come from the shared run cache, so nothing
executes twice in one test session) and drives it in Debian's headless Chromium.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from mkdocs.commands.build import build
from mkdocs.config import load_config

from conftest import serve_directory

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def site_dir(tmp_path_factory):
    site_dir = tmp_path_factory.mktemp("project-site")
    build(load_config(config_file=str(ROOT / "mkdocs.yml"), site_dir=str(site_dir)))
    return site_dir


@pytest.fixture(scope="module")
def site_url(site_dir):
    with serve_directory(site_dir) as url:
        yield url


def test_question_leads_to_code_and_own_words(browser, site_url):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    outside: list[str] = []
    errors: list[str] = []

    def route(route_request):
        url = route_request.request.url
        if url.startswith(("data:", "blob:")) or urlsplit(url).hostname == "127.0.0.1":
            route_request.continue_()
        else:
            outside.append(url)
            route_request.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(str(error)))

    # The Questions page lists the person's cold-diffusion question with its badges.
    page.goto(site_url + "questions/")
    item = page.locator("li", has_text="How do cold diffusion models work?").first
    assert item.count() == 1
    assert "code: passed" in item.inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "questions-page.png"), full_page=False)

    # One click reaches the answer's code: the Code heading and the snippet's output.
    item.get_by_role("link", name="code", exact=True).click()
    page.wait_for_load_state()
    assert "Cold%20diffusion" in page.url or "Cold diffusion" in page.url or "cold" in page.url.lower()
    assert urlsplit(page.url).fragment == "code"
    assert page.locator("h2#code").is_visible()
    assert page.locator(".kb-stream, .kb-snippet-output, pre").count() > 0

    # Back on the Questions page, one click reaches the own-words section and its prompt.
    page.go_back()
    item = page.locator("li", has_text="How do cold diffusion models work?").first
    item.get_by_role("link", name="own words", exact=True).click()
    page.wait_for_load_state()
    assert urlsplit(page.url).fragment == "in-my-own-words"
    heading = page.locator("h2#in-my-own-words")
    assert heading.is_visible()
    assert "Explain it in your own words" in page.content()

    context.close()
    assert outside == []
    assert errors == []


def test_every_formula_renders(browser, site_dir, site_url):
    """Every page's math goes through KaTeX without an error, so a typo in a note's TeX fails here."""
    context = browser.new_context()
    errors: list[str] = []
    context.route("**/*", lambda route: route.continue_() if urlsplit(route.request.url).hostname
                  == "127.0.0.1" else route.abort())
    page = context.new_page()
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(str(error)))

    formulas = 0
    for index in sorted(site_dir.rglob("index.html")):
        path = index.parent.relative_to(site_dir).as_posix()
        page.goto(site_url + (f"{path}/" if path != "." else ""))
        page.wait_for_load_state("load")
        failed = [element.get_attribute("title") for element in page.locator(".katex-error").all()]
        assert failed == [], f"{path}: KaTeX could not render {failed}"
        unrendered = page.locator(".arithmatex:not(:has(.katex))").count()
        assert unrendered == 0, f"{path}: {unrendered} formulas left as TeX"
        # Snippet pages: Markdown cells keep $...$ for KaTeX's auto-render to find.
        dollars = page.evaluate("""() => Array.from(document.querySelectorAll('.jp-MarkdownOutput'))
            .map(cell => { const copy = cell.cloneNode(true);
                           copy.querySelectorAll('.katex, code, pre').forEach(e => e.remove());
                           return copy.textContent; })
            .filter(text => text.includes('$')).length""")
        assert dollars == 0, f"{path}: {dollars} Markdown cells show raw $...$"
        formulas += page.locator(".katex").count()
        assert errors == [], f"{path}: {errors}"

    context.close()
    # The notes on attention and diffusion hold several hundred formulas; a count near zero
    # means math rendering stopped, not that the notes lost their math.
    assert formulas > 600
