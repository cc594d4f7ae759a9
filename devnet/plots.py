"""Every plot of the simulator, in one style: one run's price.png, models.png and revenue.png, a
study's price.png (median and 5–95% band across runs, one panel per grid point) and error.png
(the price error against the honest true cost across runs: a histogram, one bar per swept value, or
a heat map over two swept parameters).

One run's price.png draws the price against the honest true cost, the honest votes' band apart from
the other strategies' votes (one marker each), and marks joins, leaves, proposals and slashes.
When some votes lie far outside the price's range (an extreme voter at 10^18), the axis is broken:
the main panel stays linear around the price, and thin log-scale panels above and below hold the
off-scale votes, so the median stays readable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .scenario import Scenario

MAX_PLOTTED_PROVIDERS = 8  # revenue.png shows the providers paid most; the others as one band
MAX_PANELS = 24  # a study's price.png draws at most this many grid points
OFF_SCALE = 3  # a vote more than 3 times above the price's range (or below a third of it) goes to a side panel
STRATEGY_STYLE = {  # (color, marker) of each strategy's votes
    "fixed": ("tab:orange", "o"),
    "extreme": ("tab:red", "x"),
    "copycat": ("tab:purple", "s"),
    "cartel": ("tab:brown", "^"),
    "sybil": ("tab:pink", "v"),
    "free_rider": ("tab:gray", "d"),
    "highest vote": ("tab:red", "^"),  # the network engine's votes off the price's scale
    "lowest vote": ("tab:red", "v"),
}
PRICE_COLOR = "tab:blue"
HONEST_COLOR = "tab:green"
TRUE_COST_STYLE = {"color": "black", "linestyle": "--", "linewidth": 1.2}


def use_style() -> Any:
    """pyplot on the headless backend, with the style every plot here shares."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "figure.dpi": 110,
            "font.size": 9,
            "axes.titlesize": 10,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "legend.fontsize": "small",
            "legend.frameon": False,
        }
    )
    return plt


def new_plot() -> tuple[Any, Any]:
    """A figure and axes of the size every single-panel plot here uses."""
    return use_style().subplots(figsize=(9, 4.5))


