"""README.md's command table matches the command line: one row per `dwz` command, and only options that exist."""

import re
from pathlib import Path

import pytest

from distil_whisper_zh.cli import COMMANDS
from distil_whisper_zh.options import cli_flags

README = Path(__file__).resolve().parent.parent / "README.md"
ROW = re.compile(r"^\| `dwz ([a-z][a-z0-9-]*)")
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def table_rows() -> list[tuple[str, str]]:
    """(command name, whole row) for every row of the command table."""
    rows = []
    for line in README.read_text(encoding="utf-8").splitlines():
        match = ROW.match(line)
        if match:
            rows.append((match.group(1), line))
    return rows


def parser_options(command: str) -> set[str]:
    """The long options of `dwz COMMAND`: generated from its options dataclass, so read from there."""
    return cli_flags(COMMANDS[command].options_class())


def test_table_has_one_row_per_command():
    names = [name for name, _ in table_rows()]
    assert names, f"no command table in {README} (rows starting with '| `dwz ')"
    duplicated = sorted({name for name in names if names.count(name) > 1})
    missing = sorted(set(COMMANDS) - set(names))
    unknown = sorted(set(names) - set(COMMANDS))
    assert not duplicated, f"README.md's command table has more than one row for: {', '.join(duplicated)}"
    assert not missing, f"README.md's command table has no row for: {', '.join(missing)}"
    assert not unknown, f"README.md's command table lists commands dwz does not have: {', '.join(unknown)}"


@pytest.mark.parametrize("name,row", table_rows(), ids=[name for name, _ in table_rows()])
def test_table_options_exist(name, row):
    if name not in COMMANDS:
        pytest.skip(f"dwz {name} is not a command (reported by test_table_has_one_row_per_command)")
    known = parser_options(name)
    unknown = sorted(set(OPTION.findall(row)) - known)
    assert not unknown, f"README.md's row for dwz {name} mentions options it does not have: {', '.join(unknown)}"


RESULTS = README.parent / "RESULTS.md"
COMMAND = re.compile(r"dwz ([a-z][a-z-]*)((?:[^\n`]|\\\n)*)")


def test_results_commands_use_options_that_exist():
    """The commands quoted for the committed results must still run: every option they use exists."""
    committed = RESULTS.read_text(encoding="utf-8").split("## Earlier sessions")[0]
    commands = [(m.group(1), m.group(2)) for m in COMMAND.finditer(committed) if m.group(1) in COMMANDS]
    assert len(commands) > 5
    for name, rest in commands:
        unknown = set(OPTION.findall(rest)) - cli_flags(COMMANDS[name].options_class())
        assert not unknown, f"RESULTS.md runs dwz {name} with options it does not have: {sorted(unknown)}"
