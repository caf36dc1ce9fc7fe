"""Every ``birefvid`` command line the README and docs/*.md show, parsed by the CLI's own parser and checked by the
CLI's own option checks, without running it: a renamed option, a value no longer accepted, a flag that now needs an
argument or two options that now conflict would otherwise leave users pasting a broken command.

The lines come from the pages' shell blocks (```bash, ```sh, ```console, a Dockerfile's RUN and its
ENTRYPOINT/CMD) and from inline code that is a whole command (``birefvid image photo.jpg -o out.png`` in a table).
After argparse, each command's checks that need no file are run as the CLI runs them (``process``'s and ``live``'s job
builders, ``batch``'s template job and Ray checks, ``image``'s matte and size checks, ``train``'s numbers, ``export``'s
run options), in an empty folder, so a file named on the line is simply not there.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import shlex
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterator, Optional

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_FENCES = {"bash", "sh", "shell", "console", "dockerfile"}

# Inline code that names a command with words that are not meant to be typed as they stand, and why. Each entry must
# still be on a page (test_every_skipped_command_is_still_on_a_page), so the list cannot outlive what it excuses.
SKIPPED = {
    "birefvid live --source SRC --effect EFFECT --sink SINK...": "a synopsis: EFFECT stands for one of the effects",
    "birefvid train --data DIR -o runs/ft --steps N": "a synopsis: N stands for a number of steps",
    "birefvid live @<(pass show gate)": "a shell's process substitution: the arguments come from a password store",
    "birefvid live <source>": "the name of live's capture thread (docs/architecture.md's table of threads)",
    "birefvid models --download NAME": "a synopsis: NAME stands for a model's name (what the offline line names)",
    "birefvid models --download NAME ...": "a synopsis: NAME stands for a model's name",
    "birefvid models --download NAME [NAME ...]": "a synopsis: NAME stands for a model's name",
}

# The arguments files the pages describe: `birefvid live @gate.args` (--source, then the URL), `process @talk.args`
ARGS_FILES = {
    "gate.args": "--source\nrtsp://admin:PW@cam/1\n",
    "talk.args": "# the URL's login stays off the command line\nhttps://user:PW@host/talk.mp4\n-o talk.webm\n",
}


@dataclass(frozen=True)
class DocCommand:
    """One ``birefvid`` command line of a page: where it is, as written, and the words after ``birefvid``."""

    page: str
    line: int
    text: str
    argv: tuple[str, ...]
    inline: bool = False

    @property
    def partial(self) -> bool:
        """The line may leave required arguments out: it elides them with ``...`` (``birefvid process ... --weights
        w.pt``), or it is inline code naming a command's option in a sentence (``birefvid image --keep-aspect``)."""
        return self.inline or "..." in self.argv

    def where(self) -> str:
        return f"{self.page}:{self.line}: {self.text}"


def _fenced_blocks(text: str) -> Iterator[tuple[str, int, str]]:
    """(language, line number of the block's first line, body) of each fenced block."""
    for m in re.finditer(r"^```(\w*)[^\n]*\n(.*?)^```", text, re.S | re.M):
        yield m.group(1).lower(), text.count("\n", 0, m.start()) + 2, m.group(2)


def logical_lines(body: str, first: int) -> Iterator[tuple[int, str]]:
    """A shell block's commands, one a line, with ``\\`` continuations joined: (line number of its start, text)."""
    pending: Optional[tuple[int, str]] = None
    for number, raw in enumerate(body.splitlines(), first):
        start, text = pending if pending else (number, "")
        line = raw.rstrip()
        if line.endswith("\\") and not _comment_at_end(line):
            pending = (start, text + line[:-1] + " ")
            continue
        pending = None
        yield start, text + line
    if pending:
        yield pending


def _comment_at_end(line: str) -> bool:
    """True when the ``\\`` ending ``line`` is inside a comment, where the shell does not continue the line."""
    try:
        return shlex.split(line, comments=True) != shlex.split(line + " x", comments=True)[:-1]
    except ValueError:
        return False


REDIRECTION = re.compile(r"(?<![\w-])\d?(?:>>?|<)(?:&\d+|&-|\s*[^\s|&;<>]+)")
PLACEHOLDER = re.compile(r"<([A-Za-z][\w -]*)>")
VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+)|\([^)]*\))")


