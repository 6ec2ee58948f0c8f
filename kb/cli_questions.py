"""``kb questions``, ``kb new``, ``kb explain`` and ``kb quiz``: questions to answers to own words.

kb never writes an explanation for the person: ``kb explain`` and ``kb quiz`` only store the
text the person types, and ``kb new`` leaves the own-words section as a prompt.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TextIO

from kb.own_words import (
    ConcurrentChangeError,
    ExplanationError,
    NoteSnapshot,
    SECTION_TITLE,
    check_editable,
    read_own_words,
    save_explanation,
    split_lines,
    write_atomically,
)
from kb.cli import plural
from kb.cli_run import cache_dir_for
from kb.project import Project
from kb.questions import Question, collect_questions, matches_text, plain_text
from kb.quiz import QuizState, pick_question, quiz_path

__all__ = ["add_parser"]

QUESTION_WIDTH = 60
"""Characters of question text shown in the table; ``--format json`` has the full text."""
END_OF_INPUT = "."
"""A line with only this ends an explanation typed at the quiz."""
QUESTION_STATES = """\
states, in the order a question moves through them:
  open             no answer note yet (kb new "TOPIC" --answers QUESTION creates one)
  needs code       an answer note exists, but its snippets are missing, failed or not run
  needs own words  the code passes, but the note has no explanation in your own words
  done             passing code and your own explanation
