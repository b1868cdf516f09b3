"""The documents operators follow say exactly what the commands do: every ``closedloop``
line of README.md and docs/OPERATORS.md parses, and the first hour runs as written."""

from __future__ import annotations

import io
import json
import re
import shlex
import sys
from pathlib import Path

import pytest

from closedloop.streams.cli import build_parser, main
from closedloop.streams.ledger import URL_ENV

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = (REPO / "README.md", REPO / "docs" / "OPERATORS.md")


def _command_lines(text: str) -> list[str]:
    """The ``closedloop …`` lines of the document's code blocks, comments and redirections
    dropped, continuation lines joined."""
    lines, joined = [], ""
    for block in re.findall(r"```\n(.*?)```", text, flags=re.S):
        for raw in block.splitlines():
            line = joined + raw.strip()
            if line.endswith("\\"):
                joined = line[:-1] + " "
                continue
            joined = ""
            if line.startswith("closedloop ") and not re.match(r"closedloop [a-z ]+: ", line):
                # (a line such as "closedloop alerts list: no district …" is a message)
                lines.append(re.split(r"\s+(?:#|>)\s", line)[0].strip())
    return lines


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_every_command_line_of_the_document_parses(document: Path) -> None:
    lines = _command_lines(document.read_text("utf-8"))
    assert len(lines) >= 8
    parser = build_parser()
    for line in lines:
        argv = shlex.split(line)[1:]
        if "|" in " ".join(argv) or "…" in line or "[" in line:
            continue  # a synopsis, not a command to type
        args, extra = parser.parse_known_args(argv)
        assert extra == [] and callable(getattr(args, "_run", None)), line


def test_the_first_hour_runs_as_the_readme_writes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a fresh clone's shell: no ledger, no Kafka
    monkeypatch.chdir(tmp_path)
    for name in (URL_ENV, "CLOSEDLOOP_KAFKA", "CLOSEDLOOP_ACTIONS_VIA"):
        monkeypatch.delenv(name, raising=False)
    text = (REPO / "README.md").read_text("utf-8")
    first_hour = text[text.index("## The first hour"):text.index("Then feed it")]
    lines = _command_lines(first_hour)
    assert lines[0] == "closedloop demo"
    chosen: dict[str, str] = {}
    for line in lines:
        argv = shlex.split(line)[1:]
        if argv[:2] == ["console", "serve"]:  # a server runs until stopped: the console's
            args, extra = build_parser().parse_known_args(argv)  # tests start it
            assert extra == [] and callable(getattr(args, "_run", None)), line
            continue
        if "ALERT_ID" in argv or "SUBJECT" in argv:
            capsys.readouterr()
            assert main(["alerts", "list", "--open", "--format", "json"]) == 0
            alert = json.loads(capsys.readouterr().out)[0]
            chosen = {"ALERT_ID": alert["alert_id"], "SUBJECT": alert["subject"]}
            argv = [chosen.get(arg, arg) for arg in argv]
        with monkeypatch.context() as patch:
            patch.setattr(sys, "stdout", io.TextIOWrapper(io.BytesIO(), encoding="utf-8"))
            # when each command runs as written: then it succeeds
            assert main(argv) == 0, line
    assert chosen, "the first hour acts on an alert"