def commands_in(line: str) -> list[list[str]]:
    """The argument lists (the words after ``birefvid``) of the ``birefvid`` commands in one shell line.

    Comments, a ``$`` prompt, redirections and the other commands of a pipeline or list are dropped; a
    ``<placeholder>`` stands for its name, ``$VAR`` or ``$(...)`` for a plain word. ``python -m birefvid`` is birefvid."""
    line = PLACEHOLDER.sub(lambda m: m.group(1).replace(" ", "_"), line)
    line = VARIABLE.sub(lambda m: (m.group(1) or m.group(2) or "x").lower(), line)
    line = REDIRECTION.sub(" ", line)
    lexer = shlex.shlex(line, posix=True, punctuation_chars="|&;()")
    lexer.whitespace_split = True
    words = list(lexer)
    found = []
    for part in _split_on(words, {"|", "||", "&", "&&", ";", "(", ")"}):
        if part[:1] == ["$"]:
            part = part[1:]
        while part and re.fullmatch(r"\w+=\S*", part[0]):  # VAR=value before the command
            part = part[1:]
        if part[:3] in (["python", "-m", "birefvid"], ["python3", "-m", "birefvid"]):
            part = ["birefvid", *part[3:]]
        if part[:1] == ["birefvid"] and len(part) > 1:
            found.append(part[1:])
    return found


def _split_on(words: list[str], operators: set[str]) -> Iterator[list[str]]:
    part: list[str] = []
    for word in words:
        if word in operators:
            yield part
            part = []
        else:
            part.append(word)
    yield part


def _docker_command(body: str) -> Optional[list[str]]:
    """A Dockerfile's ``ENTRYPOINT ["birefvid"]`` with its ``CMD [...]``: the words after birefvid."""
    joined = re.sub(r"\\\n", " ", body)
    entry = re.search(r"^ENTRYPOINT\s+(\[.*\])\s*$", joined, re.M)
    cmd = re.search(r"^CMD\s+(\[.*\])\s*$", joined, re.M)
    if not entry or json.loads(entry.group(1)) != ["birefvid"]:
        return None
    return json.loads(cmd.group(1)) if cmd else []


def _inline_spans(text: str) -> Iterator[tuple[int, str]]:
    """(line number, text) of each inline code span outside fenced blocks, a span over two lines joined."""
    outside = re.sub(r"^```.*?^```", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S | re.M)
    for m in re.finditer(r"(?<!`)`([^`]+)`(?!`)", outside):
        yield outside.count("\n", 0, m.start()) + 1, " ".join(m.group(1).split())


@lru_cache(maxsize=None)
def command_names() -> frozenset[str]:
    from birefvid.commands import COMMANDS

    return frozenset(COMMANDS)


def page_commands(page: Path) -> Iterator[DocCommand]:
    """Every ``birefvid COMMAND ...`` line of ``page``, in its shell blocks and as whole inline code."""
    text = page.read_text(encoding="utf-8")
    name = page.relative_to(ROOT).as_posix()
    for language, first, body in _fenced_blocks(text):
        if language not in SHELL_FENCES:
            continue
        for number, line in logical_lines(body, first):
            for argv in commands_in(line):
                yield DocCommand(name, number, line.strip(), tuple(argv))
        docker = _docker_command(body) if language == "dockerfile" else None
        if docker is not None:
            line = first + body[:body.index("ENTRYPOINT")].count("\n")
            yield DocCommand(name, line, "ENTRYPOINT + CMD", tuple(docker))
    for number, span in _inline_spans(text):
        words = span.split()
        head = [w for w in words[1:] if w not in ("-q", "-v")][:1]
        if words[:1] != ["birefvid"] or not head or head[0] not in command_names():
            continue
        if words[-1] == head[0] or span in SKIPPED:  # a command's name (`birefvid process`), or a line listed above
            continue
        for argv in commands_in(span):
            yield DocCommand(name, number, span, tuple(argv), inline=True)


def all_commands() -> list[DocCommand]:
    return [command for page in PAGES for command in page_commands(page)]


# --- the CLI's checks after parsing that open no file, per command, called as the CLI calls them ---


def _process(args: argparse.Namespace) -> None:
    from birefvid.batch.runner import check_output_format
    from birefvid.commands import process

    check_output_format(process.job_from_args(args))  # the output's container against the encoder options, as batch does


