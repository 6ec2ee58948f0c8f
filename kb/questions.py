"""Open questions in the notes, their answer notes, and how far each answer has come.

Detection rule. A question is one of these, found outside front matter, code, math, HTML and
``%%`` comments, block quotes and callouts:

- a paragraph, list item or heading with a sentence of at least three words that ends in
  ``?``: the ``?`` comes right after a word, code span or closing punctuation, and before a
  space, closing punctuation or the end of the block. A sentence starts after ``.``, ``!``,
  ``?``, ``:`` or ``;`` and a space, so "Binary? Use one output." asks nothing. Emphasis does
  not matter: ``**What is a batch?**`` is a question. Links, bare URLs, tags and block ids
  are taken out first, so a ``?`` inside ``[[Why?]]`` or ``https://x.org/?q=1`` does not
  count;
- an open task, ``- [ ] ...`` (a checked task ``- [x]`` is done and never counts);
- a paragraph, list item or heading tagged ``#question`` (or ``#question/...``);
- a ``> [!question]`` callout (or ``[!help]``, ``[!faq]``) outside any other quote: its title,
  or its body when the title is left out.

Notes with an ``answers:`` property are answer notes: there only open tasks and ``#question``
tags count, because their prose asks rhetorical questions and their ``[!question]`` callout
restates the question they answer. kb's own manual, the vault folder ``kb/``, is skipped.

Each question records where it is (path and 1-based line), its text, its block id, and its
answer note: the note whose ``answers:`` property links to the question's block
(``answers: ["[[Notes#^q-id]]"]``), or else the target of a link shown as ``answer`` on the
question's lines (``[[Cold diffusion|answer]]``). Its code status comes from the runner's cached
results for the ``.py`` snippets the answer note embeds (``![[ddpm.py]]``): ``passed`` when all
passed, ``failed`` when one failed, ``not run`` when one has no result for its current code,
``no code`` when the answer embeds none. Its own-words status comes from
:mod:`kb.own_words`.
"""

from __future__ import annotations

import bisect
import datetime as dt
import html
import re
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kb.inline_html import inline_html, plain_html
from kb.model import Callout, Note, Problem
from kb.own_words import SECTION_TITLE, OwnWords, read_own_words, section_lines
from kb.parse import blank_spans, split_wikilink, verbatim_spans
from kb.project import Project

__all__ = [
    "Question",
    "SnippetStatus",
    "answers_argument",
    "check_problems",
    "collect_questions",
    "detect_questions",
    "progress_markdown",
    "questions_page_markdown",
]

SKIPPED_FOLDERS = ("kb",)
"""Vault folders never searched for questions: kb's own manual pages."""
QUESTION_TAG = "question"
QUESTION_CALLOUTS = frozenset({"question", "help", "faq"})
"""Callout types that ask a question: Obsidian's ``question`` and its aliases."""
ANSWER_DISPLAY = "answer"

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_QUOTE = re.compile(r"^[ \t]{0,3}>")
_HEADING = re.compile(r"^[ ]{0,3}(#{1,6})(?:[ \t]+|$)")
_LIST_ITEM = re.compile(r"^(?P<indent>[ \t]*)(?P<bullet>[-+*]|\d{1,9}[.)])(?:[ \t]+|$)")
_TASK = re.compile(r"^[ \t]*(?:[-+*]|\d{1,9}[.)])[ \t]+\[(?P<state>.)\](?:[ \t]|$)")
_RULE = re.compile(r"^[ ]{0,3}(?:(?:-[ \t]*){3,}|(?:\*[ \t]*){3,}|(?:_[ \t]*){3,})$")
_COMMENT = re.compile(r"<!--.*?-->|%%.*?%%", re.DOTALL)
_QUOTE_PREFIXES = re.compile(r"^[ \t]{0,3}(?:>[ \t]?)+", re.MULTILINE)
_CALLOUT_MARKER = re.compile(r"[ \t]{0,3}>[ \t]?\[![^\]\n]+\][+-]?")
# Bare URLs and footnote references are no links in kb's parse, so the rule finds them here.
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://\S+|\bwww\.\S+")
_FOOTNOTE_REF = re.compile(r"\[\^[^\]\s]+\](?!:)")
# A "?" that ends a sentence: right after a word or closing punctuation, and followed by
# space, closing punctuation or the end.
_QUESTION_MARK = re.compile(r"(?<=[\w)\]\"'*_»”’])\?+(?=[\s)\]\"'*_»”’.,;:!]|$)")
_SENTENCE_END = re.compile(r"[.!?:;…]+[*_\"'”’»)\]]*(?=\s)")
_WORD = re.compile(r"\w+(?:['’-]\w+)*")
MIN_QUESTION_WORDS = 3
"""Words a sentence needs before its ``?`` to count as a question."""
SUGGESTED_WORDS = 6
"""Words of question text that ``kb check`` suggests for ``kb new --answers`` at the least."""
_EMPHASIS = re.compile(r"\*+|~~|==|(?<!\w)_+|_+(?!\w)")


