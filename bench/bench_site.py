"""Time a site build with the kb plugin against a plain Material build of the same notes.

Usage: python bench/bench_site.py [--runs N] [--notes N]

Builds two vaults: a copy of the ml-notes vault (when present) and a synthetic vault of
``--notes`` notes from ``bench/synthetic_vault.py`` (the parser benchmark's generator).
Each vault is built ``--runs`` times with each configuration; the script prints the median wall time of
each and their ratio (plugin / plain). The target is a ratio of at most 1.2.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from mkdocs.commands.build import build

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic_vault import write_vault  # noqa: E402  (the core's generator, beside this file)
from mkdocs.config import load_config

ML_NOTES = Path("/work/shared/vaults/ml-notes")

_COMMON = """\
site_name: bench
theme:
  name: material
  font: false
markdown_extensions:
  - toc:
      permalink: true
  - tables
  - attr_list
  - md_in_html
  - admonition
  - pymdownx.details
  - pymdownx.superfences
  - pymdownx.arithmatex:
      generic: true
  - pymdownx.mark
  - pymdownx.tilde
  - pymdownx.tasklist:
      custom_checkbox: true
  - footnotes
  - nl2br
"""
# Both builds get the Markdown extensions the plugin would otherwise add for Obsidian syntax
# (highlights, strike-through, tasks, footnotes, line breaks), so the ratio measures the
# plugin's own work: links, embeds, backlinks, graph data, pages and sanitising.
PLAIN = _COMMON + "plugins:\n  - search\n  - tags\n"
WITH_KB = _COMMON + "plugins:\n  - search\n  - tags\n  - kb\n"


def time_build(project: Path, config: str, runs: int) -> float:
    (project / "mkdocs.yml").write_text(config, encoding="utf-8")
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        loaded = load_config(config_file=str(project / "mkdocs.yml"), site_dir=str(project / "site"))
        build(loaded)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def compare(label: str, docs: Path, runs: int) -> float:
    with tempfile.TemporaryDirectory() as temporary:
        project = Path(temporary)
        shutil.copytree(docs, project / "docs")
        time_build(project, WITH_KB, 1)  # warm-up: imports, vendored assets, file cache
        plain = time_build(project, PLAIN, runs)
        with_kb = time_build(project, WITH_KB, runs)
    ratio = with_kb / plain
    print(f"{label}: plain {plain:.2f} s, with kb {with_kb:.2f} s, ratio {ratio:.2f}x (median of {runs})")
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="builds per configuration")
    parser.add_argument("--notes", type=int, default=1000, help="notes in the synthetic vault")
    options = parser.parse_args()
    logging.getLogger("mkdocs").setLevel(logging.ERROR)

    if ML_NOTES.is_dir():
        compare("ml-notes", ML_NOTES, options.runs)
    with tempfile.TemporaryDirectory() as temporary:
        vault = Path(temporary) / "vault"
        write_vault(vault, options.notes, seed=0)
        compare(f"synthetic {options.notes} notes", vault, options.runs)


if __name__ == "__main__":
    main()
