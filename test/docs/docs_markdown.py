"""The documents the docs tests read, and the parts of markdown they look at.

.venv/bin/python -m pytest -q test/docs      # also: make test-docs
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [
    ROOT / "README.md",
    ROOT / "CONTRIBUTING.md",
    *sorted((ROOT / "docs").glob("*.md")),
]

FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"(`+)(.+?)\1", re.DOTALL)
LINK = re.compile(r"(?<!!)\[([^\]]*)\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Link:
    document: Path
    target: str

    def __str__(self) -> str:
        return f"{self.document.relative_to(ROOT)}: ({self.target})"


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def code_blocks(text: str) -> list[str]:
    """Fenced code blocks, with backslash-continued lines joined into one."""
    return [re.sub(r"\\\n\s*", " ", block) for block in FENCE.findall(text)]


def without_code_blocks(text: str) -> str:
    return FENCE.sub("", text)


def inline_code(text: str) -> list[str]:
    """Inline code spans outside fenced blocks, line breaks folded to spaces."""
    prose = without_code_blocks(text)
    return [" ".join(span.split()) for _, span in INLINE_CODE.findall(prose)]


def links(document: Path) -> list[Link]:
    prose = INLINE_CODE.sub("", without_code_blocks(document.read_text()))
    return [Link(document, target) for _, target in LINK.findall(prose)]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(document: Path) -> set[str]:
    """Every heading anchor of a markdown file, with GitHub's -1, -2 for repeated headings."""
    seen: dict[str, int] = {}
    result = set()
    for _, heading in HEADING.findall(without_code_blocks(document.read_text())):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result