"""
_EDITOR_CUT = "<!-- kb: write your explanation above this line"
_FORBIDDEN_NAME = re.compile(r'[\[\]#^|\\:*"<>?]')


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    questions = subparsers.add_parser(
        "questions", help="list the questions of the notes with their answer, code and own-words status",
        description="A question is a sentence of three or more words ending in '?', an open "
        "task '- [ ]', or anything tagged #question, outside code, math and quotes; or a "
        "'> [!question]' callout (also [!help] and [!faq]).",
        epilog=QUESTION_STATES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_vault_option(questions)
    questions.add_argument("--open", action="store_true",
                           help="only questions not yet done: states open, needs code and needs "
                           "own words")
    questions.add_argument("--format", choices=("table", "json"), default="table",
                           help="output format (default: table)")
    questions.set_defaults(handler=command_questions)

    new = subparsers.add_parser(
        "new", help="create an answer note from the template",
        description="Create TOPIC.md in the vault with the question, an own-words prompt, a "
        "reference-explanation stub and a snippet placeholder. Never overwrites a note.",
    )
    _add_vault_option(new)
    new.add_argument("topic", help="name of the new note, e.g. \"Cold diffusion\" (may include a folder)")
    new.add_argument("--answers", metavar="QUESTION",
                     help="block id (q-cold-diffusion or ^q-cold-diffusion), PATH:LINE or text "
                     "of the question this note answers, as kb check suggests; adds "
                     "[[TOPIC|answer]] to the question unless it has an answer link, and a block "
                     "id unless it has one")
    new.set_defaults(handler=command_new)

    explain = subparsers.add_parser(
        "explain", help="write or replace your own explanation in an answer note",
        description=f"Replace the '{SECTION_TITLE}' explanation of TOPIC with your text. The "
        "previous explanation stays in a folded 'Earlier explanation (DATE)' callout. Without "
        "--from, opens $VISUAL or $EDITOR on a temporary file.",
    )
    _add_vault_option(explain)
    explain.add_argument("topic", help="answer note: name, path or alias")
    explain.add_argument("--from", dest="source", metavar="FILE",
                         help="read the explanation from FILE, or from standard input with '-'")
    explain.add_argument("--force", action="store_true",
                         help="write into a note that is not an answer note (no answers: "
                         f"property, no '{SECTION_TITLE}' section, no question linking to it)")
    explain.set_defaults(handler=command_explain)

    quiz = subparsers.add_parser(
        "quiz", help="recall: explain a question from memory, on a spaced schedule",
        description="Ask one question (never explained first, then the longest ago), read your "
        f"explanation from the terminal or standard input (end with a line '{END_OF_INPUT}' or "
        "Ctrl-D), save it as kb explain does, then show where the reference answer and the "
        "code's output are. The schedule lives in .kb/quiz.json.",
    )
    _add_vault_option(quiz)
    quiz.add_argument("--dry-run", action="store_true",
                      help="show which question would be asked; change nothing")
    quiz.set_defaults(handler=command_quiz)

    check = subparsers.choices.get("check")
    if check is not None:
        check.add_argument("--questions", choices=("error", "warning", "info", "off"),
                           default=None,
                           help="severity of a question with no answer note, or off to leave "
                           "them out (default: error in the project's own vault, info in a "
                           "vault passed with --vault from elsewhere)")
        check.add_argument("--require-own-words", action="store_true",
                           help="report an answer without an explanation in your own words as "
                           "an error (default: information only)")


def _add_vault_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--vault", type=Path, default=None,
                        help="vault folder (default: docs_dir of the nearest mkdocs.yml)")


def _error(message: str) -> int:
    print(f"kb: error: {message}", file=sys.stderr)
    return 1


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


# kb questions ---------------------------------------------------------------------------------


def _own_words_label(question: Question) -> str:
    words = question.own_words
    if words.state != "written":
        return words.state
    return f"{words.words} words, {words.date}" if words.date else f"{words.words} words"


def command_questions(args: argparse.Namespace) -> int:
    project = Project.discover(vault=args.vault)
    questions = collect_questions(project)
    selected = [question for question in questions if not args.open or question.state != "done"]
    if args.format == "json":
        json.dump([question.record() for question in selected], sys.stdout, indent=2, ensure_ascii=False)
        print()
        return 0

    rows = [("WHERE", "STATE", "CODE", "OWN WORDS", "QUESTION", "ANSWER")]
    for question in selected:
        if question.answer is not None:
            answer = question.answer
        elif question.answer_missing:
            answer = f"{question.answer_missing} (not created)"
        else:
            answer = "(none)"
        code = question.code if question.answer is not None else "-"
        own = _own_words_label(question) if question.answer is not None else "-"
        rows.append((str(question), question.state, code, own,
                     _shorten(question.text, QUESTION_WIDTH), answer))
    widths = [max(len(row[column]) for row in rows) for column in range(5)]
    for row in rows:
        cells = [row[column].ljust(widths[column]) for column in range(5)]
        print("  ".join(cells + [row[5]]).rstrip())
    print(_questions_footer(selected, hidden=len(questions) - len(selected)), file=sys.stderr)
    return 0


STATES = ("open", "needs code", "needs own words", "done")


def _questions_footer(shown: list[Question], hidden: int) -> str:
    """Count the questions of the table by state, with the code and own-words totals."""
    by_state = ", ".join(
        f"{sum(question.state == state for question in shown)} {state}" for state in STATES
        if state != "done" or not hidden
    )
    passing = sum(question.code == "passed" for question in shown)
    explained = sum(question.own_words.state == "written" for question in shown)
    not_shown = f" ({hidden} done, not shown)" if hidden else ""
    return (f"{plural(len(shown), 'question')}: {by_state}{not_shown}. "
            f"{passing} with passing code, {explained} explained in own words.")


# kb new ---------------------------------------------------------------------------------------


def _find_question(questions: list[Question], query: str) -> Question:
    """Find the question named by a block id, ``PATH:LINE``, or part of its text.

    Text matches with or without emphasis and code markers, so the suggestion of ``kb check``
    always works.
    """
    block = query.strip().lstrip("^")
    by_id = [question for question in questions if question.block_id == block]
    if by_id:
        return by_id[0]
    by_place = [question for question in questions if str(question) == query.strip()]
    if by_place:
        return by_place[0]
    expected_text = " ".join(query.split()).casefold()
    exact = [question for question in questions
             if expected_text in (question.text.casefold(), plain_text(question.text).casefold())]
    if len(exact) == 1:
        return exact[0]
    partial = [question for question in questions if matches_text(question, query)]
    if len(partial) == 1:
        return partial[0]
    if not partial:
        place = re.fullmatch(r"(?P<path>.+\.md):(?P<line>\d+)", query.strip())
        in_note = [question for question in questions if place and question.path == place["path"]]
        if in_note:
            lines = ", ".join(str(question.line) for question in in_note[:10])
            raise LookupError(f"{place['path']} has no question at line {place['line']}; its "
                              f"questions start at lines {lines}")
        raise LookupError(f"no question with block id or text '{query}'; list them with kb questions")
    listed = "; ".join(f"{question} {_shorten(question.text, 50)}" for question in partial[:5])
    raise LookupError(f"'{query}' matches {len(partial)} questions ({listed}); pass a block id, "
                      "PATH:LINE or more of the text")


def _new_block_id(topic: str, text: str) -> str:
    """Return ``q-`` plus a slug of ``topic`` that no block of the note ``text`` uses yet."""
    slug = re.sub(r"[^0-9a-z]+", "-", Path(topic).name.casefold()).strip("-") or "answer"
    taken = set(re.findall(r"\^([A-Za-z0-9-]+)", text))
    candidate, number = f"q-{slug}", 2
    while candidate in taken:
        candidate, number = f"q-{slug}-{number}", number + 1
    return candidate


def _snippet_name(topic: str) -> str:
    slug = re.sub(r"[^0-9a-z]+", "_", Path(topic).name.casefold()).strip("_")
    return f"{slug or 'answer'}.py"


def _note_target(path: str) -> str:
    return path[:-3] if path.lower().endswith(".md") else path


def answer_template(topic: str, question: Question | None) -> str:
    """Return the text of a new answer note; its own-words section holds only a prompt."""
    name = Path(topic).name
    if question is not None and question.block_id:
        link = f"[[{_note_target(question.path)}#^{question.block_id}]]"
        front = f'answers: ["{link}"]'
        quoted = f"> [!question] {question.text}\n> From {link}"
    elif question is not None:
        front = "answers: []"
        quoted = f"> [!question] {question.text}\n> From [[{_note_target(question.path)}]]"
    else:
        front = "answers: []"
        quoted = "> [!question] TODO: the question this note answers"
    return (
        f"---\n{front}\n---\n\n{quoted}\n\n"
        f"## {SECTION_TITLE}\n\n"
        f"> [!prompt] Before reading the reference below, explain the answer as you would to a "
        f"colleague. Run `kb explain \"{name}\"` or write here.\n\n"
        "## Reference explanation\n\n"
        "TODO: explain the answer and cite the sources below.\n\n"
        "## Code\n\n"
        f"![[{_snippet_name(topic)}]]\n\n"
        "## Results\n\n"
        "TODO: what the code prints or plots, and what that shows.\n\n"
        "## Sources\n\n"
        "- TODO\n"
    )


def _validate_topic(topic: str) -> str:
    topic = topic.strip()
    if topic.lower().endswith(".md"):
        topic = topic[:-3]
    parts = topic.split("/")
    if not topic or topic.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"invalid note name '{topic}': a name must stay inside the vault, with "
                         "no '..', '.' or empty folder; give a name such as \"Cold diffusion\"")
    bad = _FORBIDDEN_NAME.search(topic)
    if bad:
        raise ValueError(f"invalid note name '{topic}': '{bad.group()}' breaks Obsidian links; "
                         "leave it out")
    return topic


def _add_answer_link(text: str, question: Question, topic: str | None, block_id: str | None = None) -> str:
    """Return ``text`` with ``[[topic|answer]]`` and ``^block_id`` added to the question.

    Both go on the question's last line, the link before an existing block id. Either may be
    ``None`` to leave it out.
    """
    lines = split_lines(text)
    if question.kind == "callout":
        return _add_to_callout(lines, question, topic, block_id)
    index = question.last_line - 1
    if re.fullmatch(r"[ \t]*\^[A-Za-z0-9-]+[ \t]*(?:\r\n|\r|\n)?", lines[index]) and index > question.line - 1:
        index -= 1  # a block id alone on its line: put the link on the line above it
    line = lines[index]
    ending = line[len(line.rstrip("\r\n")):]
    content = line[: len(line) - len(ending)]
    if topic is not None:
        link = f"[[{topic}|answer]]"
        block = re.search(r"[ \t]+\^[A-Za-z0-9-]+[ \t]*$", content)
        if block:
            content = f"{content[: block.start()]} {link}{content[block.start():]}"
        else:
            content = f"{content.rstrip()} {link}"
    if block_id is not None:
        content = f"{content.rstrip()} ^{block_id}"
    lines[index] = content + ending
    return "".join(lines)


def _add_to_callout(lines: list[str], question: Question, topic: str | None, block_id: str | None) -> str:
    """Add ``[[topic|answer]]`` as the last paragraph of a question callout and ``^block_id``
    on a line of its own after the callout.

    The callout's last line may be a formula or a table row, where a link or an id would not
    render. Obsidian's help places the id of a quote or callout on its own line after it.
    """
    last = question.last_line - 1
    newline = next((line[len(line.rstrip("\r\n")):] for line in lines if line.endswith(("\n", "\r"))), "\n")
    if not lines[last].endswith(("\n", "\r")):
        lines[last] += newline
    prefix = re.match(r"[ \t]{0,3}>", lines[question.line - 1]).group()
    added: list[str] = []
    if topic is not None:
        added += [prefix + newline, f"{prefix} [[{topic}|answer]]{newline}"]
    if block_id is not None:
        added += [newline, f"^{block_id}{newline}"]
        if last + 1 < len(lines) and lines[last + 1].strip():
            added.append(newline)  # the id line needs a blank line below it, too
    lines[last + 1 : last + 1] = added
    return "".join(lines)


def command_new(args: argparse.Namespace) -> int:
    project = Project.discover(vault=args.vault)
    vault = project.vault
    try:
        topic = _validate_topic(args.topic)
    except ValueError as error:
        return _error(str(error))
    existing = vault.note_for(topic)
    if existing is not None:
        return _error(f"a note named '{topic}' exists already ({existing.path}); kb new never "
                      "overwrites a note. Pick another name or edit that note")

    question = None
    snapshot = None
    block_id = None
    new_question_text = None
    if args.answers:
        try:
            question = _find_question(collect_questions(project), args.answers)
        except LookupError as error:
            return _error(str(error))
        if question.answer is not None and question.answer != f"{topic}.md":
            return _error(f"question {question} already has the answer note '{question.answer}'; "
                          "edit that note instead")
        missing = question.answer_missing
        if question.answer_line is not None and missing is not None \
                and _note_target(missing).casefold() != topic.casefold():
            return _error(f"question {question} links its answer to '{missing}'; run kb new "
                          f"\"{_note_target(missing)}\" or change that link first")
        if question.answer_line is None or question.block_id is None:
            # One atomic write adds the answer link and, so that answers: can name the
            # question, a block id when it has none.
            try:
                snapshot = NoteSnapshot.read(vault.files[question.path])
            except ExplanationError as error:
                return _error(str(error))
            block_id = None if question.block_id else _new_block_id(topic, snapshot.text)
            link_topic = topic if question.answer_line is None else None
            new_question_text = _add_answer_link(snapshot.text, question, link_topic, block_id)
            question.block_id = question.block_id or block_id

    target = project.vault_dir / f"{topic}.md"
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        write_atomically(target, None, answer_template(topic, question).encode("utf-8"))
    except FileExistsError:
        return _error(f"{target} exists already; kb new never overwrites a note")
    print(f"created {target.relative_to(project.root) if target.is_relative_to(project.root) else target}")

    if snapshot is not None and new_question_text is not None:
        try:
            write_atomically(snapshot.path, snapshot.data, new_question_text.encode("utf-8"))
        except ConcurrentChangeError as error:
            target.unlink()
            return _error(f"{error} (the new note was removed again)")
        added = []
        if question.answer_line is None:
            added.append(f"[[{topic}|answer]]")
        if block_id is not None:
            added.append(f"^{block_id}")
        print(f"added {' and '.join(added)} to {question}")
    elif question is not None:
        print(f"{question} already links to its answer; left it unchanged")
    return 0


# kb explain -----------------------------------------------------------------------------------


def _questions_for(project: Project, note_path: str) -> list[Question]:
    return [question for question in collect_questions(project) if question.answer == note_path]


class _TypedTextError(ExplanationError):
    """Reading the person's text stopped with an error, after some text was typed."""

    def __init__(self, message: str, text: str | bytes) -> None:
        super().__init__(message)
        self.text = text


