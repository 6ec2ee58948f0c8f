"""Real runner results for the question and quiz tests, executed once per test module.

The snippets run through :class:`kb.runner.Runner` in a scratch project, and each test copies
the snippet files and the result cache into its own project. The cache key covers the code and
the snippet folder relative to the project root, so the copied results stay current.
"""

from __future__ import annotations

import shutil
from pathlib import Path

SNIPPETS = {
    "cold.py": "print('step 1')\nprint('loss 0.125')\n",
    "broken.py": "raise ValueError('bad value')\n",
    "nodep.py": "import kb_package_that_is_not_installed\n",
}


def execute_snippets(root: Path) -> Path:
    """Run every snippet of :data:`SNIPPETS` in a new project at ``root``; return ``root``."""
    from kb.runner import Runner
    from kb.snippets import read_snippet

    (root / "mkdocs.yml").write_text("site_name: scratch\n", encoding="utf-8")
    (root / "docs").mkdir()
    (root / "snippets").mkdir()
    for name, code in SNIPPETS.items():
        (root / "snippets" / name).write_text(code, encoding="utf-8")
    runner = Runner(root, trusted_dirs=[root])
    units = [read_snippet(root / "snippets" / name, root) for name in SNIPPETS]
    statuses = [result.status for result in runner.run(units)]
    assert statuses == ["passed", "failed", "missing-dependency"], statuses
    return root


def install_results(executed: Path, project: Path, *names: str) -> None:
    """Copy snippets ``names`` and every cached result from ``executed`` into ``project``."""
    (project / "snippets").mkdir(exist_ok=True)
    for name in names:
        shutil.copyfile(executed / "snippets" / name, project / "snippets" / name)
    shutil.copytree(executed / ".kb" / "cache", project / ".kb" / "cache", dirs_exist_ok=True)