# Detection -----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Block:
    kind: str
    """``heading``, ``item`` or ``paragraph``."""
    first: int
    """1-based first and last line."""
    last: int


def _blocks(masked_lines: list[str]) -> list[_Block]:
    """Group lines into headings, list items and paragraphs; quotes, tables and rules are left out."""
    blocks: list[_Block] = []
    current: _Block | None = None
    in_quote = False
    for number, line in enumerate(masked_lines, 1):
        if not line.strip():
            current = None
            in_quote = False
            continue
        if not in_quote and line[:1].isalpha():
            # A line that starts with a letter is no quote, heading, table, rule or list item.
            if current is None:
                current = _Block("paragraph", number, number)
                blocks.append(current)
            else:
                current.last = number
            continue
        if in_quote or _QUOTE.match(line):
            # A quote lasts until a blank line, lazy continuation lines included.
            in_quote = True
            current = None
            continue
        if _HEADING.match(line):
            blocks.append(_Block("heading", number, number))
            current = None
            continue
        if line.lstrip().startswith("|") or _RULE.match(line):
            current = None
            continue
        if _LIST_ITEM.match(line):
            current = _Block("item", number, number)
            blocks.append(current)
            continue
        if current is None:
            current = _Block("paragraph", number, number)
            blocks.append(current)
        else:
            current.last = number
    return blocks


@dataclass(slots=True)
class _Markup:
    """A link, inline tag, block id or footnote reference of the note body, from the parse."""

    start: int
    end: int
    kind: str
    """``link``, ``tag``, ``block id`` or ``footnote``."""
    replacement: str
    """Text that replaces it in the displayed question: a link's text, a tag as written, or ``""``."""


def _is_question_tag(name: str) -> bool:
    return name == QUESTION_TAG or name.startswith(QUESTION_TAG + "/")


def _link_text(display: str | None, fallback: str) -> str:
    """Return the text a link shows in a question; an answer link shows nothing."""
    label = (display if display is not None else fallback).strip()
    return "" if label.casefold() == ANSWER_DISPLAY else label


def _markup(note: Note) -> list[_Markup]:
    """Return the note's links, inline tags and block ids in text order, read from its parse."""
    found: list[_Markup] = []
    for link in note.links:
        if link.syntax == "property":
            continue
        if link.syntax == "markdown":
            displayed = _link_text(link.display, "")
        else:
            inner = link.raw[link.raw.index("[[") + 2 : -2]
            path, _subpath, display = split_wikilink(inner)
            # "[[#Heading]]" shows its heading; an image size shows no text.
            displayed = _link_text(None if link.size else display, path or inner.partition("|")[0])
        found.append(_Markup(link.start, link.end, "link", displayed))
    for external in note.external_links:
        found.append(
            _Markup(external.start, external.end, "link", _link_text(external.display, ""))
        )
    for tag in note.tags:
        if tag.origin == "inline":
            displayed = "" if _is_question_tag(tag.name) else note.text[tag.start : tag.end]
            found.append(_Markup(tag.start, tag.end, "tag", displayed))
    for block in note.blocks:
        if block.start >= 0:
            found.append(_Markup(block.start, block.end, "block id", ""))
    found.sort(key=lambda item: item.start)
    return found


