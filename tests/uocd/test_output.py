"""uocd's text tables fit the terminal (the widest columns cut first, with `…`), never off a terminal,
and `--output json` prints every document whole."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from devnet.report import EPOCH_COLUMNS
from node.client import Client
from uocd.devnet import SUMMARY_EPOCH_COLUMNS
from uocd.main import main
from uocd.output import ELLIPSIS, fit_widths, format_table, print_csv_table, render_rows, render_text
from uocd.query import describe_content, render_proposals

VOTER = "uoc1" + "q" * 38


def proposal(number: int) -> dict:
    """A proposal as GET /v1/governance/proposals lists it: thirteen fields, nested ones, a long address."""
    return {
        "id": number,
        "proposer": VOTER,
        "content": {
            "@type": "RegisterModel",
            "id": f"model-{number}-alpha",
            "units_of_compute_per_token": 10,
        },
        "status": "voting_period",
        "submit_height": 120,
        "submit_epoch": 12,
        "deposit_end_height": 140,
        "voting_start_height": 121,
        "voting_end_height": 141,
        "total_deposit": 25_000_000,
        "final_tally": {"yes": 700, "no": 150, "abstain": 200, "no_with_veto": 0},
        "result": None,
        "burned": False,
    }


PROPOSALS = {"proposals": [proposal(1), proposal(2), proposal(12)]}


@pytest.fixture
def no_terminal(monkeypatch):
    """stdout is not a terminal and $COLUMNS is unset."""
    monkeypatch.delenv("COLUMNS", raising=False)

    def not_a_terminal(fd: int = 1) -> os.terminal_size:
        raise OSError("not a terminal")

    monkeypatch.setattr(os, "get_terminal_size", not_a_terminal)


def test_widths_that_fit_are_left_alone():
    assert fit_widths([5, 10, 3], 18, [5, 5, 3]) == [5, 10, 3]
    assert fit_widths([5, 10, 3], 100, [5, 5, 3]) == [5, 10, 3]


def test_the_widest_columns_are_cut_first_to_a_common_cap_and_the_room_is_used():
    assert fit_widths([4, 60, 40, 8], 60, [4, 5, 5, 5]) == [4, 24, 24, 8]
    assert fit_widths([4, 60, 30, 8], 60, [4, 5, 5, 5]) == [4, 24, 24, 8]
    assert fit_widths([2, 30, 2], 20, [2, 5, 2]) == [2, 16, 2]
    assert fit_widths([10, 11, 40], 30, [5, 5, 5]) == [10, 10, 10]


def test_no_column_is_cut_below_its_floor():
    assert fit_widths([20, 20], 14, [8, 5]) == [8, 6]
    assert fit_widths([3, 40], 10, [3, 5]) == [3, 7]


def test_a_table_too_wide_even_for_its_headers_becomes_one_block_per_record():
    table = [[f"column_{i}" for i in range(8)], [str(i) for i in range(8)], ["x" * 90] * 8]
    text = format_table(table, width=50)
    blocks = text.split("\n\n")
    assert len(blocks) == 2 and max(map(len, text.splitlines())) <= 50
    assert blocks[0].splitlines()[3].split() == ["column_3", "3"]
    assert blocks[1].splitlines()[0].startswith("column_0  xxx") and blocks[1].splitlines()[0].endswith(ELLIPSIS)


def test_a_cut_cell_ends_in_an_ellipsis_and_every_line_fits():
    table = [["id", "content", "status"], ["1", "x" * 50, "passed"], ["22", "short", "voting_period"]]
    lines = format_table(table, width=40).splitlines()
    assert max(len(line) for line in lines) <= 40
    assert lines[1].split()[1].endswith(ELLIPSIS) and lines[2].split()[1] == "short"
    assert [line.split()[0] for line in lines] == ["id", "1", "22"]
    assert lines[2].split()[2] == "voting_period", "the short columns are not cut"


def test_a_table_that_fits_is_printed_whole():
    table = [["a", "bb"], ["ccc", "d"]]
    assert format_table(table, width=80) == "a    bb\nccc  d"
    assert format_table(table, width=80, right=True) == "  a  bb\nccc   d"


def test_every_field_of_the_proposals_fits_80_columns_as_records():
    lines = render_text(PROPOSALS, width=80).splitlines()
    assert max(map(len, render_text(PROPOSALS, width=10_000).splitlines())) > 300, "the table of the issue"
    assert lines[0] == "proposals:" and max(map(len, lines)) <= 80
    assert [line.split() for line in lines if line.split()[:1] == ["id"]] == [["id", "1"], ["id", "2"], ["id", "12"]]
    assert ["status", "voting_period"] in [line.split() for line in lines]


def test_the_proposals_table_shows_the_main_fields_whole_in_80_columns():
    lines = render_proposals(PROPOSALS, width=80).splitlines()
    assert max(map(len, lines)) <= 80 and ELLIPSIS not in "".join(lines)
    assert lines[0].split() == ["id", "status", "content", "voting_end", "deposit"]
    assert lines[1].split() == ["1", "voting_period", "RegisterModel", "model-1-alpha", "10", "141", "25000000"]
    assert render_proposals({"proposals": []}) == "no proposals"
    paged = render_proposals({**PROPOSALS, "pagination": {"next_key": "MDAwMDAwMDAwMDEz"}}, width=80)
    assert paged.splitlines()[-1] == "more: --page-key MDAwMDAwMDAwMDEz"


def test_the_proposals_table_cuts_the_content_first_on_a_narrow_terminal():
    lines = render_proposals(PROPOSALS, width=60).splitlines()
    assert max(map(len, lines)) <= 60
    rows = [line.split() for line in lines[1:]]
    assert [row[:2] for row in rows] == [["1", "voting_period"], ["2", "voting_period"], ["12", "voting_period"]]
    assert [row[-2:] for row in rows] == [["141", "25000000"]] * 3, "the short columns stay whole"
    assert all(row[2] == "RegisterModel" and row[3].endswith(ELLIPSIS) for row in rows)


def test_off_a_terminal_nothing_is_cut(no_terminal):
    rows = PROPOSALS["proposals"]
    assert render_rows(rows) == render_rows(rows, width=10_000)
    assert ELLIPSIS not in render_rows(rows)


def test_columns_sets_the_width(monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")
    assert max(map(len, render_rows(PROPOSALS["proposals"]).splitlines())) <= 60


def test_a_csv_table_is_right_aligned_and_cut_to_the_width(tmp_path: Path, capsys):
    path = tmp_path / "proposals.csv"
    path.write_text("id,model,status\n1,model-alpha,passed\n2," + "m" * 70 + ",rejected\n")
    print_csv_table(path, width=40)
    lines = capsys.readouterr().out.splitlines()
    assert max(map(len, lines)) <= 40 and [line.split()[0] for line in lines] == ["id", "1", "2"]
    assert lines[1].endswith("passed") and lines[2].endswith("rejected") and ELLIPSIS in lines[2]
    assert lines[1].index("model-alpha") + len("model-alpha") == lines[0].index("model") + len("model")


def test_uocd_query_proposals_fits_the_terminal_and_json_is_whole(monkeypatch, capsys):
    asked = []

    def get(self: Client, path: str, **params: object) -> dict:
        asked.append((path, params))
        return PROPOSALS

    monkeypatch.setattr(Client, "get", get)
    monkeypatch.setenv("COLUMNS", "60")
    assert main(["query", "proposals", "--node", "http://127.0.0.1:1"]) == 0
    text = capsys.readouterr().out
    assert max(map(len, text.splitlines())) <= 60 and ELLIPSIS in text
    assert main(["query", "proposals", "--node", "http://127.0.0.1:1", "--output", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == PROPOSALS
    assert [path for path, _ in asked] == ["/v1/governance/proposals"] * 2


def test_the_simulate_summary_prints_its_epoch_columns_as_one_table_in_80_columns(tmp_path: Path, capsys):
    path = tmp_path / "epochs.csv"
    values = {"epoch": "12", "price": "1234567", "fees_collected": "98765432", "chain_epoch": "13"}
    path.write_text(",".join(EPOCH_COLUMNS) + "\n" + ",".join(values.get(c, "1050") for c in EPOCH_COLUMNS) + "\n")
    print_csv_table(path, width=80, columns=SUMMARY_EPOCH_COLUMNS)
    header, row = capsys.readouterr().out.splitlines()
    assert header.split() == list(SUMMARY_EPOCH_COLUMNS) and max(len(header), len(row)) <= 80
    assert row.split()[SUMMARY_EPOCH_COLUMNS.index("fees_collected")] == "98765432"


@pytest.mark.parametrize(
    ("text", "keep", "shown"),
    [
        ("moniker\x1b]0;pwned\x07", "\n", "moniker\\x1b]0;pwned\\x07"),  # a terminal title change, escaped
        ("line one\nline two", "\n", "line one\nline two"),
        ("line one\nline two", "", "line one\\nline two"),
        ("abc\u202edef", "\n", "abc\\u202edef"),  # a right-to-left override
        ("caf\u00e9 <b>", "\n", "caf\u00e9 <b>"),  # printable text stays as it is
        ("c1\x9b31m", "\n", "c1\\x9b31m"),
    ],
)
def test_escape_controls_writes_control_characters_as_escapes(text, keep, shown):
    from uocd.output import escape_controls

    assert escape_controls(text, keep) == shown


def test_text_output_and_errors_never_pass_a_control_character_to_the_terminal(capsys):
    import argparse

    from uocd.output import emit, fail

    assert emit(argparse.Namespace(output="text"), {"moniker": "evil\x1b[2J", "peers": [{"id": "p\x07"}]}) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "evil\\x1b[2J" in out and "p\\x07" in out
    assert emit(argparse.Namespace(output="json"), {"moniker": "evil\x1b[2J"}) == 0
    assert json.loads(capsys.readouterr().out) == {"moniker": "evil\x1b[2J"}  # JSON escapes it itself
    assert fail("a node said: bad\nthing\x1b[1m") == 1
    assert capsys.readouterr().err == "uocd: error: a node said: bad\\nthing\\x1b[1m\n"


@pytest.mark.parametrize(
    ("content", "line"),
    [
        ({"@type": "RegisterModel", "id": "m", "units_of_compute_per_token": 10}, "RegisterModel m 10"),
        ({"@type": "RemoveModel", "id": "m"}, "RemoveModel m"),
        (
            {"@type": "ParamChange", "changes": {"miss_window": 3, "vote_mode": "commit_reveal"}},
            "ParamChange miss_window=3 vote_mode=commit_reveal",
        ),
    ],
)
def test_a_proposal_content_is_one_line_of_its_type_and_values(content, line):
    assert describe_content(content) == line