def save_plot(
    fig: Any, ax: Any, path: Path, ylabel: str, title: str, xlabel: str = "epoch", *, legend_outside: bool = False
) -> None:
    """Label the axes, add the legend (beside the axes if `legend_outside`: it never covers the
    data), write the PNG and free the figure."""
    import matplotlib.pyplot as plt

    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if legend_outside:
        handles, labels = ax.get_legend_handles_labels()
        ax.legend(handles[::-1], labels[::-1], loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def compute_events(scenario: Scenario, votes: VoteMarks | None) -> list[tuple[str, int, str]]:
    """The run's events as (kind, epoch, label): joins, leaves, proposals, and slashes (from the votes
    table: a validator's slash count rising at an epoch's end)."""
    events = [("join", v.join_epoch, v.name) for v in scenario.validators if not v.is_genesis()]
    events += [("leave", v.leave_epoch, v.name) for v in scenario.validators if v.leave_epoch is not None]
    events += [("proposal", p.at_epoch, f"#{k + 1}") for k, p in enumerate(scenario.proposals)]
    return events + [("slash", epoch, name) for epoch, name in (votes.slashes if votes else [])]


EVENT_STYLE = {  # kind → (marker, color, height in axes fraction, legend label)
    "join": ("^", "tab:green", 0.97, "joins"),
    "leave": ("v", "tab:olive", 0.97, "leaves"),
    "proposal": ("D", "tab:cyan", 0.91, "proposals"),
    "slash": ("X", "tab:red", 0.85, "slashes"),
}


def draw_events(ax: Any, events: list[tuple[str, int, str]]) -> None:
    """Each event as a marker along the top of `ax` at its epoch, labelled, with a faint vertical line."""
    transform = ax.get_xaxis_transform()
    labelled = set()
    for kind, epoch, label in events:
        marker, color, height, name = EVENT_STYLE[kind]
        ax.axvline(epoch, color=color, alpha=0.25, linewidth=0.8)
        ax.scatter(
            [epoch],
            [height],
            marker=marker,
            color=color,
            s=28,
            transform=transform,
            clip_on=False,
            zorder=5,
            label=None if kind in labelled else name,
        )
        labelled.add(kind)
        ax.annotate(label, (epoch, height), xycoords=transform, xytext=(4, -3), textcoords="offset points", fontsize=7)


def mark_break(ax: Any, where: str) -> None:
    """Diagonal break marks on the top or bottom edge of `ax`."""
    y = 1 if where == "top" else 0
    kwargs = {"marker": [(-1, -0.5), (1, 0.5)], "markersize": 8, "linestyle": "none", "color": "k", "clip_on": False}
    ax.plot([0, 1], [y, y], transform=ax.transAxes, **kwargs)


class VoteMarks:
    """What price.png draws of the votes table, gathered row by row (`add`): the honest votes' lowest and
    highest at each epoch they set the price of, and every other vote (O(epochs) plus the others' votes)."""

    def __init__(self) -> None:
        self.honest: dict[int, tuple[int, int]] = {}  # epoch the ballot priced → (min, max) of the honest votes
        self.others: list[tuple[int, int, str]] = []  # (that epoch, vote, strategy)
        self.slashes: list[tuple[int, str]] = []  # (epoch, validator): its slash count rose at that epoch's end
        self.slash_counts: dict[str, int] = {}

    def add(self, row: dict[str, Any]) -> None:
        """Count one row of the votes table (a validator without a vote or power draws no vote)."""
        if row["slashes"] > self.slash_counts.get(row["validator"], 0):
            self.slashes.append((row["epoch"], row["validator"]))
        self.slash_counts[row["validator"]] = row["slashes"]
        vote, x = row["vote"], row["epoch"] + 1
        if vote is None or not row["power"]:
            return
        if row["strategy"] != "honest":
            self.others.append((x, vote, row["strategy"]))
            return
        low, high = self.honest.get(x, (vote, vote))
        self.honest[x] = (min(low, vote), max(high, vote))


def plot_run_prices(
    path: Path, scenario: Scenario, epochs: list[dict[str, Any]], votes: VoteMarks | None, title: str
) -> None:
    """One run's price against the honest true cost, the honest votes' band, the others' votes and the
    events (see the module's docstring); without `votes` (the network engine) the band of all votes."""
    plt = use_style()
    xs = [r["epoch"] for r in epochs]
    prices = [r["price"] for r in epochs]
    truth = [(r["epoch"], r["honest_true_cost"]) for r in epochs if r["honest_true_cost"] is not None]
    band: list[tuple[int, int, int]] = []
    others: list[tuple[int, int, str]] = []
    if votes is None:  # the network engine: no votes per validator, only the lowest and highest in force
        band_label = "votes in force (min–max)"
        spread = [(r["epoch"], r["min_vote"], r["max_vote"]) for r in epochs if r["min_vote"] is not None]
        near = prices + [t for _, t in truth]
        scale = list(near)
        low_edge, high_edge = min(near) / OFF_SCALE, max(near) * OFF_SCALE
        for x, low, high in spread:  # an off-scale end is a marker in a side panel; the band runs off the axis
            if low < low_edge:
                others.append((x, low, "lowest vote"))
            if high > high_edge:
                others.append((x, high, "highest vote"))
            band.append((x, low, high))
            scale += [v for v in (low, high) if low_edge <= v <= high_edge]
    else:
        band_label = "honest votes in force (min–max)"
        others = votes.others
        band = [(x, low, high) for x, (low, high) in sorted(votes.honest.items())]
        scale = prices + [t for _, t in truth] + [v for b in band for v in b[1:]]
    lo, hi = min(scale), max(scale)
    margin = (hi - lo) * 0.12 or hi * 0.05 or 1
    bottom, top = max(0, lo - margin), hi + margin
    above = [o for o in others if o[1] > max(top, hi * OFF_SCALE)]
    below = [o for o in others if o[1] < lo / OFF_SCALE]
    inside = [o for o in others if o not in above and o not in below]
    if inside:
        top = max(top, max(o[1] for o in inside) + margin)
        bottom = min(bottom, max(0, min(o[1] for o in inside) - margin))
    panels = (["above"] if above else []) + ["main"] + (["below"] if below else [])
    fig, axes = plt.subplots(
        len(panels),
        1,
        sharex=True,
        figsize=(11, 5.5 if len(panels) > 1 else 4.8),
        gridspec_kw={"height_ratios": [4 if p == "main" else 1 for p in panels]},
        layout="constrained",
        squeeze=False,
    )
    axes = dict(zip(panels, axes[:, 0]))
    main = axes["main"]
    if band:
        bx, blo, bhi = zip(*((x, float(low), float(high)) for x, low, high in band))
        main.fill_between(bx, blo, bhi, step="post", alpha=0.25, color=HONEST_COLOR, label=band_label, linewidth=0)
    if truth:
        tx, ty = zip(*truth)
        main.step(tx, ty, where="post", label="honest true cost (stake-weighted median)", **TRUE_COST_STYLE)
    main.step(xs, prices, where="post", color=PRICE_COLOR, linewidth=2, label="unit-of-compute price")
    strategies = sorted({o[2] for o in others})
    for strategy in strategies:
        color, marker = STRATEGY_STYLE.get(strategy, ("tab:gray", "."))
        for name, ax in axes.items():
            group = [o for o in {"above": above, "main": inside, "below": below}[name] if o[2] == strategy]
            if group:
                ax.scatter(
                    [o[0] for o in group], [float(o[1]) for o in group], color=color, marker=marker, s=14, zorder=4
                )
        label = strategy if votes is None else f"{strategy} votes in force"
        main.scatter([], [], color=color, marker=marker, s=14, label=label)
    main.set_ylim(bottom, top)
    for name in ("above", "below"):
        if name in axes:
            ax = axes[name]
            ax.set_yscale("log")
            values = [float(o[1]) for o in (above if name == "above" else below)]
            ax.set_ylim(min(values) / 3, max(values) * 3)
            ax.set_ylabel("off scale", fontsize=7)
            mark_break(ax, "bottom" if name == "above" else "top")
            mark_break(main, "top" if name == "above" else "bottom")
    draw_events(main, compute_events(scenario, votes))
    main.set_xlim(xs[0], xs[-1])
    main.set_ylabel("ngonka per unit of compute")
    axes[panels[-1]].set_xlabel("epoch")
    axes[panels[0]].set_title(title)
    fig.legend(loc="outside right upper")
    fig.savefig(path)
    plt.close(fig)


def plot_models(path: Path, models: list[tuple[int, list[dict[str, Any]]]], title: str) -> None:
    """Each model's price per token over the epochs in which it is active (nothing if none ever is),
    the y axis from 0, the legend beside the axes."""
    series: dict[str, list[tuple[int, int]]] = {}
    for epoch, active in models:
        for m in active:
            series.setdefault(m["id"], []).append((epoch, int(m["price_per_token_str"])))
    if not series:
        return
    fig, ax = new_plot()
    for model in sorted(series):
        epochs, prices = zip(*series[model])
        ax.step(epochs, prices, where="post", linewidth=2, marker=".", label=model)
    ax.set_xlim(models[0][0], models[-1][0])
    ax.set_ylim(0, max(p for s in series.values() for _, p in s) * 1.1)
    save_plot(fig, ax, path, "ngonka per token", title, legend_outside=True)


def plot_revenue(path: Path, rows: list[list[Any]], providers: list[str], epoch_count: int, title: str) -> None:
    """Each provider's payout per epoch of the scenario (the charge less the protocol fee), stacked, the
    providers paid most first and the others as one band; the protocol fees as a line."""
    from matplotlib.ticker import MaxNLocator, StrMethodFormatter

    epochs = list(range(epoch_count))
    payout: dict[str, dict[int, int]] = {name: {} for name in providers}
    fees: dict[int, int] = {}
    for epoch, _, provider, *_rest, paid, fee in rows:
        payout[provider][epoch] = payout[provider].get(epoch, 0) + paid
        fees[epoch] = fees.get(epoch, 0) + fee
    # the providers paid most first, ties in file order (the sort is stable)
    ranked = sorted((name for name in providers if payout[name]), key=lambda n: -sum(payout[n].values()))
    shown, rest = ranked[:MAX_PLOTTED_PROVIDERS], ranked[MAX_PLOTTED_PROVIDERS:]
    series = [(name, [payout[name].get(e, 0) for e in epochs]) for name in shown]
    if rest:
        others = [sum(payout[n].get(e, 0) for n in rest) for e in epochs]
        series.append((f"{len(rest)} other providers", others))
    fig, ax = new_plot()
    bottom = [0] * len(epochs)
    for name, values in series:
        ax.bar(epochs, values, bottom=bottom, label=f"{name} (payout)")
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.plot(epochs, [fees.get(e, 0) for e in epochs], color="black", marker="o", label="protocol fees (all providers)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    ax.set_xlim(-0.6, epoch_count - 0.4)
    ax.set_ylim(0, max(bottom + [1]) * 1.05)
    save_plot(fig, ax, path, "ngonka per epoch", title, legend_outside=True)


def format_point(keys: Sequence[str], values: Sequence[Any]) -> str:
    """key=value, … of a grid point (the last part of a dotted key)."""
    return ", ".join(f"{key}={value}" for key, value in zip(keys, values)) or "all runs"


def plot_study_prices(path: Path, frame: Any, swept: list[str], title: str) -> None:
    """Per grid point (one panel each, a grid of rows × columns over two swept keys): the median price
    across runs per epoch, its 5–95% band, and the honest true cost."""
    plt = use_style()
    groups = list(frame.groupby(swept, sort=True)) if swept else [((), frame)]
    shown = groups[:MAX_PANELS]
    if len(swept) == 2:
        rows, cols = frame[swept[0]].nunique(), frame[swept[1]].nunique()
    else:
        cols = min(3, len(shown))
        rows = math.ceil(len(shown) / cols)
    if rows * cols > MAX_PANELS:
        cols = min(3, len(shown))
        rows = math.ceil(len(shown) / cols)
    fig, axes = plt.subplots(
        rows,
        cols,
        sharex=True,
        sharey=True,
        figsize=(4.2 * cols + 2.6, 2.9 * rows + 0.6),
        squeeze=False,
        layout="constrained",
    )
    lows, highs = [], []
    for ax, (key, group) in zip(axes.flat, shown):
        values = key if isinstance(key, tuple) else (key,)
        q = group.groupby("epoch")["price"].quantile([0.05, 0.5, 0.95]).unstack()
        truth = group.groupby("epoch")["honest_true_cost"].median()
        runs = group["run"].nunique()
        ax.fill_between(
            q.index,
            q[0.05],
            q[0.95],
            step="post",
            color=PRICE_COLOR,
            alpha=0.25,
            linewidth=0,
            label="price, 5–95% of runs",
        )
        ax.step(q.index, q[0.5], where="post", color=PRICE_COLOR, linewidth=1.8, label="price, median of runs")
        ax.step(truth.index, truth, where="post", label="honest true cost", **TRUE_COST_STYLE)
        ax.set_title(f"{format_point(swept, values)} ({runs} runs)", fontsize=8)
        settled = q[q.index > 0]
        lows += [settled[0.05].min(), truth.min()]
        highs += [settled[0.95].max(), truth.max()]
    for ax in axes.flat[len(shown) :]:
        ax.set_visible(False)
    lo, hi = float(min(lows)), float(max(highs))
    margin = (hi - lo) * 0.15 or hi * 0.05 or 1
    axes[0, 0].set_ylim(max(0.0, lo - margin), hi + margin)
    for ax in axes[:, 0]:
        ax.set_ylabel("ngonka per unit of compute")
    for ax in axes[-1, :]:
        ax.set_xlabel("epoch")
    more = f" (first {MAX_PANELS} of {len(groups)} points)" if len(groups) > len(shown) else ""
    fig.suptitle(title + more)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper")
    fig.savefig(path)
    plt.close(fig)


def plot_study_errors(path: Path, runs: Any, swept: list[str], title: str) -> None:
    """The mean |price error| of each run against the honest true cost, across runs: a histogram (no
    sweep), the median and 5–95% range per value (one swept key), or a heat map of the median over
    the first two swept keys (the others pooled), each cell annotated with its 5–95% range."""
    plt = use_style()
    metric = "mean_abs_price_error_bps"
    label = "mean |price − honest true cost| over the epochs (bps)"
    data = runs.dropna(subset=[metric])
    if len(swept) >= 2:
        fig, ax = plt.subplots(figsize=(9, 5.5), layout="constrained")
        stats = data.groupby(swept[:2])[metric].quantile([0.05, 0.5, 0.95]).unstack()
        ys, xs = sorted(data[swept[0]].unique()), sorted(data[swept[1]].unique())
        grid = [[stats[0.5].get((y, x), math.nan) for x in xs] for y in ys]
        image = ax.imshow(grid, cmap="viridis", aspect="auto", origin="lower")
        for i, y in enumerate(ys):
            for j, x in enumerate(xs):
                if (y, x) in stats.index:
                    s = stats.loc[(y, x)]
                    ax.text(
                        j,
                        i,
                        f"{s[0.5]:.0f}\n[{s[0.05]:.0f}–{s[0.95]:.0f}]",
                        ha="center",
                        va="center",
                        fontsize=8,
                        color="black" if image.norm(s[0.5]) > 0.5 else "white",  # readable on viridis
                    )
        ax.set_xticks(range(len(xs)), [str(x) for x in xs])
        ax.set_yticks(range(len(ys)), [str(y) for y in ys])
        ax.set_xlabel(swept[1])
        ax.set_ylabel(swept[0])
        ax.grid(False)
        fig.colorbar(image, ax=ax, label=f"median across runs of the {label}")
        pooled = f"; pooled over {', '.join(swept[2:])}" if len(swept) > 2 else ""
        ax.set_title(f"{title}: median [5–95%] across runs{pooled}")
    elif swept:
        fig, ax = plt.subplots(figsize=(9, 4.5), layout="constrained")
        stats = data.groupby(swept[0])[metric].quantile([0.05, 0.5, 0.95]).unstack().sort_index()
        xs = list(range(len(stats)))
        ax.errorbar(
            xs,
            stats[0.5],
            yerr=[stats[0.5] - stats[0.05], stats[0.95] - stats[0.5]],
            fmt="o",
            color=PRICE_COLOR,
            capsize=4,
            label="median across runs, bars 5–95%",
        )
        ax.set_xticks(list(xs), [str(v) for v in stats.index])
        ax.set_xlabel(swept[0])
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
        ax.set_title(title)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        fig, ax = plt.subplots(figsize=(9, 4.5), layout="constrained")
        values = data[metric].astype(float)
        ax.hist(values, bins=min(40, max(5, len(values) // 5)), color=PRICE_COLOR, alpha=0.7, label="runs")
        for q, style in ((0.5, "-"), (0.05, ":"), (0.95, ":")):
            ax.axvline(values.quantile(q), color="black", linestyle=style, label=f"{int(q * 100)}th percentile")
        ax.set_xlabel(label)
        ax.set_ylabel("runs")
        ax.set_title(title)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.savefig(path)
    plt.close(fig)


SHOCK_COLOR = "tab:orange"


def plot_mechanisms(
    path: Path,
    scenario: Scenario,
    mechanisms: Sequence[str],
    rows: list[list[Any]],
    shocks: list[tuple[int, int, str]],
    title: str,
) -> None:
    """mechanisms.png: one column per pricing mechanism, price per token (top) and utilization
    (bottom) of each model against epoch, the stability band dashed and the demand shocks shaded."""
    from matplotlib.ticker import MaxNLocator, StrMethodFormatter

    plt = use_style()
    models = sorted({row[2] for row in rows})
    colors = {model: f"C{n % 10}" for n, model in enumerate(models)}
    fig, axes = plt.subplots(2, len(mechanisms), figsize=(4.4 * len(mechanisms) + 0.6, 6.8), sharex=True, squeeze=False)
    params = scenario.params
    band = (float(params.utilization_band_low), float(params.utilization_band_high))
    for col, mechanism in enumerate(mechanisms):
        price_ax, util_ax = axes[0][col], axes[1][col]
        for model in models:
            points = [(r[0], r[3], float(r[4])) for r in rows if r[1] == mechanism and r[2] == model]
            if not points:
                continue
            epochs = [p[0] for p in points]
            price_ax.plot(epochs, [p[1] for p in points], color=colors[model], marker=".", label=model)
            util_ax.plot(epochs, [p[2] for p in points], color=colors[model], marker=".", label=model)
        shock_label = "demand shock: " + "; ".join(f"{label}, epochs {a}–{b}" for a, b, label in shocks)
        for ax in (price_ax, util_ax):
            for n, (first, last, _label) in enumerate(shocks):
                ax.axvspan(
                    first - 0.5,
                    last + 0.5,
                    color=SHOCK_COLOR,
                    alpha=0.15,
                    linewidth=0,
                    label=shock_label if n == 0 else None,
                )
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlim(-0.5, scenario.epochs - 0.5)
        for n, bound in enumerate(band):
            util_ax.axhline(
                bound, color="gray", linestyle="--", linewidth=0.9, label="stability band (dynamic)" if n == 0 else None
            )
        price_ax.set_title(f"pricing_mode = {mechanism}")
        price_ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
        price_ax.set_ylim(bottom=0)
        util_ax.set_ylim(bottom=0)
        util_ax.set_xlabel("epoch")
    for row in range(2):
        top = max(ax.get_ylim()[1] for ax in axes[row])
        for ax in axes[row]:
            ax.set_ylim(0, top)
    axes[0][0].set_ylabel("price paid, ngonka per token")
    axes[1][0].set_ylabel("utilization (tokens settled / capacity)")
    handles, labels = axes[1][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), bbox_to_anchor=(0.5, 0.0))
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path)
    plt.close(fig)
