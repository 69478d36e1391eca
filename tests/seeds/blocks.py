"""The code blocks of a seed document, read from the document itself, so that a test of each
block runs the text the seed's users copy, and a block added to or removed from the seed changes
the count the tests check."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

DOCUMENTS = Path(__file__).resolve().parent / "documents"
"""The five seed documents as their systems publish them (``thea.txt`` keeps its garbled
accents), one file per seed."""


@dataclass(frozen=True)
class Block:
    """One code block: its language tag, first line number (1-based) and text."""

    language: str
    line: int
    text: str

    @property
    def id(self) -> str:
        """A stable test id: the line the block starts on."""
        return f"line{self.line}"


_FENCE = re.compile(r"^```(\w*)\s*$")


def fenced_blocks(path: Path) -> list[Block]:
    """Every ```-fenced block of ``path``, in order, with its language tag ("" when none)."""
    blocks: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opened = _FENCE.match(lines[index].strip())
        if opened is None:
            index += 1
            continue
        start, body = index + 1, []
        index += 1
        while index < len(lines) and lines[index].strip() != "```":
            body.append(lines[index])
            index += 1
        blocks.append(Block(opened.group(1), start + 1, "\n".join(body) + "\n"))
        index += 1
    return blocks


def document(seed: str) -> Path:
    """The document of ``seed``: ``opusagent``, ``thea``, ``llmproc``, ``messaging``, ``logillm``."""
    path = DOCUMENTS / f"{seed}.txt"
    if not path.is_file():
        raise FileNotFoundError(f"no seed document {path.name} in {DOCUMENTS}")
    return path