def _read_from_editor(note_name: str, questions: list[Question]) -> str:
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR")
    if not editor:
        raise ExplanationError("no editor: set $EDITOR (or $VISUAL), or pass --from FILE or --from -")
    question_lines = "\n".join(f"     Question: {question.text}" for question in questions)
    template = (
        f"\n\n{_EDITOR_CUT} about \"{note_name}\", in your own words.\n"
        f"{question_lines}\n"
        "     Everything from this comment on is ignored. Save and quit to store the text;\n"
        "     save it empty to cancel. -->\n"
    )
    handle, name = tempfile.mkstemp(prefix="kb-explain-", suffix=".md")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(template)
        try:
            completed = subprocess.run([*shlex.split(editor), name], check=False)
        except OSError as error:
            raise ExplanationError(
                f"cannot start the editor '{editor}' ({error.strerror}); set $EDITOR (or "
                "$VISUAL) to an installed editor, or pass --from FILE or --from -"
            ) from None
        except KeyboardInterrupt:
            raise _TypedTextError("interrupted; nothing was saved", _typed_text(name)) from None
        if completed.returncode != 0:
            raise _TypedTextError(
                f"the editor '{editor}' exited with code {completed.returncode}; nothing was saved",
                _typed_text(name),
            )
        return _typed_text(name)
    finally:
        os.unlink(name)


