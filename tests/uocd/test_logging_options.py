"""--log-level and --log-format: info and text by default, accepted before or after the subcommand."""

from __future__ import annotations

import pytest

from uocd.main import build_parser, compute_default_log_level


@pytest.mark.parametrize(
    ("argv", "level", "fmt"),
    [
        (["query", "status"], None, "text"),
        (["--log-level", "debug", "--log-format", "json", "query", "status"], "debug", "json"),
        (["query", "status", "--log-level", "warning", "--log-format", "json"], "warning", "json"),
        (["--log-level", "error", "start", "--home", "h", "--log-format", "json"], "error", "json"),
        (["tx", "gov", "vote", "1", "yes", "--log-level", "debug"], "debug", "text"),
    ],
)
def test_log_options_work_before_or_after_the_subcommand(argv, level, fmt):
    args = build_parser().parse_args(argv)
    assert (args.log_level, args.log_format) == (level, fmt)


def test_an_unknown_log_level_after_the_subcommand_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["query", "status", "--log-level", "loud"])
    assert info.value.code == 2 and "--log-level" in capsys.readouterr().err


@pytest.mark.parametrize(("command", "level"), [("start", "info"), ("query", "warning"), ("tx", "warning")])
def test_a_node_logs_at_info_by_default_and_a_client_command_at_warning(command, level):
    assert compute_default_log_level(command) == level