def _batch(args: argparse.Namespace) -> None:
    from birefvid.batch.runner import DEFAULT_EXT, check_output_format, output_for
    from birefvid.commands import batch
    from birefvid.commands.options import file_job_from_args

    if args.ray is not None:
        batch.check_ray_address(args.ray)
        batch.check_ray_device(args.device, args.gpus_per_worker)
    if not args.watch:  # with --watch it looks for the folders
        batch.check_watch(args)
    out_dir = Path(args.output_dir)
    template = file_job_from_args(args, str(Path(args.inputs[0]) / "clip.mp4"),
                                  output_for(Path("clip.mp4"), out_dir, args.ext or DEFAULT_EXT[args.output]))
    check_output_format(template)


def _live(args: argparse.Namespace) -> None:
    from birefvid.commands import live

    live.job_from_args(args)


def _image(args: argparse.Namespace) -> None:
    from birefvid.commands import image
    from birefvid.commands.options import foreground_wanted, inference_spec, matte_options, model_spec, only_for
    from birefvid.job import MatteSpec

    model_spec(args).validate()
    inference_spec(args).validate()
    for name in ("key_color", "blur_sigma", "overlay_color", "overlay_opacity"):
        only_for(args, name)
    foreground_wanted(args)
    MatteSpec(**matte_options(args)).validate()
    image._check_size_and_quality(args)


def _train(args: argparse.Namespace) -> None:
    from birefvid.commands import train

    train._check_numbers(args)


def _export(args: argparse.Namespace) -> None:
    from birefvid.commands import export
    from birefvid.job import parse_resolution

    export._refuse_run_options(args)
    parse_resolution(args.resolution)


def _serve(args: argparse.Namespace) -> None:
    from birefvid.commands.options import inference_spec, model_spec

    model_spec(args).validate()
    inference_spec(args).validate()


def _models(args: argparse.Namespace) -> None:
    from birefvid.models.weights import download_target

    for name in args.download or ():  # the names `--download` takes, looked up as it does before any download
        download_target(name)


# bench's checks ask for the device (`--device cuda` on a machine without one), eval's are inside its run
CHECKS: dict[str, Callable[[argparse.Namespace], None]] = {
    "process": _process, "batch": _batch, "live": _live, "image": _image, "train": _train, "export": _export, "serve": _serve,
    "models": _models,
}


def refusal(argv: tuple[str, ...], partial: bool = False) -> Optional[str]:
    """What birefvid says against ``argv`` before running it (its parser's error or a check's), or None when it is taken.

    Run in an empty folder holding ARGS_FILES. A ``partial`` line (``DocCommand.partial``) may leave out required
    arguments, and nothing else: when it does, its other words are parsed with none required (the checks that need a
    whole job are then not run)."""
    words = [w for w in argv if w != "..."]
    args, said = _parsed(words)
    if said is not None and partial and "the following arguments are required" in said:
        return _parsed(words, nothing_required=True)[1]
    if said is not None:
        return said
    check = CHECKS.get(args.command)
    return None if check is None else _checked(check, args)


def _parsed(words: list[str], nothing_required: bool = False) -> tuple[Optional[argparse.Namespace], Optional[str]]:
    """``words`` parsed by the CLI's parser: (the arguments, None), or (None, its error line)."""
    from birefvid.cli import build_parser

    parser = build_parser()
    if nothing_required:
        _nothing_required(parser)
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            return parser.parse_args(words), None
    except SystemExit as exit:
        said = stderr.getvalue().strip().splitlines()
        return None, None if exit.code == 0 else (said[-1] if said else f"exit {exit.code}")


def _nothing_required(parser: argparse.ArgumentParser) -> None:
    """Every command's arguments made optional, so that a partial line's other words are still checked: argparse
    names the missing required ones before an unknown option, which it would then never report."""
    for command in parser._subparsers._group_actions[0].choices.values():
        for action in command._actions:
            action.required = False


def _checked(check: Callable[[argparse.Namespace], None], args: argparse.Namespace) -> Optional[str]:
    """``check``'s refusal of ``args`` as the CLI's error line, or None."""
    from birefvid.errors import BirefvidError, cli_naming

    try:
        with cli_naming():  # errors name --flags, as on the command line
            check(args)
    except BirefvidError as e:
        return f"birefvid: error: {e}"
    return None


