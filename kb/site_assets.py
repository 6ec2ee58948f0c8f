"""Install the browser libraries of the study site from npm into ``kb/assets/vendor/``.

The site must load nothing from the network, so KaTeX (math) and force-graph (graph view)
are copied into every built site. ``kb/assets/package.json`` pins their versions; this module
runs ``npm install`` there and copies the files the site loads into ``kb/assets/vendor/``
(git-ignored, like any build output). Run it once after cloning::

    python -m kb.site_assets

The MkDocs plugin runs the same step on its first build when the files are missing.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["ASSETS_DIR", "VENDOR_DIR", "VendorError", "install_vendor", "vendor_files"]

ASSETS_DIR = Path(__file__).parent / "assets"
VENDOR_DIR = ASSETS_DIR / "vendor"

# Files (relative to node_modules) copied into VENDOR_DIR, keeping their relative paths. A
# folder entry copies the files in it whose names match the pattern after the colon.
# KaTeX ships each font as WOFF2, WOFF and TrueType. Every browser that runs force-graph reads
# WOFF2 and never requests the other two, so only WOFF2 is kept: a third of the files that
# every site build copies.
_VENDORED = [
    "katex/dist/katex.min.js",
    "katex/dist/contrib/auto-render.min.js",
    "katex/dist/katex.min.css",
    "katex/dist/fonts:*.woff2",
    "force-graph/dist/force-graph.min.js",
]
# The fallback font sources that katex.min.css names after each WOFF2 file.
_FONT_FALLBACK = re.compile(r',url\(fonts/[^)]+\.(?:woff|ttf)\) format\("(?:woff|truetype)"\)')


class VendorError(RuntimeError):
    """The vendored libraries are missing and npm could not install them."""


def vendor_files() -> list[Path]:
    """Return every vendored file, or raise :class:`VendorError` when one is missing."""
    missing = [name for name in _VENDORED if not (VENDOR_DIR / name.split(":")[0]).exists()]
    if missing:
        raise VendorError(
            f"vendored browser files missing in {VENDOR_DIR}: {', '.join(missing)}; "
            "run 'python -m kb.site_assets' (needs npm and access to the npm registry)"
        )
    if _FONT_FALLBACK.search((VENDOR_DIR / "katex/dist/katex.min.css").read_text(encoding="utf-8")):
        raise VendorError(
            f"vendored browser files in {VENDOR_DIR} come from an older kb; "
            "run 'python -m kb.site_assets --force'"
        )
    files = []
    for name in _VENDORED:
        folder, _, pattern = name.partition(":")
        path = VENDOR_DIR / folder
        if pattern:
            files.extend(sorted(p for p in path.glob(pattern) if p.is_file()))
        else:
            files.append(path)
    return files


def install_vendor(force: bool = False) -> list[Path]:
    """Install the npm packages if needed and copy their site files into VENDOR_DIR."""
    if not force:
        try:
            return vendor_files()
        except VendorError:
            pass
    npm = shutil.which("npm")
    if npm is None:
        raise VendorError("npm not found on PATH; install Node.js and npm, then rerun")
    result = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=ASSETS_DIR, capture_output=True, text=True, timeout=600,
    )
    if result.returncode != 0:
        raise VendorError(f"npm install failed in {ASSETS_DIR}:\n{result.stderr.strip()}")
    modules = ASSETS_DIR / "node_modules"
    if VENDOR_DIR.exists():
        shutil.rmtree(VENDOR_DIR)  # no file of an earlier version or layout stays behind
    for name in _VENDORED:
        folder, _, pattern = name.partition(":")
        source = modules / folder
        destination = VENDOR_DIR / folder
        if pattern:
            destination.mkdir(parents=True, exist_ok=True)
            for file in sorted(source.glob(pattern)):
                shutil.copy2(file, destination / file.name)
        else:
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)
    stylesheet = VENDOR_DIR / "katex/dist/katex.min.css"
    stylesheet.write_text(_FONT_FALLBACK.sub("", stylesheet.read_text(encoding="utf-8")), encoding="utf-8")
    return vendor_files()


def main() -> int:
    try:
        files = install_vendor(force="--force" in sys.argv[1:])
    except VendorError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"{len(files)} files in {VENDOR_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
