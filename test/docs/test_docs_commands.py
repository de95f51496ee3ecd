"""Commands the docs tell a user to type exist as written: `make` targets in the Makefile, AWS CLI
commands and their options in the AWS CLI that `make install` provides (v1, the `awscli` package
pinned in requirements.lock: the same major version the Deep Learning AMI ships, so every command
works on a laptop with that CLI and on the instance; v2 has them all too), tuning-trainer's
subcommands and flags in its own --help, and `npx tuning-lab`'s: every command it lists has a
--help and is documented, and every use in the docs names a command, action and options it has.

    .venv/bin/python -m pytest -q test/docs/test_docs_commands.py
"""

from __future__ import annotations

import re
import subprocess
import sys
from functools import cache

import pytest
from awscli.clidriver import create_clidriver
from docs_markdown import DOCUMENTS, ROOT, code_blocks, inline_code, relative

SNIPPETS = [
    (relative(doc), snippet)
    for doc in DOCUMENTS
    for snippet in code_blocks(doc.read_text()) + inline_code(doc.read_text())
]

AWS_COMMAND = re.compile(r"(?<![\w./-])aws\s+([a-z][a-z0-9-]*)(?:\s+([a-z][a-z0-9-]*))?")


def without_quotes_and_substitutions(text: str) -> str:
    """Quoted strings and $(...) replaced by a word, so their contents are not read as options."""
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "Q", text)
    while re.search(r"\$\([^()]*\)", text):
        text = re.sub(r"\$\([^()]*\)", "S", text)
    return text


def aws_commands() -> list[tuple[str, str, str, frozenset[str]]]:
    """(document, service, command, options) of every `aws ...` the docs show."""
    found = set()
    for document, snippet in SNIPPETS:
        for line in snippet.splitlines():
            for match in AWS_COMMAND.finditer(line):
                if match.group(1) == "configure":
                    continue
                rest = without_quotes_and_substitutions(line[match.end() :])
                rest = re.split(r"[|;&)#]", rest)[0]
                options = frozenset(re.findall(r"(?<!\S)--([a-z0-9-]+)", rest))
                found.add((document, match.group(1), match.group(2) or "", options))
    return sorted(found, key=lambda c: (c[0], c[1], c[2], sorted(c[3])))


@cache
def aws_cli():
    """The installed AWS CLI's own command tree (services, their commands, the CLI's own
    commands such as `s3 cp`), as `aws` itself builds it."""
    return create_clidriver()


def cli_commands(service: str) -> dict:
    command = aws_cli()._get_command_table()[service]
    table = getattr(command, "subcommand_table", None)
    return table if table is not None else command._get_command_table()


AWS_COMMANDS = aws_commands()


def test_the_docs_show_aws_commands() -> None:
    assert len(AWS_COMMANDS) > 20


@pytest.mark.parametrize(
    ("document", "service", "command", "options"),
    AWS_COMMANDS,
    ids=[f"{d}: aws {s} {c} {' '.join(sorted(o))}" for d, s, c, o in AWS_COMMANDS],
)
def test_aws_command_and_its_options_exist_in_the_pinned_cli(
    document: str, service: str, command: str, options: frozenset[str]
) -> None:
    services = aws_cli()._get_command_table()
    assert service in services, f"{document}: the AWS CLI has no command {service}"
    commands = cli_commands(service)
    assert command in commands, f"{document}: aws {service} has no command {command}"
    known = set(commands[command].arg_table) | set(aws_cli()._get_argument_table())
    unknown = sorted(options - known)
    assert not unknown, f"{document}: aws {service} {command} has no option(s) {unknown}"


MAKEFILE_TARGETS = set(re.findall(r"^([a-z][a-z0-9-]*):", (ROOT / "Makefile").read_text(), re.M))
MAKE_TARGETS_SHOWN = sorted(
    {
        (document, target)
        for document, snippet in SNIPPETS
        for target in re.findall(r"(?<![\w-])make ([a-z][a-z0-9-]*)", snippet)
    }
)


@pytest.mark.parametrize(("document", "target"), MAKE_TARGETS_SHOWN)
def test_make_target_exists(document: str, target: str) -> None:
    assert target in MAKEFILE_TARGETS, f"{document}: make {target} is not a Makefile target"


TRAINER_USES = sorted(
    {
        (document, sub, frozenset(re.findall(r"(?<!\S)--([a-z][a-z0-9-]*)", rest)))
        for document, snippet in SNIPPETS
        for line in snippet.splitlines()
        for sub, rest in re.findall(r"tuning-trainer ([a-z]+)([^|;&#`]*)", line)
    },
    key=lambda u: (u[0], u[1], sorted(u[2])),
)