@pytest.fixture
def empty_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The current folder while the lines are checked: the pages' arguments files and nothing else."""
    for name, text in ARGS_FILES.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_every_documented_command_line_is_accepted(empty_folder: Path):
    """Each line a user would paste parses and passes the checks birefvid makes before any work; a failure names the
    page, the line and birefvid's own message."""
    commands = all_commands()
    broken = [f"{c.where()}\n    -> {said}" for c in commands if (said := refusal(c.argv, c.partial)) is not None]
    assert not broken, f"{len(broken)} documented command line(s) refused:\n" + "\n".join(broken)


def test_the_pages_hold_the_command_lines_this_test_is_for():
    """The extraction finds the pages' commands: every command in one line at least, and well over a hundred lines,
    so a change of fence or layout cannot leave this test checking nothing."""
    commands = all_commands()
    assert len(commands) > 150, len(commands)
    assert {c.argv[0] for c in commands} | {a for c in commands for a in c.argv[:2]} >= command_names()


def test_every_skipped_command_is_still_on_a_page():
    """A skip excuses a line that is there; one whose line was edited away goes too."""
    spans = {span for page in PAGES for _, span in _inline_spans(page.read_text(encoding="utf-8"))}
    assert set(SKIPPED) <= spans, set(SKIPPED) - spans


def test_a_broken_line_is_named_with_the_parsers_message(empty_folder: Path):
    """What the test reports for a line a user could not run: argparse's complaint, or the CLI's own check's."""
    assert "unrecognized arguments: --no-such-flag" in refusal(("process", "a.mp4", "-o", "b.mov", "--no-such-flag"))
    assert "invalid choice: 'purple'" in refusal(("live", "--source", "0", "--effect", "purple", "--sink", "window"))
    assert "expected one argument" in refusal(("process", "a.mp4", "-o", "b.mov", "--also"))
    assert "--key-color is only used with --output green" in refusal(("process", "a.mp4", "-o", "b.mp4", "--key-color", "#00b140"))
    assert "--latency-budget" in refusal(("live", "--source", "0", "--sink", "window", "--resolution", "256", "--latency-budget", "100"))
    assert "--val-fraction" in refusal(("train", "--data", "scenes", "-o", "r", "--steps", "9", "--val-fraction", "0.1"))
    assert "unknown model 'lyte'" in refusal(("models", "--download", "lite", "lyte"))
    assert refusal(("process", "...", "--weights", "w.pt"), partial=True) is None
    assert refusal(("image", "--keep-aspect"), partial=True) is None
    assert "not allowed with argument" in refusal(("process", "...", "--grow", "1", "--shrink", "1"), partial=True)
    assert "unrecognized arguments: --no-such-flag" in refusal(("image", "--no-such-flag"), partial=True)


@pytest.mark.parametrize(("line", "expected"), [
    ("birefvid process a.mp4 -o b.mov   # a comment", [["process", "a.mp4", "-o", "b.mov"]]),
    ("$ birefvid -q process a.mp4 -o b.mov", [["-q", "process", "a.mp4", "-o", "b.mov"]]),
    ("cat photo.jpg | birefvid image - -o - > cut.png", [["image", "-", "-o", "-"]]),
    ("birefvid image x.jpg -o - --ext webp 2>/dev/null | some-uploader", [["image", "x.jpg", "-o", "-", "--ext", "webp"]]),
    ("cd /tmp && python -m birefvid process in/<clip>.mp4 -o \"$OUT\" -q && rm -rf x", [["process", "in/clip.mp4", "-o", "out", "-q"]]),
    ("BIREFVID_API_KEY=k birefvid serve --key-color '#00b140' --opacity 30%", [["serve", "--key-color", "#00b140", "--opacity", "30%"]]),
    ("curl -s https://example.com/x.jpg -o x.jpg", []),
])
def test_a_shell_line_gives_the_words_birefvid_gets(line: str, expected: list[list[str]]):
    assert commands_in(line) == expected


def test_continued_lines_are_one_command_and_a_comment_ending_in_a_backslash_is_not_continued():
    body = "birefvid live --source 0 \\\n      --sink window   # two lines\nbirefvid models  # ends here \\\nbirefvid models\n"
    assert list(logical_lines(body, 10)) == [(10, "birefvid live --source 0        --sink window   # two lines"),
                                             (12, "birefvid models  # ends here \\"), (13, "birefvid models")]