def _block_markup(
    markup: list[_Markup], starts: list[int], masked: str, start: int, end: int
) -> list[_Markup]:
    """Return the markup between offsets ``start`` and ``end``, leaving out what lies inside a
    comment, and the footnote references there."""
    found = []
    for item in markup[bisect.bisect_left(starts, start) :]:
        if item.start >= end:
            break
        if item.end <= end and masked[item.start] != " ":
            found.append(item)
    if "[^" in masked[start:end]:
        found += [
            _Markup(*match.span(), "footnote", "")
            for match in _FOOTNOTE_REF.finditer(masked, start, end)
        ]
        found.sort(key=lambda item: item.start)
    return found


def asks_question(text: str) -> bool:
    """Return whether ``text`` has a sentence of at least three words ending in ``?``.

    Links, tags and block ids must already be taken out (see _rule_text), and code spans and
    math replaced by other non-space characters, so that ``Why is `x`?`` still ends in a
    question mark right after its last word. The sentence starts after the last ``.``, ``!``,
    ``?``, ``:`` or ``;`` followed by a space, so the one-word fragment in "Binary? Use one
    output." does not count.
    """
    if "?" not in text:
        return False  # the common case, decided without the passes below
    stripped = _URL.sub(" link", text)
    for mark in _QUESTION_MARK.finditer(stripped):
        sentence = _SENTENCE_END.split(stripped[: mark.start()])[-1]
        if len(_WORD.findall(sentence)) >= MIN_QUESTION_WORDS:
            return True
    return False


def _fill(text: str, masked: str) -> str:
    """Put "x" where ``masked`` blanked a character of ``text`` that is not white space, so
    that ``Why is `x`?`` still ends in a word before its question mark."""
    if text == masked:
        return masked
    return "".join(
        "x" if blanked == " " and not original.isspace() else blanked
        for original, blanked in zip(text, masked)
    )


def _rule_text(text: str, masked: str, start: int, end: int, markup: list[_Markup]) -> str:
    """Return ``text[start:end]`` as the question rule reads it: each link becomes one word
    with no ``?``, tags, block ids and footnote references become spaces, and code, math and
    comments become "x"."""
    parts: list[str] = []
    last = start
    for item in markup:
        parts.append(_fill(text[last : item.start], masked[last : item.start]))
        width = item.end - item.start
        parts.append(" " + "x" * (width - 1) if item.kind == "link" else " " * width)
        last = item.end
    parts.append(_fill(text[last:end], masked[last:end]))
    return "".join(parts)


def _display_text(text: str, start: int, end: int, markup: list[_Markup], kind: str) -> str:
    """Render ``text[start:end]`` as a reader sees it: links as their text, no answer links,
    ``#question`` tags, trailing tags, block ids, footnote references or comments."""
    # Tags at the end of the block label it; they are no part of the question.
    tail = end
    hidden: set[int] = set()
    for item in reversed(markup):
        if _COMMENT.sub("", text[item.end : tail]).strip():
            break
        if item.replacement and item.kind != "tag":
            break
        hidden.add(item.start)
        tail = item.start

    parts: list[str] = []
    last = start
    for item in markup:
        parts.append(text[last : item.start])
        parts.append("" if item.start in hidden else item.replacement)
        last = item.end
    parts.append(text[last:end])
    displayed = _COMMENT.sub(" ", "".join(parts))

    if kind == "heading":
        displayed = _HEADING.sub("", displayed.lstrip())
        displayed = re.sub(r"[ \t]+#+[ \t]*$", "", displayed)
    elif kind == "item":
        displayed = _TASK.sub("", displayed) if _TASK.match(displayed) else _LIST_ITEM.sub("", displayed)
    elif kind == "quote":
        displayed = _QUOTE_PREFIXES.sub("", displayed)
    return " ".join(displayed.split())