def _typed_text(name: str) -> str | bytes:
    """Return the text above the editor template's cut line, or the raw bytes when they are not
    UTF-8."""
    data = Path(name).read_bytes()
    try:
        return data.decode("utf-8").split(_EDITOR_CUT, 1)[0]
    except UnicodeDecodeError:
        return data


def _decode_input(data: str | bytes, source: str) -> str:
    """Return ``data`` as text, or raise :class:`_TypedTextError` when it is not UTF-8.

    kb reads standard input with ``surrogateescape``, so bytes that are not UTF-8 arrive as
    surrogates. They are turned back into the bytes the person typed, which the error keeps.
    """
    if isinstance(data, str):
        try:
            data.encode("utf-8")
            return data
        except UnicodeEncodeError:
            data = data.encode("utf-8", "surrogateescape")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _TypedTextError(
            f"{source}: byte {error.start} is not valid UTF-8; nothing was saved. Save the text "
            "as UTF-8", data,
        ) from None


def _read_source(source: str) -> str:
    if source == "-":
        _use_surrogateescape(sys.stdin)
        return _decode_input(sys.stdin.read(), "standard input")
    try:
        data = Path(source).read_bytes()
    except OSError as error:
        raise ExplanationError(f"cannot read {source} ({error.strerror})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ExplanationError(
            f"{source}: byte {error.start} is not valid UTF-8; nothing was saved. Save the file "
            "as UTF-8 and run the command again"
        ) from None


