"""Many runs of one scenario: `uocd devnet simulate S.toml --runs N --seed S0 --sweep K=V1,V2 --set K=V`.

The study is a grid of points (the cartesian product of the --sweep values, each with the --set
values) times N seeds S0 … S0+N−1; each (point, seed) is one task, numbered `run` in grid order,
seeds innermost. Every point is checked as a whole scenario before anything runs or is written.

A task runs the in-process engine in one process with no helper processes (`InlineExecutor`) on an
in-memory store and returns its tidy tables (`devnet.tables`); a run's results depend on its
scenario and seed alone, so they are the same whichever executor ran it. Tasks go to a local
process pool (`--workers`, default one per CPU) or, with `--ray ADDRESS`, to an existing Ray
cluster (`pip install 'uoc[ray]'`; every node of the cluster needs this package installed), at
most a few per worker at a time. Each finished run's rows are appended at once to OUT/<table>.csv
and OUT/<table>.parquet (a Parquet row group per batch of runs), so the driver holds no run it
has written and its memory stays flat in the number of runs; rows are in the order runs finish
(sort by `run`). Ctrl-C stops the workers, closes the files (valid, with every finished run) and
records `"interrupted": true` in OUT/study.json.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import grpc

from chain.store import MemoryStore
from node.heap import frozen_for_fork

from .errors import DevnetError, ScenarioError
from .overrides import (
    Point,
    compute_grid,
    compute_key_types,
    compute_variant,
    parse_sets,
    parse_sweeps,
)
from .report import format_cell
from .scenario import Scenario, read_scenario_data, read_scenario_text
from .simulate import InlineExecutor, get_helper_context, simulate
from .tables import (
    TABLES,
    compute_epoch_rows,
    compute_model_rows,
    compute_proposal_rows,
    compute_run_row,
)

log = logging.getLogger(__name__)

MAX_RUNS = 1_000_000  # tasks one study may hold
FLUSH_ROWS = 5_000  # rows of a table buffered before they are appended to its Parquet file (bounds the driver)
RAY_CONNECT_TIMEOUT_S = 3.0
FORMATS = ("csv", "parquet")
# a single run's files that a study in the same directory replaces (they would describe another run)
STALE_FILES = (
    "price.png",
    "error.png",
    "models.png",
    "revenue.png",
    "summary.json",
    "usage.csv",
    "state.db",
    "state.db-wal",
    "state.db-shm",
)


@dataclass(frozen=True)
class Task:
    """One run of a study: its number, grid point, seed and scenario (with that seed)."""

    run: int
    point: Point
    seed: int
    scenario: Scenario


@dataclass
class Study:
    """The checked plan of a study: its grid points (each a checked scenario) and seeds; its tasks are
    made one at a time as the executor takes them, so the plan's size does not grow with the runs."""

    scenario_path: str
    sets: Point
    axes: list[tuple[str, tuple[Any, ...]]]
    seeds: range
    points: list[tuple[Point, Scenario]] = field(default_factory=list)

    @property
    def size(self) -> int:
        """The number of runs."""
        return len(self.points) * len(self.seeds)

    def iter_tasks(self) -> Iterator[Task]:
        """Every task, numbered in grid order, seeds innermost."""
        run = 0
        for point, scenario in self.points:
            for seed in self.seeds:
                yield Task(run, point, seed, replace(scenario, seed=seed))
                run += 1


def plan_study(path: str, *, runs: int, seed: int | None, sets: list[str], sweeps: list[str]) -> Study:
    """Check the scenario, --set, --sweep, --runs and --seed, and every grid point as a scenario."""
    if not 1 <= runs <= MAX_RUNS:
        raise ScenarioError(f"--runs must be between 1 and {MAX_RUNS:,}, got {runs}")
    text = read_scenario_text(path)
    data = read_scenario_data(text, path)
    keys = compute_key_types(data)
    fixed = parse_sets(sets, keys)
    axes = parse_sweeps(sweeps, keys)
    swept = {key for key, _ in axes}
    if clash := [key for key, _ in fixed if key in swept]:
        raise ScenarioError(f"{clash[0]} is both --set and --sweep; give it once")
    grid = compute_grid(axes)
    if len(grid) * runs > MAX_RUNS:
        raise ScenarioError(f"{len(grid):,} grid points × {runs:,} runs is over {MAX_RUNS:,} runs")
    points = [(point, compute_variant(text, path, data, fixed + point)) for point in grid]
    first = points[0][1].seed if seed is None else seed
    if first < 0 or first + runs - 1 >= 2**63:
        raise ScenarioError(f"--seed must be between 0 and 2^63 - {runs}, got {first}")
    return Study(path, fixed, axes, range(first, first + runs), points)