@cache
def trainer_help(subcommand: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "tuning_trainer", subcommand, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.stdout if done.returncode == 0 else ""


@pytest.mark.parametrize(
    ("document", "subcommand", "flags"),
    TRAINER_USES,
    ids=[f"{d}: tuning-trainer {s} {' '.join(sorted(f))}" for d, s, f in TRAINER_USES],
)
def test_tuning_trainer_subcommand_and_flags_exist(
    document: str, subcommand: str, flags: frozenset[str]
) -> None:
    usage = trainer_help(subcommand)
    assert usage, f"{document}: tuning-trainer has no subcommand {subcommand}"
    missing = {f for f in flags if f"--{f}" not in usage}
    assert not missing, f"{document}: tuning-trainer {subcommand} has no flag(s) {sorted(missing)}"


CLI_USE = re.compile(r"(?<![\w-])npx tuning-lab ([a-z][a-z-]*)([^|;&#`)]*)")
CLI_OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-zA-Z])(?![\w-])")
CLI_USES = sorted(
    {
        (document, sub, frozenset(CLI_OPTION.findall(rest)))
        for document, snippet in SNIPPETS
        for line in snippet.splitlines()
        for sub, rest in CLI_USE.findall(line)
    },
    key=lambda u: (u[0], u[1], sorted(u[2])),
)
# `npx tuning-lab runs tag <run> <name>`: the word after a command that takes actions.
CLI_ACTIONS = sorted(
    {
        (document, sub, rest.split()[0])
        for document, snippet in SNIPPETS
        for line in snippet.splitlines()
        for sub, rest in CLI_USE.findall(line)
        if rest.split() and re.fullmatch(r"[a-z]+", rest.split()[0])
    }
)


@cache
def cli_help(command: str = "") -> str:
    """`npx tuning-lab [<command>] --help` (the package bin, as npm runs it)."""
    done = subprocess.run(
        ["node", str(ROOT / "cli" / "tuning-lab.js"), *([command] if command else []), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.stdout if done.returncode == 0 else ""


@cache
def tuning_lab_commands() -> list[str]:
    """The commands `npx tuning-lab --help` lists (cli/commands/, one file each)."""
    listing = cli_help().split("Commands:", 1)[1].split("Options of every command:", 1)[0]
    return re.findall(r"^  ([a-z][a-z-]*)  ", listing, re.MULTILINE)


def cli_actions(command: str) -> set[str]:
    """The literal actions of a command whose usage offers some (`runs [show <run> | tag ...]`)."""
    usage = cli_help(command).splitlines()[0]
    if "|" not in usage:
        return set()
    return set(re.findall(r"(?:\[|\| )([a-z]+)(?= <| \||\])", usage)) - {"options"}


def test_the_command_line_lists_its_commands() -> None:
    expected = {"runs", "status", "logs", "pull", "messages", "stop", "doctor", "cost", "sweep"}
    assert set(tuning_lab_commands()) >= expected


@pytest.mark.parametrize("command", tuning_lab_commands())
def test_every_command_has_help_and_is_in_the_docs(command: str) -> None:
    usage = cli_help(command)
    assert usage.startswith(f"usage: tuning-lab {command}"), f"{command} --help failed"
    assert "Options of every command:" in usage and "--json" in usage
    documented = {sub for _, sub, _ in CLI_USES}
    assert command in documented, f"no document shows npx tuning-lab {command}"


@pytest.mark.parametrize(
    ("document", "command", "action"),
    CLI_ACTIONS,
    ids=[f"{d}: tuning-lab {c} {a}" for d, c, a in CLI_ACTIONS],
)
def test_tuning_lab_actions_exist(document: str, command: str, action: str) -> None:
    actions = cli_actions(command)
    if actions:
        assert action in actions, f"{document}: npx tuning-lab {command} has no action {action}"


@pytest.mark.parametrize(
    ("document", "command", "flags"),
    CLI_USES,
    ids=[f"{d}: tuning-lab {s} {' '.join(sorted(f))}" for d, s, f in CLI_USES],
)
def test_tuning_lab_command_and_flags_exist(document: str, command: str, flags: frozenset[str]):
    usage = cli_help(command)
    assert usage.startswith(f"usage: tuning-lab {command}"), (
        f"{document}: npx tuning-lab has no command {command}"
    )
    missing = flags - set(CLI_OPTION.findall(usage))
    assert not missing, f"{document}: npx tuning-lab {command} has no option(s) {sorted(missing)}"
