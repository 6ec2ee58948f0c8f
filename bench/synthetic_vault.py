"""Write a synthetic Obsidian vault for parser benchmarks.

Notes look like study notes: front matter with tags, aliases and ``requires:`` links, headings,
paragraphs with about eight wikilinks and one Markdown link, inline tags, callouts, block ids,
and code fences and math that contain link look-alikes (``df[["a", "b"]]``, ``$[[y = k]]$``),
which a correct parser must skip. Notes sit in nested folders, and some names repeat across
folders. The same seed always writes the same vault.

Usage: python bench/synthetic_vault.py OUT --notes 2000 --seed 0
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

WORDS = (
    "gradient loss model layer weight bias vector matrix softmax attention token batch "
    "epoch sample noise score kernel feature label error optimizer schedule variance mean "
    "entropy divergence prior posterior encoder decoder residual norm dropout embedding"
).split()
TAGS = ["ml", "dl", "math/linear-algebra", "math/probability", "nlp", "cv", "exam", "todo", "review"]
FOLDERS = ["", "fundamentals", "fundamentals/math", "models", "models/transformers", "training", "evaluation", "projects/2024", "projects/2025", "papers"]


def note_names(count: int, rng: random.Random) -> list[str]:
    """Return ``count`` vault paths; about 2% of names also exist in another folder."""
    paths = []
    for index in range(count):
        name = f"{rng.choice(WORDS).title()} {rng.choice(WORDS)} {index}"
        if index % 50 == 49:
            name = Path(paths[index - 1]).stem  # the same name in another folder
        folder = FOLDERS[index % len(FOLDERS)] if index % 50 != 49 else FOLDERS[(index + 3) % len(FOLDERS)]
        path = f"{folder}/{name}.md" if folder else f"{name}.md"
        if path in paths:
            path = f"papers/dup/{name}.md"
        paths.append(path)
    return paths


def sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def wikilink(rng: random.Random, names: list[str]) -> str:
    target = Path(rng.choice(names)).stem
    form = rng.random()
    if form < 0.6:
        return f"[[{target}]]"
    if form < 0.8:
        return f"[[{target}|{rng.choice(WORDS)}]]"
    if form < 0.9:
        return f"[[{target}#{rng.choice(WORDS).title()}]]"
    if form < 0.95:
        return f"[[{target}#^b{rng.randrange(5)}]]"
    return f"[[Missing {rng.choice(WORDS)}]]"


def paragraph(rng: random.Random, names: list[str], links: int) -> str:
    parts = []
    for _ in range(links):
        parts.append(sentence(rng, rng.randint(6, 14))[:-1])
        parts.append(wikilink(rng, names) + ".")
    if rng.random() < 0.5:
        parts.append(f"#{rng.choice(TAGS)}")
    if rng.random() < 0.3:
        target = rng.choice(names).replace(" ", "%20")
        parts.append(f"See [the note]({target}).")
    return " ".join(parts)


def note_text(rng: random.Random, names: list[str], index: int) -> str:
    title = Path(names[index]).stem
    requires = ", ".join(f"'[[{Path(rng.choice(names)).stem}]]'" for _ in range(rng.randint(0, 3)))
    lines = [
        "---",
        f"tags: [{', '.join(rng.sample(TAGS, 2))}]",
        f"aliases: [{title.lower()}]",
        f"requires: [{requires}]",
        "---",
        f"# {title}",
        "",
        paragraph(rng, names, 3),
        "",
        "## " + rng.choice(WORDS).title(),
        "",
        paragraph(rng, names, 3) + " ^b0",
        "",
        "> [!note] " + sentence(rng, 3),
        "> " + paragraph(rng, names, 1),
        "",
        "```python",
        'df[["amount", "time"]] = scaler.fit_transform(df[["amount", "time"]])',
        "x = torch.tensor([[0.1, 0.9]])  # #not-a-tag",
        "```",
        "",
        "The indicator $\\sum_i [[y_i = k]]$ counts labels in $[0, 1)$, and "
        + paragraph(rng, names, 1),
        "",
        "$$",
        "L = -\\sum_k [[y = k]] \\log p_k",
        "$$",
        "",
        "- " + sentence(rng, 8) + " `[[not a link]]`",
        "- " + paragraph(rng, names, 1),
        "",
    ]
    return "\n".join(lines)


def write_vault(out: Path, notes: int, seed: int) -> list[Path]:
    """Write ``notes`` notes under ``out`` and return their paths."""
    rng = random.Random(seed)
    names = note_names(notes, rng)
    written = []
    for index, relative in enumerate(names):
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(note_text(rng, names, index), encoding="utf-8")
        written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write the vault into (created if missing)")
    parser.add_argument("--notes", type=int, default=2000, help="number of notes (default: 2000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    args = parser.parse_args()
    paths = write_vault(args.out, args.notes, args.seed)
    size = sum(path.stat().st_size for path in paths)
    print(f"wrote {len(paths)} notes, {size / 1e6:.1f} MB, to {args.out}")


if __name__ == "__main__":
    main()