def run_task(task: Task) -> dict[str, list[dict[str, Any]]]:
    """Run one task on the in-process engine in this process; its tables, each row led by the run's columns."""
    scenario = task.scenario
    votes: list[dict[str, Any]] = []
    result = simulate(scenario, MemoryStore(), InlineExecutor(), progress=False, votes=votes.extend)
    epochs = compute_epoch_rows(scenario, result.history)
    tables = {
        "epochs": epochs,
        "votes": votes,
        "models": compute_model_rows(result.models),
        "proposals": compute_proposal_rows(result.proposals),
        "runs": [compute_run_row(result.summary, epochs)],
    }
    lead = {"run": task.run, "seed": task.seed, **dict(task.point)}
    return {name: [{**lead, **row} for row in rows] for name, rows in tables.items()}


def compute_columns(study: Study) -> list[tuple[str, str]]:
    """The columns every table starts with: run, seed and the swept keys, typed by their values."""
    kinds = {bool: "bool", int: "int", str: "str"}
    return [("run", "int"), ("seed", "int")] + [(key, kinds[type(values[0])]) for key, values in study.axes]


class TableWriter:
    """One table appended run by run to OUT/<name>.csv and OUT/<name>.parquet."""

    def __init__(self, out: Path, name: str, columns: list[tuple[str, str]]) -> None:
        import pyarrow.parquet as pq

        self.columns = columns
        self.schema = compute_schema(columns)
        self.csv_file = (out / f"{name}.csv").open("w", newline="")
        self.csv = csv.writer(self.csv_file, lineterminator="\n")
        self.csv.writerow([c for c, _ in columns])
        self.parquet = pq.ParquetWriter(out / f"{name}.parquet", self.schema)
        self.buffer: list[dict[str, Any]] = []

    def append(self, rows: list[dict[str, Any]]) -> None:
        """Write rows to the CSV now and to the Parquet file once FLUSH_ROWS are buffered."""
        for row in rows:
            self.csv.writerow([format_cell(row.get(c)) for c, _ in self.columns])
        self.buffer.extend(rows)
        if len(self.buffer) >= FLUSH_ROWS:
            self.flush()

    def flush(self) -> None:
        """Append the buffered rows to the Parquet file as one row group."""
        import pyarrow as pa

        self.csv_file.flush()
        if self.buffer:
            names = [c for c, _ in self.columns]
            arrays = {c: [row.get(c) for row in self.buffer] for c in names}
            self.parquet.write_table(pa.table(arrays, schema=self.schema))
            self.buffer = []

    def close(self) -> None:
        """Flush and close both files (each then valid and complete)."""
        self.flush()
        self.parquet.close()
        self.csv_file.close()


