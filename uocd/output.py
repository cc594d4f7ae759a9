"""What the commands print: the whole document as JSON with `--output json`, else text for people,
whose tables fit the terminal.

A table wider than the terminal has its widest columns cut first and their long cells end in `…`,
as `gh` does (one too wide even for its headers becomes one block per record); off a terminal (a
pipe, a file) and with `--output json` nothing is ever cut. The width is `shutil.get_terminal_size`'s:
`$COLUMNS`, else the terminal's, else no limit."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from chain.fields import is_free_text

GAP = "  "
ELLIPSIS = "…"
MIN_COLUMN = 16  # a column is cut to no fewer characters than this and its header: short ones stay whole
EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C


def escape_controls(text: str, keep: str = "\n") -> str:
    """`text` with every control character (C0, DEL, C1) and bidirectional override but those in `keep`
    written as a Python escape (\\x1b, \\u202e): a node's strings cannot move a terminal's cursor or
    recolour it, nor reorder what is shown."""
    return "".join(c if c in keep or is_free_text(c) else repr(c)[1:-1] for c in text)


def fail(message: str) -> int:
    """Report a failure as the one line `uocd: error: MESSAGE` on stderr (control characters escaped, line
    breaks included); the exit status 1."""
    print(f"uocd: error: {escape_controls(message, keep='')}", file=sys.stderr)
    return EXIT_FAILURE


def emit(args: argparse.Namespace, doc: Any, text: Callable[[Any], str] | None = None) -> int:
    """Print a result: JSON with --output json (which escapes control characters itself), else `text(doc)`
    (or a generic rendering) with its control characters escaped; exit status 0."""
    if args.output == "json":
        print(json.dumps(doc, indent=2))
    else:
        print(escape_controls((text or render_text)(doc)))
    return 0


def terminal_width() -> int | None:
    """The width to fit: $COLUMNS, else the terminal's; None (no limit) when stdout is not a terminal."""
    return shutil.get_terminal_size(fallback=(0, 0)).columns or None


def render_text(doc: Any, indent: str = "", width: int | None = None) -> str:
    """A generic human rendering: `key: value` lines, lists of objects as tables (fit to `width`,
    default the terminal's)."""
    if isinstance(doc, list):
        if doc and all(isinstance(d, dict) for d in doc):
            return render_rows(doc, indent, width)
        return indent + (", ".join(map(str, doc)) if doc else "(none)")
    if not isinstance(doc, dict):
        return indent + str(doc)
    lines = []
    for key, value in doc.items():
        if isinstance(value, (dict, list)) and value:
            lines.append(f"{indent}{key}:")
            lines.append(render_text(value, indent + "  ", width))
        else:
            lines.append(f"{indent}{key}: {'-' if value is None or value == [] else value}")
    return "\n".join(lines)


def render_rows(rows: list[dict[str, Any]], indent: str = "", width: int | None = None) -> str:
    """A list of flat objects as an aligned table (nested values as JSON), fit to `width` (default the
    terminal's)."""
    header = list(dict.fromkeys(k for r in rows for k in r))

    def cell(value: Any) -> str:
        return "-" if value is None else json.dumps(value) if isinstance(value, (dict, list)) else str(value)

    return format_table([header, *[[cell(r.get(k)) for k in header] for r in rows]], indent=indent, width=width)


def format_table(
    table: Sequence[Sequence[str]], *, indent: str = "", width: int | None = None, right: bool = False
) -> str:
    """Rows of cells (the header first) as aligned columns, left-aligned or `right`-aligned, cut to fit
    `width` characters per line (default the terminal's; see fit_widths). A table that cannot fit even
    with every column cut to its header is printed one record per block instead, as `psql`'s `\\x auto`."""
    limit = width if width is not None else terminal_width()
    natural = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    widths = natural
    if limit is not None:
        floors = [min(w, max(len(h), MIN_COLUMN)) for w, h in zip(natural, table[0])]
        room = limit - len(indent) - len(GAP) * (len(natural) - 1)
        if sum(floors) > room:
            return format_records(table, indent=indent, width=limit)
        widths = fit_widths(natural, room, floors)
    pad = str.rjust if right else str.ljust
    lines = (indent + GAP.join(pad(cut(c, w), w) for c, w in zip(row, widths)) for row in table)
    return "\n".join(line.rstrip() for line in lines)


def format_records(table: Sequence[Sequence[str]], *, indent: str, width: int) -> str:
    """The rows of a table as blocks of `header: cell` lines, one block per row, cut to `width`."""
    header, rows = table[0], table[1:]
    key = max(map(len, header))
    room = max(width - len(indent) - key - len(GAP), MIN_COLUMN)
    blocks = (
        "\n".join(f"{indent}{h.ljust(key)}{GAP}{cut(c, room)}".rstrip() for h, c in zip(header, row)) for row in rows
    )
    return "\n\n".join(blocks)


def fit_widths(widths: list[int], room: int, floors: list[int]) -> list[int]:
    """Column widths summing to at most `room` (if the `floors` allow it): the widest columns are cut
    first, to a common cap, none below its floor; what the cap leaves over goes back to the cut ones."""
    if sum(widths) <= room:
        return widths
    cap = max(widths)
    while cap > 0 and sum(max(min(w, cap), f) for w, f in zip(widths, floors)) > room:
        cap -= 1
    fitted = [max(min(w, cap), f) for w, f in zip(widths, floors)]
    spare = room - sum(fitted)
    for i, w in enumerate(widths):  # left to right
        grow = max(0, min(spare, w - fitted[i]))
        fitted[i] += grow
        spare -= grow
    return fitted


def cut(text: str, width: int) -> str:
    """`text` in at most `width` characters, ending in `…` when it was longer."""
    return text if len(text) <= width else text[: max(width - 1, 0)] + ELLIPSIS


def print_csv_table(
    path: Path, limit: int = 12, width: int | None = None, columns: Sequence[str] | None = None
) -> None:
    """Print a CSV file (its `columns`, default all) as a right-aligned table fit to `width` (default the
    terminal's), eliding the middle of one longer than `limit` rows."""
    rows = [r.split(",") for r in path.read_text().splitlines()]
    keep = [rows[0].index(c) for c in columns] if columns else range(len(rows[0]))
    header, body = [rows[0][i] for i in keep], [[r[i] for i in keep] for r in rows[1:]]
    if len(body) > limit:
        body = body[: limit // 2] + [[ELLIPSIS] * len(header)] + body[-limit // 2 :]
    print(format_table([header, *body], width=width, right=True))


def program_name(argv0: str | None = None) -> str:
    """How to run this program again from the current directory, for hints the user pastes: `uocd`
    when that is the `uocd` on PATH, else the path it was run by (`.venv/bin/uocd`), else
    `python -m uocd` with this interpreter."""
    argv0 = sys.argv[0] if argv0 is None else argv0
    path = Path(argv0)
    if path.name != "uocd":
        return f"{shell_path(Path(sys.executable))} -m uocd"
    on_path = shutil.which("uocd")
    if on_path is not None and Path(on_path).resolve() == path.resolve():
        return "uocd"
    return shell_path(path)


def shell_path(path: Path) -> str:
    """`path` relative to the current directory when it lies below it (`.venv/bin/uocd`), else absolute."""
    absolute = path if path.is_absolute() else Path.cwd() / path
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)
