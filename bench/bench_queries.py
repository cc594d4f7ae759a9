"""The cost of a page of a list query against the size of the state, on a SQLite store.

    .venv/bin/python bench/bench_queries.py [--small 1000] [--large 100000] [--repeat 200]

Writes `--small` and `--large` proposals (and as many epoch records) straight into two SQLite stores, then
times, best of 7 rounds of `--repeat` calls each, through `Application.query` as a node serves them:
the first page (100, the default limit), a page in the middle (by its `next_key`), a newest-first page,
a filtered page (`status=voting_period`, one proposal in a hundred), `history`, and one proposal with its
tally. Prints µs per call on each store and the ratio large / small: a page reads one key range, so the
ratio stays near 1 whatever the size of the state (before pagination, the list read every proposal).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chain.app import Application  # noqa: E402
from chain.encoding import canonical_json  # noqa: E402
from chain.queries import encode_page_key  # noqa: E402
from chain.rules import compute_index_key  # noqa: E402
from chain.store import CommitInfo  # noqa: E402
from node.store import SqliteStore  # noqa: E402
from tests.helpers import ADDR, make_genesis  # noqa: E402


def make_store(path: Path, count: int) -> Application:
    """An application on a fresh SQLite store with `count` proposals and `count` epoch records added."""
    app = Application(SqliteStore(path))
    app.init_chain(make_genesis({"a": 50, "b": 30}))
    info = app.store.last_commit()
    assert info is not None
    changes = []
    for i in range(1, count + 1):
        proposal = {
            "id": i,
            "proposer": ADDR["a"],
            "content": {"@type": "RegisterModel", "id": f"model-{i}", "units_of_compute_per_token": 1 + i % 50},
            "status": "voting_period" if i % 100 == 0 else "rejected",
            "submit_height": i,
            "submit_epoch": i // 10,
            "deposit_end_height": i + 20,
            "voting_start_height": i,
            "voting_end_height": i + 20,
            "total_deposit": 25_000_000,
            "final_tally": None,
            "result": None,
            "burned": False,
        }
        changes.append(("gov", compute_index_key(i), canonical_json(proposal)))
        record = {"epoch": i, "price": 100 + i % 7, "total_power": 80, "voters": 2, "non_voters": 0}
        record.update({"min_vote": 100, "max_vote": 107, "registry_version": 0})
        changes.append(("hist", compute_index_key(i), canonical_json(record)))
    app.store.write_block(CommitInfo(info.height, info.app_hash, info.lthash), changes)  # reads only: hash unused
    return app


def time_call(call, repeat: int) -> float:
    """Best of 7 rounds: µs per call."""
    best = float("inf")
    for _ in range(7):
        started = time.perf_counter()
        for _ in range(repeat):
            call()
        best = min(best, (time.perf_counter() - started) / repeat)
    return best * 1e6


def cases(app: Application, count: int) -> dict[str, object]:
    """The timed calls on one store."""
    middle = encode_page_key(compute_index_key(count // 2))
    return {
        "proposals, first page": lambda: app.query("proposals"),
        "proposals, a middle page": lambda: app.query("proposals", **{"pagination.key": middle}),
        "proposals, newest first": lambda: app.query("proposals", **{"pagination.reverse": True}),
        "proposals?status=voting_period": lambda: app.query("proposals", status="voting_period"),
        "history, first page": lambda: app.query("history"),
        "proposal/{id} with tally": lambda: app.query(f"proposal/{count // 2}"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        small = make_store(Path(tmp) / "small.db", args.small)
        large = make_store(Path(tmp) / "large.db", args.large)
        print(f"{'query':34} {args.small:>9,} {args.large:>9,}  ratio")
        small_cases, large_cases = cases(small, args.small), cases(large, args.large)
        for name in small_cases:
            a = time_call(small_cases[name], args.repeat)
            b = time_call(large_cases[name], args.repeat)
            print(f"{name:34} {a:8.0f}µs {b:8.0f}µs  {b / a:5.2f}")
        whole = []  # what the unpaginated route read per request: every proposal (timed once)
        for app in (small, large):
            started = time.perf_counter()
            app.query_all("proposals", **{"pagination.limit": 1000})
            whole.append((time.perf_counter() - started) * 1e6)
        print(f"{'every proposal (the old answer)':34} {whole[0]:8.0f}µs {whole[1]:8.0f}µs  {whole[1] / whole[0]:5.2f}")


if __name__ == "__main__":
    main()