@dataclass(slots=True)
class SnippetStatus:
    """Last result of one snippet an answer note embeds."""

    path: str
    """Vault path, e.g. ``snippets/ddpm.py``."""
    status: str
    """``passed``, ``failed``, ``not run`` or ``missing`` (embedded but no such file)."""
    line: int
    """Line of the embed in the answer note."""
    detail: str | None = None
    notebook: str | None = None
    """Executed notebook with the outputs of the last run, when the runner kept one."""


@dataclass(slots=True)
class Question:
    path: str
    line: int
    text: str
    kind: str
    """``question`` (a sentence ending in ``?``), ``task`` (open task), ``tag`` (``#question``)
    or ``callout`` (a ``> [!question]`` callout)."""
    last_line: int = 0
    block_id: str | None = None
    answer: str | None = None
    """Vault path of the answer note, when it exists."""
    answer_link: str | None = None
    """Source of the answer: ``answers property`` or ``answer link``."""
    answer_missing: str | None = None
    """Note an answer link points to that does not exist yet."""
    answer_line: int | None = None
    """Line of the answer link on the question, when there is one."""
    code: str = "no code"
    snippets: list[SnippetStatus] = field(default_factory=list)
    own_words: OwnWords = field(default_factory=lambda: OwnWords("missing"))

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def key(self) -> str:
        """Stable identity across edits: the block id when there is one, else the text."""
        return f"{self.path}#^{self.block_id}" if self.block_id else f"{self.path}#{self.text}"

    @property
    def state(self) -> str:
        """``open`` (no answer note), ``needs code``, ``needs own words`` or ``done``."""
        if self.answer is None:
            return "open"
        if self.code != "passed":
            return "needs code"
        if self.own_words.state != "written":
            return "needs own words"
        return "done"

    def record(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = self.state
        data["key"] = self.key
        return data


def detect_questions(note: Note) -> list[Question]:
    """Find the questions of one note (see the module docstring for the rule)."""
    if note.folder.split("/")[0] in SKIPPED_FOLDERS:
        return []
    answer_note = "answers" in note.frontmatter
    # Code, math and comments are blanked for the block rule, and filled with "x" for the
    # question rule (see _rule_text).
    masked = blank_spans(note.text, verbatim_spans(note))
    if "%%" in masked or "<!--" in masked:
        masked = blank_spans(masked, [match.span() for match in _COMMENT.finditer(masked)])
    masked_lines = _LINE_BREAK.split(masked)
    line_starts = [0] + [match.end() for match in _LINE_BREAK.finditer(masked)]
    # By line number: whether the line has a "?" outside code, math and comments.
    question_mark = [False] + ["?" in line for line in masked_lines]
    tagged = {tag.line for tag in note.tags if tag.origin == "inline" and _is_question_tag(tag.name)}
    markup = _markup(note)
    markup_starts = [item.start for item in markup]

    questions: list[Question] = []
    for block in _blocks(masked_lines):
        if block.first < note.body_line:
            continue
        task = _TASK.match(masked_lines[block.first - 1]) if block.kind == "item" else None
        if task and task.group("state") != " ":
            continue  # a checked task is done
        if tagged and any(number in tagged for number in range(block.first, block.last + 1)):
            kind = "tag"
        elif task:
            kind = "task"
        elif answer_note or not any(question_mark[block.first : block.last + 1]):
            continue
        else:
            kind = "question"
        start = line_starts[block.first - 1]
        end = line_starts[block.last - 1] + len(masked_lines[block.last - 1])
        block_markup = _block_markup(markup, markup_starts, masked, start, end)
        if kind == "question" and not asks_question(
            _rule_text(note.text, masked, start, end, block_markup)
        ):
            continue
        block_id = next(
            (b.id for b in note.blocks if block.first <= b.line <= block.last), None
        )
        displayed = _display_text(note.text, start, end, block_markup, block.kind)
        questions.append(Question(note.path, block.first, displayed, kind, block.last, block_id))

    if not answer_note and note.callouts:
        text_lines = _LINE_BREAK.split(note.text)
        for callout in note.callouts:
            question = _callout_question(
                note, callout, masked, masked_lines, text_lines, line_starts, markup, markup_starts
            )
            if question is not None:
                questions.append(question)
        questions.sort(key=lambda question: question.line)
    return questions


def _callout_question(
    note: Note, callout: Callout, masked: str, masked_lines: list[str], text_lines: list[str],
    line_starts: list[int], markup: list[_Markup], markup_starts: list[int],
) -> Question | None:
    """Return the question that a ``> [!question]`` callout asks, or None for other callouts.

    The question is the callout's title, or its body when the title is left out. The callout
    runs to the next blank line, as a quote does.
    """
    if callout.type not in QUESTION_CALLOUTS or callout.depth != 1:
        return None
    # Read the extent from the text: math or code in the callout is blank in ``masked_lines``.
    last = callout.line
    while last < len(text_lines) and text_lines[last].strip():
        last += 1
    first_line = masked_lines[callout.line - 1]
    marker = _CALLOUT_MARKER.match(first_line)
    if marker is None:
        return None
    title_start = line_starts[callout.line - 1] + marker.end()
    title_end = line_starts[callout.line - 1] + len(first_line)
    if masked[title_start:title_end].strip():
        start, end = title_start, title_end
    elif last > callout.line:
        start, end = line_starts[callout.line], line_starts[last - 1] + len(masked_lines[last - 1])
    else:
        return None  # a question callout with neither title nor body asks nothing

    displayed = _display_text(
        note.text, start, end, _block_markup(markup, markup_starts, masked, start, end), "quote"
    )
    if not displayed:
        return None
    block_id = next((b.id for b in note.blocks if callout.line <= b.line <= last), None)
    if block_id is None:
        # Obsidian's help puts the id of a callout on a line of its own after it.
        block_id = next(
            (b.id for b in note.blocks
             if callout.line <= b.end_line <= last < b.line
             and not any(line.strip() for line in text_lines[last : b.line - 1])),
            None,
        )
    return Question(note.path, callout.line, displayed, "callout", last, block_id)


# Answers and their status ------------------------------------------------------------------


def _answers_index(project: Project) -> dict[tuple[str, str], str]:
    """Map (question note, block id) to the answer note whose ``answers:`` property links it."""
    index: dict[tuple[str, str], str] = {}
    vault = project.vault
    for path in sorted(vault.notes):
        for link in vault.notes[path].links:
            if link.property == "answers" and link.target and link.block:
                index.setdefault((link.target, link.block), path)
    return index


def _answer_link(note: Note, question: Question):
    for link in note.links:
        if link.syntax == "property" or not (question.line <= link.line <= question.last_line):
            continue
        if (link.display or "").strip().casefold() == ANSWER_DISPLAY:
            return link
    return None


def _file_modified(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return dt.date.fromtimestamp(path.stat().st_mtime).isoformat()
    except OSError:
        return None


def _snippet_statuses(project: Project, answer: Note) -> list[SnippetStatus]:
    vault = project.vault
    embeds = [
        link for link in answer.links
        if link.kind == "embed" and (link.target or link.target_text).lower().endswith(".py")
    ]
    if not embeds:
        return []
    try:
        from kb.cli_run import cache_dir_for
        from kb.runner import Runner
        from kb.snippets import SnippetError, read_snippet
    except ImportError as error:
        return [SnippetStatus(link.target or link.target_text, "not run", link.line,
                              f"the runner is not available ({error})") for link in embeds]

    runner = Runner(project.root, cache_dir=cache_dir_for(project),
                    trusted_dirs=[project.snippets_dir, project.vault_dir])
    statuses: list[SnippetStatus] = []
    for link in embeds:
        if link.target is None or link.target not in vault.files:
            statuses.append(SnippetStatus(link.target_text, "missing", link.line,
                                          f"no snippet named '{link.target_text}'"))
            continue
        try:
            unit = read_snippet(vault.files[link.target], project.root)
            result = runner.result_for(unit)
        except (SnippetError, OSError, ValueError) as error:
            statuses.append(SnippetStatus(link.target, "failed", link.line, str(error)))
            continue
        if result is None:
            statuses.append(SnippetStatus(link.target, "not run", link.line,
                                          "no result for its current code; run kb run"))
        elif result.status == "passed":
            notebook = str(result.notebook) if result.notebook else None
            statuses.append(SnippetStatus(link.target, "passed", link.line, notebook=notebook))
        elif result.status == "skipped":
            statuses.append(SnippetStatus(link.target, "not run", link.line, result.error))
        else:
            statuses.append(SnippetStatus(link.target, "failed", link.line,
                                          f"{result.status}: {result.error}"))
    return statuses


def _code_status(snippets: list[SnippetStatus]) -> str:
    present = [snippet for snippet in snippets if snippet.status != "missing"]
    if not present:
        return "no code"
    if any(snippet.status == "failed" for snippet in present):
        return "failed"
    if any(snippet.status == "not run" for snippet in present):
        return "not run"
    return "passed"


def collect_questions(project: Project) -> list[Question]:
    """Find every question of the vault with its answer note, code and own-words status."""
    vault = project.vault
    answers = _answers_index(project)
    questions: list[Question] = []
    answer_cache: dict[str, tuple[list[SnippetStatus], OwnWords]] = {}
    for path in sorted(vault.notes):
        note = vault.notes[path]
        for question in detect_questions(note):
            link = _answer_link(note, question)
            if link is not None:
                question.answer_line = link.line
            answer_path = answers.get((path, question.block_id)) if question.block_id else None
            if answer_path is not None:
                question.answer, question.answer_link = answer_path, "answers property"
            elif link is not None and link.target in vault.notes:
                question.answer, question.answer_link = link.target, "answer link"
            elif link is not None:
                question.answer_link = "answer link"
                question.answer_missing = link.would_create or link.target or link.target_text
            if question.answer is not None:
                if question.answer not in answer_cache:
                    answer = vault.notes[question.answer]
                    modified = _file_modified(vault.files.get(question.answer))
                    answer_cache[question.answer] = (
                        _snippet_statuses(project, answer), read_own_words(answer.text, modified)
                    )
                question.snippets, question.own_words = answer_cache[question.answer]
                question.code = _code_status(question.snippets)
            questions.append(question)
    return questions


# kb check ----------------------------------------------------------------------------------


def check_problems(project: Project, args: Any = None) -> list[Problem]:
    """Problems for ``kb check``: unanswered questions, answers without passing code, own words.

    An unanswered question is an ``error`` in the project's own vault. It is ``info`` in a
    foreign vault, whose prose was not written with kb's question rule in mind.
    ``args.questions`` (``error``, ``warning``, ``info`` or ``off``) overrides both, and
    ``off`` leaves these problems out. A missing explanation is ``info``, or an ``error``
    when ``args.require_own_words`` is set.
    """
    require_own_words = bool(getattr(args, "require_own_words", False))
    unanswered = getattr(args, "questions", None) or ("info" if project.foreign else "error")
    problems: list[Problem] = []
    vault = project.vault
    questions = collect_questions(project)
    for question in questions:
        short = _shorten(question.text, 60)
        if question.answer is None and unanswered == "off":
            continue
        if question.answer is None:
            if question.answer_missing:
                message = (f"question '{short}' links to the answer note '{question.answer_missing}', "
                           "which does not exist; create it with kb new")
            else:
                message = (f"question '{short}' has no answer note; create one with "
                           f"kb new \"TOPIC\" --answers {shlex.quote(answers_argument(question, questions))}")
            problems.append(Problem(question.path, question.line, unanswered, "question-unanswered", message))
            continue
        answer = vault.notes[question.answer]
        code_line = next((h.line for h in answer.headings if h.text.strip().casefold() == "code"), None)
        if not question.snippets:
            # Point at the '## Code' heading, else at the answers: property, else at the body.
            answers_line = next(
                (link.line for link in answer.links if link.property == "answers"), None
            )
            # A vault that is not the project's own has no snippets/ mounted beside it, so its
            # snippets must be files of the vault itself.
            snippets_folder = (
                f"{project.vault_dir.resolve() / 'snippets'}/" if project.foreign else "snippets/"
            )
            problems.append(Problem(
                question.answer, code_line or answers_line or answer.body_line, "error",
                "answer-without-code",
                f"answer to '{short}' embeds no runnable snippet; add one under '## Code' "
                f"as ![[name.py]] and put name.py in {snippets_folder}",
            ))
        for snippet in question.snippets:
            if snippet.status == "failed":
                problems.append(Problem(
                    question.answer, snippet.line, "error", "snippet-failed",
                    f"snippet {snippet.path} failed ({snippet.detail}); fix it and run kb run",
                ))
            elif snippet.status == "missing":
                problems.append(Problem(
                    question.answer, snippet.line, "error", "answer-without-code",
                    f"embedded snippet '{snippet.path}' does not exist; add it to snippets/ or "
                    "fix the embed",
                ))
            elif snippet.status == "not run":
                problems.append(Problem(
                    question.answer, snippet.line, "info", "snippet-not-run",
                    f"snippet {snippet.path} has no result yet ({snippet.detail})",
                ))
        if question.own_words.state != "written":
            where = "has no '## In my own words' section" if question.own_words.state == "missing" \
                else "has no explanation in your own words yet"
            problems.append(Problem(
                question.answer, question.own_words.line,
                "error" if require_own_words else "info", "own-words-missing",
                f"answer to '{short}' {where}; write one with kb explain \"{Path(question.answer).stem}\"",
            ))
    for answer in sorted({question.answer for question in questions if question.answer}):
        sections = section_lines(vault.notes[answer].text)
        for line in sections[1:]:
            problems.append(Problem(
                answer, line, "warning", "own-words-duplicate",
                f"a second '## {SECTION_TITLE}' section (the first is at line {sections[0]}); "
                "kb reads and writes only the first, so merge them into one",
            ))
    seen: set[tuple[str, int | None, str, str]] = set()
    unique = []
    for problem in problems:
        identity = (problem.path, problem.line, problem.code, problem.message)
        if identity not in seen:
            seen.add(identity)
            unique.append(problem)
    return unique


def plain_text(text: str) -> str:
    """Return question text without emphasis, code and highlight markers, spaces collapsed."""
    text = _EMPHASIS.sub("", text.replace("`", ""))
    return " ".join(text.split())


def matches_text(question: Question, query: str) -> bool:
    """Return whether ``query`` is part of the question's text, with or without markup."""
    wanted = " ".join(query.split()).casefold()
    return bool(wanted) and (wanted in question.text.casefold()
                             or wanted in plain_text(question.text).casefold())


def answers_argument(question: Question, questions: list[Question]) -> str:
    """Return the shortest ``kb new --answers`` argument that names only ``question``.

    That is its block id when it has one, else the first words of its plain text (at least
    :data:`SUGGESTED_WORDS`, more until no other question contains them), else ``PATH:LINE``.
    """
    if question.block_id:
        return question.block_id
    words = plain_text(question.text).split()
    for count in range(min(SUGGESTED_WORDS, len(words)), len(words) + 1):
        query = " ".join(words[:count])
        if not any(other is not question and matches_text(other, query) for other in questions):
            return query
    return str(question)


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


# Site pages ---------------------------------------------------------------------------------

# Emphasis and code spans in a question keep their formatting on the site; brackets, pipes and
# "#" are escaped so question text never becomes a link, a table cell break or a tag.
_MARKDOWN_SPECIAL = re.compile(r"([\[\]|#])")


def escape_text(text: str) -> str:
    """Escape HTML, and the Markdown link, table and tag characters, in question text."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def _badge(kind: str, label: str, value: str) -> str:
    css = re.sub(r"[^a-z]+", "-", value.lower()).strip("-")
    return f'<span class="kb-badge kb-badge-{kind} kb-badge-{css}">{label}: {html.escape(value)}</span>'


def _note_target(path: str) -> str:
    return path[:-3] if path.lower().endswith(".md") else path


def _counts(questions: list[Question]) -> tuple[int, int, int]:
    passing = sum(question.code == "passed" for question in questions)
    explained = sum(question.own_words.state == "written" for question in questions)
    return passing, explained, len(questions)


def progress_markdown(project: Project, questions: list[Question] | None = None) -> str:
    """Return one line of progress over all questions of the vault."""
    questions = collect_questions(project) if questions is None else questions
    passing, explained, total = _counts(questions)
    return (f"Answered with passing code {passing} of {total}, "
            f"explained in own words {explained} of {total}.")


def questions_page_markdown(project: Project) -> str:
    """Markdown of the questions page: every question by source note, with status badges.

    Links are wikilinks (``[[Cold diffusion#In my own words|...]]``) for the site plugin to
    resolve. Each note's questions are an HTML list with one item per line, which the site
    plugin keeps out of Python-Markdown (see ``KbPlugin._stash_lists``).
    """
    questions = collect_questions(project)
    out = ["# Questions", "", progress_markdown(project, questions), ""]
    if not questions:
        out += ["No questions found. Tag one with `#question`, end a sentence with `?`, or "
                "write an open task `- [ ]`.", ""]
    by_note: dict[str, list[Question]] = {}
    for question in questions:
        by_note.setdefault(question.path, []).append(question)
    for path, group in by_note.items():
        target = _note_target(path)
        out += [f"## {escape_text(Path(target).name)}", "", f"From [[{target}]]", ""]
        out.append('<ul class="kb-questions">')
        note = project.vault.notes.get(path)
        for question in group:
            fragment = _question_fragment(note, question)
            link_target = f"{target}#{fragment}" if fragment else target
            anchor = f"[[{link_target}|line {question.line}]]"
            out.append(
                f"<li><strong>{inline_html(question.text)}</strong> ({anchor})"
                f"<ul><li>{_answer_line(question)}</li></ul></li>"
            )
        out += ["</ul>", ""]
    return "\n".join(out).rstrip("\n") + "\n"


# A heading that contains one of these cannot be named in a wikilink.
_NOT_IN_LINK = ("#", "|", "[[", "]]", "^")


def _question_fragment(note: Note | None, question: Question) -> str:
    """Return the wikilink fragment that lands nearest to the question: its block id, else the
    last heading above it, else nothing (the top of the note)."""
    if question.block_id:
        return f"^{question.block_id}"
    heading = None
    for candidate in note.headings if note is not None else []:
        if candidate.line > question.line:
            break
        if candidate.text and not any(mark in candidate.text for mark in _NOT_IN_LINK):
            heading = candidate
    return heading.text if heading is not None else ""


def _answer_line(question: Question) -> str:
    if question.answer is None:
        hint = f" (the link points to '{plain_html(question.answer_missing)}', not written yet)" \
            if question.answer_missing else ""
        return f"{_badge('answer', 'answer', 'open')} no answer note yet{hint}"
    answer = _note_target(question.answer)
    words = question.own_words
    own = "written" if words.state == "written" else "not written"
    detail = f" ({words.words} words, {words.date})" if words.state == "written" and words.date else ""
    parts = [
        f"answer: [[{answer}|{Path(answer).name}]]",
        f"{_badge('code', 'code', question.code)} [[{answer}#Code|code]]",
        f"{_badge('own-words', 'own words', own)}{detail} [[{answer}#In my own words|own words]]",
    ]
    return " · ".join(parts)