def _use_surrogateescape(stream: TextIO) -> None:
    """Let ``stream`` pass bytes that are not UTF-8 through, so that no typed text is lost."""
    reconfigure = getattr(stream, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="surrogateescape")


def _keep_unsaved(project: Project, note_name: str, explanation: str | bytes) -> Path:
    """Store an explanation that could not be saved, so the typed text is not lost."""
    folder = cache_dir_for(project) / "unsaved"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    if isinstance(explanation, str):
        explanation = explanation.encode("utf-8", "surrogateescape")
    # O_EXCL with a counter: two failures in the same second never overwrite each other.
    for attempt in range(1, 1000):
        suffix = "" if attempt == 1 else f"-{attempt}"
        path = folder / f"{_snippet_name(note_name)[:-3]}-{stamp}{suffix}.md"
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(explanation)
        return path
    raise ExplanationError(f"cannot keep the text: {folder} has too many kept files; clear it")


def _report_unsaved(
    project: Project, note_name: str, explanation: str | bytes, error: Exception
) -> int:
    """Report ``error``, keeping the typed text in ``.kb/unsaved/`` unless it is blank."""
    if not explanation.strip():
        return _error(str(error))
    kept_path = _keep_unsaved(project, note_name, explanation)
    return _error(f"{error}\nYour text is kept in {kept_path}; fix it there if needed, then save "
                  f"it with kb explain \"{note_name}\" --from \"{kept_path}\"")


