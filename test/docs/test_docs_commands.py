"""Commands the docs tell a user to type exist as written: `make` targets in the Makefile, AWS CLI
operations and their parameters in the CLI's service models (botocore, as the CLI itself reads
them), and tuning-trainer's subcommands and flags in its own --help.

    .venv/bin/python -m pytest -q test/docs/test_docs_commands.py
"""

from __future__ import annotations

import re
import subprocess
import sys
from functools import cache

import botocore.session
import pytest
from botocore import xform_name
from docs_markdown import DOCUMENTS, ROOT, code_blocks, inline_code, relative

SNIPPETS = [
    (relative(doc), snippet)
    for doc in DOCUMENTS
    for snippet in code_blocks(doc.read_text()) + inline_code(doc.read_text())
]

# Options every AWS CLI command takes (global options and the CLI's pagination).
AWS_GLOBAL_OPTIONS = {
    "region", "query", "output", "profile", "endpoint-url", "no-cli-pager", "debug",
    "no-paginate", "max-items", "starting-token", "page-size", "cli-input-json", "color",
}  # fmt: skip
# Commands the CLI adds on top of the service APIs, with the options the docs may use.
AWS_CUSTOM_COMMANDS = {
    ("s3", "cp"): {"recursive", "exclude", "include", "only-show-errors", "quiet", "dryrun"},
    ("s3", "ls"): {"recursive", "human-readable", "summarize"},
    ("s3", "sync"): {"exclude", "include", "delete", "only-show-errors", "dryrun"},
    ("s3", "rm"): {"recursive", "exclude", "include", "dryrun"},
    ("s3", "rb"): {"force"},
    ("logs", "tail"): {"follow", "since", "format", "log-stream-name-prefix"},
    ("ecr", "get-login-password"): set(),
    ("sso", "login"): set(),
}
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
def aws_session() -> botocore.session.Session:
    return botocore.session.get_session()


def normalized(name: str) -> str:
    return re.sub(r"[-_]", "", name).lower()


AWS_COMMANDS = aws_commands()


def test_the_docs_show_aws_commands() -> None:
    assert len(AWS_COMMANDS) > 20


@pytest.mark.parametrize(
    ("document", "service", "command", "options"),
    AWS_COMMANDS,
    ids=[f"{d}: aws {s} {c} {' '.join(sorted(o))}" for d, s, c, o in AWS_COMMANDS],
)
def test_aws_command_and_its_options_exist(
    document: str, service: str, command: str, options: frozenset[str]
) -> None:
    options = options - AWS_GLOBAL_OPTIONS
    if (service, command) in AWS_CUSTOM_COMMANDS:
        assert options <= AWS_CUSTOM_COMMANDS[(service, command)], f"{document}: unknown options"
        return
    session = aws_session()
    assert service in session.get_available_services(), f"{document}: no AWS CLI service {service}"
    model = session.get_service_model(service)
    operations = {xform_name(op, "-"): op for op in model.operation_names}
    assert command in operations, f"{document}: aws {service} has no command {command}"
    shape = model.operation_model(operations[command]).input_shape
    members = {normalized(m) for m in (shape.members if shape else {})}
    unknown = {o for o in options if normalized(o.removeprefix("no-")) not in members}
    assert not unknown, f"{document}: aws {service} {command} has no option(s) {sorted(unknown)}"


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
