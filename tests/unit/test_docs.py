"""The documents a newcomer reads: short enough to read, and every link in them leads somewhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = sorted([REPO / "README.md", *REPO.glob("docs/*.md"), *REPO.glob("deploy/*.md"),
                    *REPO.glob("schemas/*.md")])
# [text](target) where target is a relative path, optionally with an #anchor
_LINK = re.compile(r"\[[^\]]*\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_the_readme_is_what_a_newcomer_needs_at_most_250_lines() -> None:
    lines = (REPO / "README.md").read_text("utf-8").splitlines()
    assert len(lines) <= 250
    # its first lines are the two commands that do all the set-up
    assert lines[2].strip().startswith("make demo")
    assert lines[3].strip().startswith("make test")


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_leads_to_a_file(document: Path) -> None:
    targets = [t for t in _LINK.findall(document.read_text("utf-8"))
               if not re.match(r"[a-z]+:", t)]
    missing = [t for t in targets if not (document.parent / t).exists()]
    assert missing == []