def _saved_message(words: int, where: str) -> str:
    return f"Saved {plural(words, 'word')} to {where}"


def command_explain(args: argparse.Namespace) -> int:
    project = Project.discover(vault=args.vault)
    vault = project.vault
    note = vault.note_for(args.topic)
    if note is None:
        hints = vault.suggestions(args.topic)
        hint = f"; did you mean: {', '.join(hints)}" if hints else ""
        return _error(f"no note named '{args.topic}'{hint}")
    resolution = vault.resolve(args.topic, "", "wikilink")
    if resolution.ambiguous and resolution.target == note.path:
        return _error(
            f"'{args.topic}' matches {len(resolution.candidates)} notes "
            f"({', '.join(resolution.candidates)}); write the folder path to choose one, "
            f"e.g. kb explain \"{resolution.candidates[0][:-3]}\""
        )
    questions = _questions_for(project, note.path)
    answer_note = "answers" in note.frontmatter or questions \
        or read_own_words(note.text).state != "missing"
    if not answer_note and not args.force:
        return _error(
            f"{note.path} is not an answer note: it has no answers: property, no "
            f"'## {SECTION_TITLE}' section, and no question links to it. Create an answer "
            "note with kb new \"TOPIC\" --answers QUESTION, add answers: [\"[[NOTE#^BLOCK]]\"] "
            f"to this one, or pass --force to add the section anyway"
        )
    try:
        snapshot = NoteSnapshot.read(vault.files[note.path])
        check_editable(snapshot)  # before the person types anything
        if args.source is not None:
            explanation = _read_source(args.source)
        else:
            explanation = _read_from_editor(note.name, questions)
    except _TypedTextError as error:
        return _report_unsaved(project, note.name, error.text, error)
    except ExplanationError as error:
        return _error(str(error))
    try:
        state = save_explanation(snapshot, explanation)
    except ExplanationError as error:
        return _report_unsaved(project, note.name, explanation, error)
    print(f"{_saved_message(state.words, f'{note.path}:{state.line}')} ({SECTION_TITLE}, {state.date})")
    return 0


# kb quiz --------------------------------------------------------------------------------------


def _read_answer(stream: TextIO, lines: list[str]) -> None:
    """Append the lines typed at the quiz to ``lines``, up to the end-of-input line or Ctrl-D.

    The caller owns ``lines``, so the text typed so far survives a Ctrl-C.
    """
    while True:
        line = stream.readline()
        if not line or line.rstrip("\r\n") == END_OF_INPUT:
            break
        lines.append(line)


