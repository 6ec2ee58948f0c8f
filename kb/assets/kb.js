// Browser side of the kb study site: math, graph view and link previews.
// Runs on every page load and, under Material's instant navigation, on every document$
// emission. Loads nothing from the network: KaTeX and force-graph are vendored files.
(function () {
  "use strict";

  // kb.js lives at <site root>/assets/kb/kb.js, so the site root is two folders up.
  var scriptUrl = document.currentScript ? document.currentScript.src : location.href;
  var siteRoot = new URL("../../", scriptUrl);
  var graphPromise = null;
  var liveGraphs = [];

  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, function (ch) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[ch];
    });
  }

  // Math ------------------------------------------------------------------------------------

  function renderMath(root) {
    if (typeof katex === "undefined") return;
    root.querySelectorAll(".arithmatex").forEach(function (el) {
      if (el.dataset.kbMath) return;
      var tex = el.textContent.trim();
      var display = el.tagName === "DIV";
      if (tex.startsWith("\\(") || tex.startsWith("\\[")) tex = tex.slice(2, -2);
      try {
        katex.render(tex, el, { displayMode: display, throwOnError: false });
      } catch (error) {
        el.classList.add("kb-math-error");
      }
      el.dataset.kbMath = "1";
    });
    // Markdown cells of snippet notebook pages keep their TeX between dollar signs, as
    // Jupyter writes it; KaTeX's auto-render finds it there and skips code and pre blocks.
    if (typeof renderMathInElement === "undefined") return;
    root.querySelectorAll(".jp-MarkdownOutput").forEach(function (el) {
      if (el.dataset.kbMath) return;
      renderMathInElement(el, {
        delimiters: [
          { left: "$$", right: "$$", display: true },
          { left: "\\[", right: "\\]", display: true },
          { left: "$", right: "$", display: false },
          { left: "\\(", right: "\\)", display: false },
        ],
        throwOnError: false,
      });
      el.dataset.kbMath = "1";
    });
  }

  // Graph -----------------------------------------------------------------------------------

  function loadGraph() {
    if (!graphPromise) {
      graphPromise = fetch(new URL("assets/kb/graph.json", siteRoot)).then(function (response) {
        if (!response.ok) throw new Error("graph data: HTTP " + response.status);
        return response.json();
      });
    }
    return graphPromise;
  }

  function hue(text) {
    var h = 0;
    for (var i = 0; i < text.length; i++) h = (h * 31 + text.charCodeAt(i)) % 360;
    return h;
  }

  function themeColors() {
    var style = getComputedStyle(document.body);
    var scheme = document.body.getAttribute("data-md-color-scheme") || "default";
    return {
      dark: scheme === "slate",
      text: style.getPropertyValue("--md-typeset-color").trim() || (scheme === "slate" ? "#e0e0e0" : "#222"),
      muted: scheme === "slate" ? "rgba(255,255,255,0.15)" : "rgba(0,0,0,0.12)",
      link: scheme === "slate" ? "rgba(255,255,255,0.35)" : "rgba(0,0,0,0.25)",
    };
  }

  function colorKey(node, options) {
    return options.colorBy === "tag" ? (node.tags[0] || "") : node.folder;
  }

  function keyColor(key) {
    return key ? "hsl(" + hue(key) + ", 60%, 50%)" : "hsl(210, 55%, 50%)";
  }

  function nodeColor(node, options) {
    if (node.kind === "unresolved") return "#9e9e9e";
    return keyColor(colorKey(node, options));
  }

  // One entry per folder (or first tag) that the shown nodes have, with its colour.
  function drawLegend(legend, nodes, options) {
    var keys = {};
    var unresolved = false;
    nodes.forEach(function (n) {
      if (n.kind === "unresolved") unresolved = true;
      else keys[colorKey(n, options)] = true;
    });
    var none = options.colorBy === "tag" ? "no tag" : "top folder";
    var entries = Object.keys(keys).sort().map(function (key) {
      return [keyColor(key), key || none];
    });
    if (unresolved) entries.push(["#9e9e9e", "no note yet"]);
    legend.innerHTML = entries.map(function (entry) {
      return '<span class="kb-graph-legend-item"><span class="kb-graph-legend-swatch" style="background:' +
        entry[0] + '"></span>' + escapeHtml(entry[1]) + "</span>";
    }).join("");
  }

  var LABEL_FONT_PX = 10;

  // Zoom so every node and its label (drawn centred below the node) stays inside the canvas.
  function fitWithLabels(graph, holder, ms) {
    var measure = document.createElement("canvas").getContext("2d");
    measure.font = LABEL_FONT_PX + "px sans-serif";
    var half = 0;
    graph.graphData().nodes.forEach(function (n) {
      half = Math.max(half, measure.measureText(n.label).width / 2);
    });
    var width = holder.clientWidth || 600;
    var padding = Math.min(Math.ceil(half) + 12, Math.max(20, Math.floor(width / 2) - 40));
    graph.zoomToFit(ms, Math.max(padding, LABEL_FONT_PX * 2 + 8));
  }

  // Nodes within `depth` links of `center`, links followed in both directions.
  function neighbourhood(data, center, depth) {
    var adjacent = {};
    data.links.forEach(function (link) {
      (adjacent[link.source] = adjacent[link.source] || []).push(link.target);
      (adjacent[link.target] = adjacent[link.target] || []).push(link.source);
    });
    var seen = {};
    seen[center] = true;
    var frontier = [center];
    for (var level = 0; level < depth; level++) {
      var next = [];
      frontier.forEach(function (id) {
        (adjacent[id] || []).forEach(function (other) {
          if (!seen[other]) { seen[other] = true; next.push(other); }
        });
      });
      frontier = next;
    }
    return seen;
  }

  function subgraph(data, keep) {
    var nodes = data.nodes.filter(function (n) { return keep === null || keep[n.id]; })
      .map(function (n) { return Object.assign({}, n); });
    var ids = {};
    nodes.forEach(function (n) { ids[n.id] = true; });
    var links = data.links.filter(function (l) { return ids[l.source] && ids[l.target]; })
      .map(function (l) { return { source: l.source, target: l.target, kind: l.kind }; });
    return { nodes: nodes, links: links };
  }

  function drawGraph(el, data) {
    var local = el.classList.contains("kb-graph-local");
    var center = el.dataset.kbNode || null;
    var depth = parseInt(el.dataset.kbDepth || data.options.localDepth || 1, 10);
    var canvasHolder = document.createElement("div");
    canvasHolder.className = "kb-graph-canvas";
    el.textContent = "";

    if (local) {
      var bar = document.createElement("div");
      bar.className = "kb-graph-bar";
      bar.innerHTML = '<span class="kb-graph-title">Local graph</span> ' +
        '<button type="button" class="kb-graph-less" title="Show fewer links">&minus;</button>' +
        '<span class="kb-graph-depth"></span>' +
        '<button type="button" class="kb-graph-more" title="Show more links">+</button>';
      el.appendChild(bar);
    }
    el.appendChild(canvasHolder);
    var legend = document.createElement("div");
    legend.className = "kb-graph-legend";
    el.appendChild(legend);

    var highlight = { node: null, neighbours: {} };
    var colors = themeColors();
    var graph = ForceGraph()(canvasHolder)
      .width(canvasHolder.clientWidth || el.clientWidth || 600)
      .height(local ? 280 : Math.max(420, Math.round(window.innerHeight * 0.7)))
      .nodeId("id")
      .nodeLabel(function (n) { return escapeHtml(n.label); })
      .nodeRelSize(4)
      .maxZoom(3)
      .nodeVal(function (n) { return n.id === center ? 3 : 1; })
      .nodeColor(function (n) {
        if (highlight.node && n !== highlight.node && !highlight.neighbours[n.id]) return colors.muted;
        return nodeColor(n, data.options);
      })
      .linkColor(function (l) {
        if (highlight.node && l.source !== highlight.node && l.target !== highlight.node) return colors.muted;
        return colors.link;
      })
      .linkDirectionalArrowLength(3)
      .linkDirectionalArrowRelPos(1)
      .nodeCanvasObjectMode(function () { return "after"; })
      .nodeCanvasObject(function (n, ctx, scale) {
        if (scale < 1.2 && n.id !== center && n !== highlight.node) return;
        ctx.font = LABEL_FONT_PX / scale + "px sans-serif";
        ctx.textAlign = "center";
        ctx.textBaseline = "top";
        ctx.fillStyle = colors.text;
        ctx.fillText(n.label, n.x, n.y + 5);
      })
      .onNodeHover(function (n) {
        highlight.node = n || null;
        highlight.neighbours = {};
        if (n) {
          graph.graphData().links.forEach(function (l) {
            if (l.source === n) highlight.neighbours[l.target.id] = true;
            if (l.target === n) highlight.neighbours[l.source.id] = true;
          });
        }
        canvasHolder.style.cursor = n && n.url ? "pointer" : "";
      })
      .onNodeClick(function (n) {
        if (n.url) location.assign(new URL(n.url, siteRoot).href);
      })
      .cooldownTicks(120)
      .onEngineStop(function () {
        if (!el.dataset.kbReady) {
          fitWithLabels(graph, canvasHolder, 0);
          el.dataset.kbReady = "1";
        }
      });

    function show() {
      var keep = local ? neighbourhood(data, center, depth) : null;
      var part = subgraph(data, keep);
      el.dataset.kbNodes = String(part.nodes.length);
      el.dataset.kbReady = "";
      if (local) el.querySelector(".kb-graph-depth").textContent = "depth " + depth;
      drawLegend(legend, part.nodes, data.options);
      graph.graphData(part);
    }
    if (local) {
      el.querySelector(".kb-graph-less").addEventListener("click", function () {
        if (depth > 1) { depth -= 1; show(); }
      });
      el.querySelector(".kb-graph-more").addEventListener("click", function () {
        depth += 1; show();
      });
    }
    show();
    el.kbGraph = graph;
    el.kbRecolor = function () { colors = themeColors(); graph.nodeColor(graph.nodeColor()); };
    liveGraphs.push(el);
  }

  function initGraphs(root) {
    liveGraphs = liveGraphs.filter(function (el) {
      if (el.isConnected) return true;
      if (el.kbGraph && el.kbGraph._destructor) el.kbGraph._destructor();
      return false;
    });
    var holders = root.querySelectorAll(".kb-graph:not([data-kb-started])");
    if (!holders.length || typeof ForceGraph === "undefined") return;
    holders.forEach(function (el) { el.setAttribute("data-kb-started", "1"); });
    loadGraph().then(function (data) {
      holders.forEach(function (el) { drawGraph(el, data); });
    }).catch(function (error) {
      holders.forEach(function (el) {
        el.textContent = "The graph could not be loaded: " + error.message;
      });
    });
  }

  new MutationObserver(function () {
    liveGraphs.forEach(function (el) { if (el.kbRecolor) el.kbRecolor(); });
  }).observe(document.body, { attributes: true, attributeFilter: ["data-md-color-scheme"] });

  // Link previews ---------------------------------------------------------------------------

  var previewBox = null;
  var previewCache = {};
  var previewTimer = null;

  function previewContent(url) {
    var key = url.split("#")[0];
    if (!previewCache[key]) {
      previewCache[key] = fetch(key).then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text().then(function (text) {
          var doc = new DOMParser().parseFromString(text, "text/html");
          doc.kbUrl = response.url || new URL(key, location.href).href;
          return doc;
        });
      });
    }
    return previewCache[key].then(function (doc) {
      var article = doc.querySelector("article") || doc.body;
      var hash = decodeURIComponent(url.split("#")[1] || "");
      var start = hash ? doc.getElementById(hash) : null;
      var box = document.createElement("div");
      var node = start && article.contains(start) ? start : article.firstElementChild;
      if (start && start.classList.contains("kb-block")) node = start.parentElement;
      for (var count = 0; node && count < 6; count++) {
        if (!node.matches || !node.matches(".kb-graph, .kb-backlinks, .md-source-file")) {
          box.appendChild(document.importNode(node, true));
        }
        node = node.nextElementSibling;
      }
      box.querySelectorAll("script, .kb-graph, [id]").forEach(function (child) {
        if (child.tagName === "SCRIPT" || child.classList.contains("kb-graph")) child.remove();
        else child.removeAttribute("id");
      });
      rebaseUrls(box, doc.kbUrl);
      return box;
    });
  }

  // Links and media in a preview are written relative to the previewed page, so they are made
  // absolute before the preview is shown on another page.
  function rebaseUrls(box, pageUrl) {
    [["a", "href"], ["img", "src"], ["video", "src"], ["audio", "src"], ["source", "src"],
     ["object", "data"]].forEach(function (pair) {
      box.querySelectorAll(pair[0] + "[" + pair[1] + "]").forEach(function (el) {
        var value = el.getAttribute(pair[1]);
        if (/^(data|blob|javascript):/i.test(value)) return;
        try {
          el.setAttribute(pair[1], new URL(value, pageUrl).href);
        } catch (error) {
          el.removeAttribute(pair[1]);
        }
      });
    });
  }

  function hidePreview() {
    clearTimeout(previewTimer);
    if (previewBox) previewBox.hidden = true;
  }

  function showPreview(link) {
    previewContent(link.href).then(function (box) {
      if (!previewBox) {
        previewBox = document.createElement("div");
        previewBox.className = "kb-preview md-typeset";
        document.body.appendChild(previewBox);
      }
      previewBox.textContent = "";
      previewBox.appendChild(box);
      var rect = link.getBoundingClientRect();
      previewBox.style.left = Math.max(8, Math.min(rect.left, window.innerWidth - 420)) + "px";
      previewBox.style.top = (rect.bottom + window.scrollY + 6) + "px";
      previewBox.hidden = false;
      renderMath(previewBox);
    }).catch(function () { /* no preview when the page cannot be read */ });
  }

  document.addEventListener("mouseover", function (event) {
    var link = event.target.closest && event.target.closest("a.kb-link[data-kb-note]");
    if (!link || !document.body.classList.contains("kb-previews")) return;
    clearTimeout(previewTimer);
    previewTimer = setTimeout(function () { showPreview(link); }, 350);
  });
  document.addEventListener("mouseout", function (event) {
    if (event.target.closest && event.target.closest("a.kb-link[data-kb-note]")) hidePreview();
  });

  // Page setup ------------------------------------------------------------------------------

  function setup() {
    if (document.querySelector("meta[name='kb-previews']")) document.body.classList.add("kb-previews");
    hidePreview();
    renderMath(document);
    initGraphs(document);
  }

  if (typeof document$ !== "undefined" && document$.subscribe) {
    document$.subscribe(setup);
  } else if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setup);
  } else {
    setup();
  }
})();
