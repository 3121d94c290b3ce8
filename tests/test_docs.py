"""The documentation: the site builds with warnings as errors, README stays a short front page,
and every `tracklens` command the docs show names a real verb with real options.

Commands are read from the fenced code blocks of README.md and docs/*.md. Each is checked against
the CLI's own command tree (Typer -> click), so a renamed verb or option fails here instead of
in a reader's terminal. Running them is the demo's and the other tests' job.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tracklens import config

ROOT = config.REPO_ROOT
pytestmark = pytest.mark.skipif(ROOT is None, reason="docs live in the source checkout")

README_MAX_LINES = 250
COMMAND = re.compile(r"^(?:\$ )?(?:\.venv/bin/)?tracklens\s+(.*)$")


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def shown_commands(text: str) -> list[str]:
    """Command lines (without the program name) inside ``` blocks, continuation lines joined."""
    commands, fence, pending = [], False, ""
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fence, pending = not fence, ""
            continue
        if not fence:
            continue
        line = pending + line.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        match = COMMAND.match(line)
        if match:
            commands.append(match.group(1).split("#")[0].split("|")[0].strip())
    return commands


def check_command(root_command, args: list[str]) -> str | None:
    """None if ``args`` names a command path whose options all exist; else what is wrong."""
    command, words = root_command, list(args)
    global_options = {o for p in root_command.params for o in getattr(p, "opts", [])}
    while hasattr(command, "list_commands"):  # a group (Typer's click may be its own copy)
        words = [w for w in words if w not in global_options]
        if not words or words[0].startswith("-"):
            return None if words == [] or words[0] in ("--help",) else f"no sub-command before {words[0]}"
        sub = command.get_command(None, words[0])
        if sub is None:
            return f"unknown command {words[0]!r}"
        command, words = sub, words[1:]
    known = {o for p in command.params for o in [*getattr(p, "opts", []), *getattr(p, "secondary_opts", [])]}
    known |= global_options | {"--help"}
    for word in words:
        if word.startswith("--"):
            name = word.split("=")[0]
            if name not in known:
                return f"{command.name}: unknown option {name}"
    return None


def test_every_command_in_the_docs_names_a_real_verb_and_real_options():
    import typer

    from tracklens import cli

    root = typer.main.get_command(cli.app)
    seen, wrong = 0, []
    for path in doc_files():
        for line in shown_commands(path.read_text(encoding="utf-8")):
            try:
                args = shlex.split(line)
            except ValueError:
                args = line.split()
            seen += 1
            problem = check_command(root, args)
            if problem:
                wrong.append(f"{path.name}: tracklens {line}: {problem}")
    assert seen >= 20, f"only {seen} commands found in the docs: is the parser still reading them?"
    assert wrong == []


def test_the_checker_catches_a_wrong_verb_and_a_wrong_option():
    import typer

    from tracklens import cli

    root = typer.main.get_command(cli.app)
    assert check_command(root, ["predict", "song.mp3", "--top", "3"]) is None
    assert check_command(root, ["acquire", "folder", "x", "--out", "m.csv"]) is None
    assert "unknown command" in check_command(root, ["explore", "x"])
    assert "unknown option --topp" in check_command(root, ["predict", "song.mp3", "--topp", "3"])


def test_every_help_text_points_to_a_page_that_says_it():
    """`--help` sent readers to README sections the short README no longer has ("see README
    \"Genre models\"", the MAE of the estimates, the Spotify credentials); every page a help
    text names must exist, and README is not where the manual lives."""
    import typer

    from tracklens import cli

    def helps(command, path=()):
        yield " ".join(path), " ".join(filter(None, [command.help or "", *(getattr(p, "help", "") or ""
                                                                          for p in command.params)]))
        for name, sub in getattr(command, "commands", {}).items():
            yield from helps(sub, (*path, name))

    for where, text in helps(typer.main.get_command(cli.app)):
        assert "README" not in text, f"tracklens {where} --help points to README"
        for page in re.findall(r"docs/[\w./-]+\.md", text):
            assert (ROOT / page).is_file(), f"tracklens {where} --help names {page}, which does not exist"


def test_readme_is_a_short_front_page_that_links_the_docs():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_MAX_LINES
    for page in ("docs/data.md", "docs/audio-features.md", "docs/models.md", "docs/dashboard.md"):
        assert page in text, f"README does not link {page}"
        assert (ROOT / page).is_file()


@pytest.mark.slow
def test_docs_site_builds_with_warnings_as_errors(tmp_path):
    mkdocs = Path(sys.executable).with_name("mkdocs")
    if not mkdocs.exists():
        pytest.skip("mkdocs is not installed (make venv installs it)")
    link_parent = tmp_path / "src"
    link_parent.mkdir()
    (link_parent / "tracklens").symlink_to(ROOT)
    env = {**os.environ, "TRACKLENS_DOCS_PATH": str(link_parent), "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([str(mkdocs), "build", "--strict", "-q", "-d", str(tmp_path / "site")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site" / "api" / "index.html").is_file()


def readme_as_site_home(readme: str) -> str:
    """docs/index.md is README.md with its links made relative to docs/ (one text, two places)."""
    return readme.replace("](docs/", "](")


def test_the_site_home_is_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    home = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    assert home == readme_as_site_home(readme), (
        "docs/index.md differs from README.md: copy README.md there with `](docs/` links made `](`")
