"""Install the browser libraries of the study site from npm into ``kb/assets/vendor/``.

The site must load nothing from the network, so KaTeX (math) and force-graph (graph view)
are copied into every built site. ``kb/assets/package.json`` pins their versions; this module
runs ``npm install`` there and copies the files the site loads into ``kb/assets/vendor/``
(git-ignored, like any build output). Run it once after cloning::

    python -m kb.site_assets

The MkDocs plugin runs the same step on its first build when the files are missing.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["ASSETS_DIR", "VENDOR_DIR", "VendorError", "install_vendor", "vendor_files"]

ASSETS_DIR = Path(__file__).parent / "assets"
VENDOR_DIR = ASSETS_DIR / "vendor"

# Files (relative to node_modules) copied into VENDOR_DIR, keeping their relative paths.
_VENDORED = [
    "katex/dist/katex.min.js",
    "katex/dist/katex.min.css",
    "katex/dist/fonts",
    "force-graph/dist/force-graph.min.js",
]


class VendorError(RuntimeError):
    """The vendored libraries are missing and npm could not install them."""


def vendor_files() -> list[Path]:
    """Return every vendored file, or raise :class:`VendorError` when one is missing."""
    missing = [name for name in _VENDORED if not (VENDOR_DIR / name).exists()]
    if missing:
        raise VendorError(
            f"vendored browser files missing in {VENDOR_DIR}: {', '.join(missing)}; "
            "run 'python -m kb.site_assets' (needs npm and access to the npm registry)"
        )
    files = []
    for name in _VENDORED:
        path = VENDOR_DIR / name
        files.extend(sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path])
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
    for name in _VENDORED:
        source = modules / name
        destination = VENDOR_DIR / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, destination, dirs_exist_ok=True)
        else:
            shutil.copy2(source, destination)
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
