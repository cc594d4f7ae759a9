"""The command reference `docs/cli.md`, generated from the argparse tree (so from chain's message and
query declarations too): `python -m uocd.reference > docs/cli.md`. A test fails while it is stale."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from .main import build_parser

HEADER = """# `uocd` command reference

Generated from the command line itself by `.venv/bin/python -m uocd.reference > docs/cli.md`
(a test fails while this file is stale). `uocd COMMAND --help` says more about each.
"""


def get_subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The subcommands of a parser by name (none for a command that runs)."""
    groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(groups[0].choices) if groups else {}


def get_help_lines(parser: argparse.ArgumentParser) -> dict[str, str]:
    """The one-line help of each subcommand of a parser, by name."""
    groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not groups:
        return {}
    return {choice.dest: choice.help or "" for choice in groups[0]._choices_actions}


def iter_commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = (), summary: str = ""
) -> Iterator[tuple[tuple[str, ...], str, argparse.ArgumentParser]]:
    """(path, one-line help, parser) of every command that runs, in the parser's order."""
    commands = get_subcommands(parser)
    if not commands:
        yield path, summary, parser
    helps = get_help_lines(parser)
    for name, sub in commands.items():
        if name in helps:  # not an alias (`q` of `query`): aliases have no help line of their own
            yield from iter_commands(sub, (*path, name), helps[name])


def compute_usage(parser: argparse.ArgumentParser) -> str:
    """A command's usage line, on one line and at a fixed width (independent of the terminal)."""
    formatter = argparse.HelpFormatter(parser.prog, width=10_000)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups, prefix="")
    return " ".join(formatter.format_help().split())


def compute_reference() -> str:
    """docs/cli.md: one entry per command that runs, with its usage line and its one-line help."""
    parser = build_parser()
    parser.prog = "uocd"
    lines = [HEADER]
    for path, summary, sub in iter_commands(parser):
        sub.prog = " ".join(("uocd", *path))
        lines.append(f"## `uocd {' '.join(path)}`\n")
        if summary:
            lines.append(f"{summary[0].upper()}{summary[1:]}.\n")
        lines.append(f"```\n{compute_usage(sub)}\n```\n")
    return "\n".join(lines)


if __name__ == "__main__":
    print(compute_reference(), end="")