def compute_schema(columns: list[tuple[str, str]]) -> Any:
    """The Arrow schema of a table, with the pandas metadata that reads its integer columns back as
    nullable Int64 (never float)."""
    import pandas as pd
    import pyarrow as pa

    dtypes = {"int": "Int64", "float": "float64", "bool": "boolean", "str": "string"}
    arrow = {"int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(), "str": pa.string()}
    frame = pd.DataFrame({c: pd.Series([], dtype=dtypes[kind]) for c, kind in columns})
    meta = pa.Schema.from_pandas(frame, preserve_index=False).metadata
    return pa.schema([pa.field(c, arrow[kind]) for c, kind in columns], metadata=meta)


def ignore_sigint() -> None:
    """A pool worker leaves Ctrl-C to the driver, which stops it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_local(tasks: Iterable[Task], workers: int) -> Generator[dict[str, list[dict[str, Any]]], None, None]:
    """Each task's tables, as its run finishes on a pool of `workers` local processes (forked while
    this process has no other thread, else spawned); the pool is stopped when the iteration ends."""
    with frozen_for_fork():  # their collections never walk (and so copy) the pages they inherit
        pool = get_helper_context().Pool(workers, initializer=ignore_sigint)
    try:
        yield from pool.imap_unordered(run_task, tasks, chunksize=1)
        pool.close()
    finally:
        pool.terminate()
        pool.join()


def check_ray_address(address: str) -> None:
    """Refuse an address no Ray head answers on, before anything runs: a TCP connect, then a gRPC
    handshake (Ray's GCS and its client server speak gRPC; `ray.init` on another kind of listener waits
    for minutes)."""
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise DevnetError(f"--ray {address}: give the Ray head's HOST:PORT (e.g. 10.0.0.5:6379)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=RAY_CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise DevnetError(f"--ray {address}: no Ray cluster answers there ({exc.strerror or exc})") from None
    channel = grpc.insecure_channel(target)
    try:
        grpc.channel_ready_future(channel).result(timeout=RAY_CONNECT_TIMEOUT_S)
    except grpc.FutureTimeoutError:
        raise DevnetError(
            f"--ray {address}: something listens there, but not a Ray head (no gRPC handshake in "
            f"{RAY_CONNECT_TIMEOUT_S:g} s)"
        ) from None
    finally:
        channel.close()


def connect_ray(address: str) -> Any:
    """The ray module, connected to the cluster at `address`."""
    try:
        import ray
    except ImportError:
        raise DevnetError("--ray needs Ray: pip install 'uoc[ray]'") from None
    check_ray_address(address)
    try:
        ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False, configure_logging=False)
    except Exception as exc:  # ray raises ConnectionError, RuntimeError, ValueError … by version
        raise DevnetError(f"--ray {address}: cannot join the Ray cluster: {str(exc).splitlines()[0]}") from None
    return ray


def run_ray(ray: Any, tasks: Iterable[Task]) -> Generator[dict[str, list[dict[str, Any]]], None, None]:
    """Each task's tables, as its run finishes on the Ray cluster; at most two tasks per CPU of the
    cluster are in flight; the others are cancelled when the iteration ends early."""
    remote = ray.remote(num_cpus=1, max_retries=0)(run_task)
    window = max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
    pending: list[Any] = []
    queue = iter(tasks)
    try:
        while True:
            while len(pending) < window and (task := next(queue, None)) is not None:
                pending.append(remote.remote(task))
            if not pending:
                return
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
        ray.shutdown()


class InterruptGuard:
    """A block that Ctrl-C does not cut: a SIGINT inside it is raised as KeyboardInterrupt at its end.

    A process started with SIGINT ignored (`cmd &` in a script: a background job without job control)
    keeps ignoring it, as the convention is: the guard then changes nothing."""

    def __init__(self) -> None:
        self.pending = False

    def _defer(self, signum: int, frame: Any) -> None:
        self.pending = True

    def __enter__(self) -> None:
        # signals are the main thread's; an ignored SIGINT stays ignored
        self.active = (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN
        )
        if self.active:
            self.previous = signal.signal(signal.SIGINT, self._defer)

    def __exit__(self, *exc: object) -> None:
        if self.active:
            signal.signal(signal.SIGINT, self.previous)
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt


def run_study(
    study: Study,
    out: Path,
    *,
    workers: int | None = None,
    ray_address: str | None = None,
    progress: bool | None = None,
    on_done: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Run every task, appending each finished run's rows to OUT's tables; write OUT/study.json.
    Ctrl-C stops the runs and keeps the finished ones (the manifest says so)."""
    from tqdm import tqdm

    tqdm.monitor_interval = 0
    ray = connect_ray(ray_address) if ray_address else None
    workers = (os.cpu_count() or 1) if workers is None else workers
    if workers < 1:
        raise DevnetError(f"--workers must be at least 1, got {workers}")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if ray is not None:
            ray.shutdown()
        raise DevnetError(f"--out {out}: cannot create the directory: {exc.strerror or exc}") from None
    for stale in STALE_FILES:
        (out / stale).unlink(missing_ok=True)
    lead = compute_columns(study)
    writers = {name: TableWriter(out, name, lead + list(columns)) for name, columns in TABLES.items()}
    started = time.perf_counter()
    done = 0
    interrupted = False
    guard = InterruptGuard()
    tasks = study.iter_tasks()
    results = run_ray(ray, tasks) if ray is not None else run_local(tasks, workers)
    manifest = {
        "scenario": study.scenario_path,
        "executor": f"ray {ray_address}" if ray is not None else f"local pool of {workers}",
        "set": dict(study.sets),
        "sweep": {key: list(values) for key, values in study.axes},
        "seeds": [study.seeds[0], study.seeds[-1]],
        "runs_planned": study.size,
    }
    try:
        with tqdm(
            total=study.size,
            unit="run",
            desc="runs",
            disable=(not progress) if progress is not None else None,
            file=sys.stderr,
        ) as bar:
            for tables in results:
                with guard:  # a Ctrl-C while a run's rows are written waits until all its tables have them
                    for name, rows in tables.items():
                        writers[name].append(rows)
                    done += 1  # counted inside: the deferred Ctrl-C is raised as the block ends, after it
                bar.update(1)
                if on_done is not None:
                    on_done(done)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        results.close()
        for writer in writers.values():
            writer.close()
    manifest.update(
        runs_done=done,
        interrupted=interrupted,
        elapsed_seconds=round(time.perf_counter() - started, 3),
    )
    (out / "study.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
