"""The page sanitiser drops script vectors and keeps the markup kb, PyMdown and Material write."""

from __future__ import annotations

import pytest

from kb.site_sanitize import escape_page_meta, sanitize_html

DANGEROUS = [
    ("<script>window.x=1</script>after", "after"),
    ("<img src=x onerror=alert(1)>", '<img src="x">'),
    ('<a href="javascript:alert(1)">a</a>', "<a>a</a>"),
    ('<a href="java&#9;script:alert(1)">a</a>', "<a>a</a>"),
    ('<a href=" JaVaScRiPt:alert(1)">a</a>', "<a>a</a>"),
    ('<a href="vbscript:msgbox(1)">a</a>', "<a>a</a>"),
    ('<img src="data:text/html,<script>alert(1)</script>">', "<img>"),
    ('<a href="data:image/png;base64,AA">a</a>', "<a>a</a>"),
    ('<svg onload="alert(1)"><path d="M0 0"/></svg>', '<svg><path d="M0 0"></path></svg>'),
    ('<details open ontoggle="alert(1)"><summary>s</summary></details>',
     "<details open=\"\"><summary>s</summary></details>"),
    ('<iframe srcdoc="<script>alert(1)</script>"></iframe>',
     '<iframe sandbox="allow-scripts allow-popups allow-presentation"></iframe>'),
    ('<object data="evil.html"></object>', "<object></object>"),
    ('<embed src="x.swf">', ""),
    ('<form action="javascript:1"><button>b</button></form>', "b"),
    ('<p style="width: expression(alert(1))">p</p>', "<p>p</p>"),
    ('<p style="background: url(javascript:alert(1))">p</p>', "<p>p</p>"),
    ('<p style="color: red; position: fixed">p</p>', '<p style="color:red">p</p>'),
    ("<style>body{display:none}</style>text", "text"),
    ('<meta http-equiv="refresh" content="0;url=javascript:1">', ""),
    ('<base href="javascript:1//">', ""),
    ('<input type="image" src="x" onfocus="alert(1)" autofocus>', "<input>"),
    ("<!-- <script>alert(1)</script> -->", ""),
]


@pytest.mark.parametrize(("raw", "expected"), DANGEROUS)
def test_sanitizer_drops_script_vectors(raw, expected):
    assert sanitize_html(raw) == expected


def test_sanitizer_mxss_nesting():
    raw = '<math><mtext><table><mglyph><style><img src=x onerror="alert(1)">'
    cleaned = sanitize_html(raw)
    assert "onerror" not in cleaned
    assert "<style" not in cleaned


KEPT = [
    # kb links, embeds and media
    '<a class="kb-link" href="../Loss/#derivation" data-kb-note="Loss.md" '
    'data-kb-heading="Derivation">the derivation</a>',
    '<span class="kb-unresolved" title="No note named \'X\' yet">X</span>',
    '<div class="kb-graph kb-graph-local" data-kb-node="Host.md" data-kb-depth="1"></div>',
    '<img class="kb-image" src="../img/a%20b.png" alt="a b.png" width="200">',
    '<img class="kb-output" alt="output figure" src="data:image/png;base64,iVBORw0KGgo=">',
    '<img class="kb-output" alt="output figure" src="data:image/svg+xml;base64,PHN2Zz4=">',
    '<object class="kb-pdf" data="../doc.pdf#page=3" type="application/pdf"></object>',
    '<video class="kb-video" controls="" src="../clip.mp4"></video>',
    '<audio class="kb-audio" controls="" src="../sound.mp3"></audio>',
    # Python-Markdown, PyMdown and Material
    '<h2 id="derivation">Derivation<a class="headerlink" href="#derivation" '
    'title="Permanent link">¶</a></h2>',
    '<span class="arithmatex">\\(x^2\\)</span>',
    '<div class="admonition note"><p class="admonition-title">Note</p><p>b</p></div>',
    '<details class="tip" open=""><summary>T</summary><p>b</p></details>',
    '<ul class="task-list"><li class="task-list-item"><label class="task-list-control">'
    '<input type="checkbox" disabled="" checked=""><span class="task-list-indicator"></span>'
    "</label> done</li></ul>",
    '<div class="tabbed-set" data-tabs="1:2"><input checked="checked" id="__tabbed_1_1" '
    'name="__tabbed_1" type="radio"><label for="__tabbed_1_1">A</label></div>',
    '<sup id="fnref:1"><a class="footnote-ref" href="#fn:1">1</a></sup>',
    '<table><thead><tr><th style="text-align: left">a</th></tr></thead></table>',
    '<span class="twemoji"><svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24">'
    '<path d="M12 2"></path></svg></span>',
    '<a href="https://example.org/a?b=1&amp;c=2">ext</a>',
    '<a href="mailto:a@example.org">mail</a>',
    "<mark>m</mark><del>d</del><ins>i</ins><sub>s</sub><sup>t</sup><kbd>k</kbd>",
]


@pytest.mark.parametrize("markup", KEPT)
def test_sanitizer_keeps_site_markup(markup):
    assert sanitize_html(markup) == markup.replace("text-align: left", "text-align:left")


def test_page_meta_escaped():
    meta = {
        "title": "<script>x</script>",
        "description": '"><b>',
        "tags": ["<img src=x>", "plain", 3],
        "template": "main.html",
        "hide": ["navigation"],
    }
    escape_page_meta(meta)
    assert meta["title"] == "&lt;script&gt;x&lt;/script&gt;"
    assert meta["description"] == "&quot;&gt;&lt;b&gt;"
    assert meta["tags"] == ["&lt;img src=x&gt;", "plain", 3]
    assert meta["template"] == "main.html"
    assert meta["hide"] == ["navigation"]
