"""Time a site build with the kb plugin against a plain Material build of the same notes.

Usage: python bench/bench_site.py [--runs N] [--notes N]

Builds two vaults: a copy of the ml-notes vault (when present) and a synthetic vault of
``--notes`` notes from ``bench/synthetic_vault.py`` (the parser benchmark's generator).
Each vault is built ``--runs`` times with each configuration, alternating plain and plugin
builds so that a change in the machine's load affects both alike. The script prints the
median wall time and the median CPU time of each configuration and their ratios
(plugin / plain). The target is a ratio of at most 1.2.
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

ML_NOTES = Path(__file__).resolve().parent.parent.parent / "shared" / "vaults" / "ml-notes"

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


def time_build(project: Path, config: str) -> tuple[float, float]:
    """Build ``project`` with ``config``; return the wall and CPU seconds of the build."""
    (project / "mkdocs.yml").write_text(config, encoding="utf-8")
    start, cpu_start = time.perf_counter(), time.process_time()
    loaded = load_config(config_file=str(project / "mkdocs.yml"), site_dir=str(project / "site"))
    build(loaded)
    return time.perf_counter() - start, time.process_time() - cpu_start


def compare(label: str, docs: Path, runs: int) -> float:
    times: dict[str, list[tuple[float, float]]] = {"plain": [], "kb": []}
    with tempfile.TemporaryDirectory() as temporary:
        project = Path(temporary)
        shutil.copytree(docs, project / "docs")
        time_build(project, WITH_KB)  # warm-up: imports, vendored assets, file cache
        for _ in range(runs):
            times["plain"].append(time_build(project, PLAIN))
            times["kb"].append(time_build(project, WITH_KB))
    wall = {name: statistics.median(sample[0] for sample in samples) for name, samples in times.items()}
    cpu = {name: statistics.median(sample[1] for sample in samples) for name, samples in times.items()}
    ratio = wall["kb"] / wall["plain"]
    print(
        f"{label}: wall plain {wall['plain']:.2f} s, with kb {wall['kb']:.2f} s, ratio {ratio:.2f}x; "
        f"CPU plain {cpu['plain']:.2f} s, with kb {cpu['kb']:.2f} s, "
        f"ratio {cpu['kb'] / cpu['plain']:.2f}x (medians of {runs})"
    )
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
