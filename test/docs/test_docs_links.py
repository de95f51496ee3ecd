"""Every relative link in README.md, CONTRIBUTING.md and docs/*.md resolves: the file exists, and
so does the heading an anchor names. Repository paths the docs quote as code exist too.

    .venv/bin/python -m pytest -q test/docs/test_docs_links.py
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from docs_markdown import DOCUMENTS, ROOT, Link, anchors, inline_code, links, relative, slug

RELATIVE_LINKS = [
    link for doc in DOCUMENTS for link in links(doc) if not re.match(r"^[a-z]+:", link.target)
]
# Inline code that is a path into this repository (no placeholders, no globs).
REPO_PATH = re.compile(
    r"^(bin|lib|lambda|runtime|trainer-image|configs|datasets|scripts|test|testing|docs|"
    r"\.github)/[^\s<>*$]*$"
)
QUOTED_PATHS = sorted(
    {
        (relative(doc), span)
        for doc in DOCUMENTS
        for span in inline_code(doc.read_text())
        if REPO_PATH.match(span)
    }
)


def resolve(link: Link) -> tuple[Path, str]:
    path, _, anchor = link.target.partition("#")
    file = link.document if path == "" else (link.document.parent / path).resolve()
    return file, anchor


def test_the_documents_exist_and_link_to_each_other() -> None:
    names = {relative(doc) for doc in DOCUMENTS}
    assert {"README.md", "CONTRIBUTING.md", "docs/architecture.md", "docs/security.md"} <= names
    assert len(RELATIVE_LINKS) > 30


@pytest.mark.parametrize("link", RELATIVE_LINKS, ids=str)
def test_relative_link_points_to_an_existing_file(link: Link) -> None:
    file, _ = resolve(link)
    assert file.exists(), f"{link}: {file} does not exist"
    assert ROOT in file.parents or file == ROOT, f"{link}: leaves the repository"


@pytest.mark.parametrize("link", [link for link in RELATIVE_LINKS if "#" in link.target], ids=str)
def test_anchor_names_a_heading_of_its_file(link: Link) -> None:
    file, anchor = resolve(link)
    assert file.suffix == ".md", f"{link}: anchors are checked in markdown only"
    assert anchor in anchors(file), f"{link}: no heading '#{anchor}' in {relative(file)}"


@pytest.mark.parametrize(("document", "path"), QUOTED_PATHS, ids=lambda v: str(v))
def test_quoted_repository_path_exists(document: str, path: str) -> None:
    assert (ROOT / path.rstrip("/")).exists(), f"{document}: `{path}` does not exist"


def test_slug_follows_github() -> None:
    assert slug("2. First deploy: the infrastructure, no GPU") == (
        "2-first-deploy-the-infrastructure-no-gpu"
    )
    assert slug("How it is tested without AWS or a GPU (the seams)") == (
        "how-it-is-tested-without-aws-or-a-gpu-the-seams"
    )
    assert slug("`make demo` and [links](x.md)") == "make-demo-and-links"