def _heading_line(project: Project, note_path: str, title: str) -> int | None:
    note = project.vault.notes.get(note_path)
    if note is None:
        return None
    return next((h.line for h in note.headings if h.text.strip().casefold() == title.casefold()), None)


def _key_output(notebook: str | None, lines: int = 3) -> list[str]:
    """Last lines of text the snippet printed in its cached run."""
    if notebook is None:
        return []
    try:
        import nbformat

        cells = nbformat.read(notebook, as_version=4).cells
    except (OSError, ValueError, ImportError):
        return []
    printed: list[str] = []
    for cell in cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stdout":
                printed.extend(output.get("text", "").splitlines())
            elif output.get("output_type") in ("execute_result", "display_data"):
                printed.extend(output.get("data", {}).get("text/plain", "").splitlines())
    return [line for line in printed if line.strip()][-lines:]


def _show_where_answers_are(project: Project, question: Question) -> None:
    answer = question.answer
    reference = _heading_line(project, answer, "Reference explanation")
    results = _heading_line(project, answer, "Results")
    if reference is not None:
        print(f"Reference answer: {answer}:{reference} (Reference explanation)")
    else:
        print(f"Answer note:      {answer}")
    if results is not None:
        print(f"Key results:      {answer}:{results} (Results)")
    if not question.snippets:
        print("Code:             none embedded yet")
    for snippet in question.snippets:
        print(f"Code:             {snippet.path} ({snippet.status})")
        for line in _key_output(snippet.notebook):
            print(f"    {line}")
        if snippet.notebook:
            print(f"    full output: {snippet.notebook}")


def command_quiz(args: argparse.Namespace) -> int:
    project = Project.discover(vault=args.vault)
    questions = collect_questions(project)
    try:
        state = QuizState.load(quiz_path(cache_dir_for(project)))
    except ValueError as error:
        return _error(str(error))
    today = dt.date.today()
    pick, next_due = pick_question(questions, state, today)
    if pick is None:
        if not any(question.answer for question in questions):
            print("No question has an answer note yet; create one with kb new \"TOPIC\" --answers QUESTION")
        else:
            print(f"Nothing to review today. The next review is due {next_due.isoformat() if next_due else 'later'}.")
        return 0

    question = pick.question
    if args.dry_run:
        print(f"Would ask ({pick.reason}): {question.text}")
        print(f"  from {question}; the explanation would go to {question.answer}")
        return 0

    answer_file = project.vault.files[question.answer]
    note_name = Path(question.answer).stem
    try:
        snapshot = NoteSnapshot.read(answer_file)
        check_editable(snapshot)  # before the person types anything
    except ExplanationError as error:
        return _error(str(error))
    print(f"Question ({question}):")
    print(f"  {question.text}")
    print()
    print(f"Explain it in your own words. Finish with a line containing only '{END_OF_INPUT}', or Ctrl-D.")
    sys.stdout.flush()
    _use_surrogateescape(sys.stdin)
    typed: list[str] = []
    try:
        _read_answer(sys.stdin, typed)
    except KeyboardInterrupt:
        return _report_unsaved(project, note_name, "".join(typed),
                               ExplanationError("interrupted; nothing was saved"))
    typed_text = "".join(typed)
    if not typed_text.strip():
        print("Nothing written; nothing saved and the schedule is unchanged.")
        return 1
    try:
        explanation = _decode_input(typed_text, "standard input")
        saved = save_explanation(snapshot, explanation, today.isoformat())
    except _TypedTextError as error:
        return _report_unsaved(project, note_name, error.text, error)
    except ExplanationError as error:
        return _report_unsaved(project, note_name, typed_text, error)
    record = state.record_review(question.key, today)
    try:
        state.save()
    except (ConcurrentChangeError, OSError) as error:
        return _error(f"the explanation was saved, but the schedule was not: {error}")
    print()
    print(f"{_saved_message(saved.words, f'{question.answer}:{saved.line}')}. "
          f"Next review of this question: {record['due']}.")
    _show_where_answers_are(project, question)
    return 0
