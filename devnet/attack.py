"""`uocd devnet attack`: how much stake it takes to move the price, and what it costs.

For each share `s` of the total stake and each vote mode, the scenario runs on the in-process
engine with its `honest` validators only (every other validator and the proposals are left out)
and one attacker holding `s` of the stake: the honest stakes are scaled by `q − p` and the attacker
holds `H × p` (`s = p/q`, `H` the honest stake), so the share is exact. The attacker is a cartel of
one validator aiming at twice the price the others vote (ATTACK_TARGET_BPS), shaded into the reward band
while it holds at most half of the power (`devnet.strategies`): below half, the median depends
only on the order of the votes, so a vote at the band's top edge moves it as far as any higher
vote would. Each run is compared with the honest-only median of its ballot at every epoch
(`price_vs_honest`): the largest deviation in bps, and whether the price ever left the honest
votes' [min, max]. What the attack cost: `rewards_lost`, what the attacker's stake would have
earned were every vote paid alike (its share of all the rewards paid) minus what it earned, and
the jails and slashes it took.
"""

from __future__ import annotations

import csv
import re
import sys
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from chain.params import VOTE_MODES

from .errors import DevnetError, ScenarioError
from .plots import new_plot, save_plot
from .scenario import Scenario, ValidatorSpec
from .simulate import run_inproc

ATTACK_TARGET_BPS = 10_000  # the attacker aims at twice the price the others vote
MAX_SHARES = 100  # shares one command may run (each is one run per vote mode)
DECIMAL = re.compile(r"^(0|[1-9][0-9]*)?(\.[0-9]{1,6})?$")
ATTACK_COLUMNS = (
    "share",
    "vote_mode",
    "max_deviation_bps",
    "mean_deviation_bps",
    "outside_honest_range",
    "epochs_outside_honest_range",
    "attacker_rewards",
    "rewards_lost",
    "jails",
    "slashed",
)


def parse_share(text: str, what: str) -> Fraction:
    """A stake share: a decimal strictly between 0 and 1 (at most six decimals)."""
    if not text or not DECIMAL.match(text) or text == ".":
        raise DevnetError(f"--share: {what} must be a decimal such as 0.05, got {text!r}")
    value = Fraction(text)
    if not 0 < value < 1:
        raise DevnetError(f"--share: {what} must lie strictly between 0 and 1, got {text}")
    return value


def parse_shares(text: str) -> list[Fraction]:
    """--share FROM:TO:STEP (FROM ≤ TO, each in (0, 1), STEP > 0) or a single share."""
    parts = text.split(":")
    if len(parts) == 1:
        return [parse_share(parts[0], "the share")]
    if len(parts) != 3:
        raise DevnetError(f"--share must be FROM:TO:STEP such as 0.05:0.60:0.05, or one share; got {text!r}")
    low, high = parse_share(parts[0], "FROM"), parse_share(parts[1], "TO")
    if not parts[2] or not DECIMAL.match(parts[2]) or Fraction(parts[2]) <= 0:
        raise DevnetError(f"--share: STEP must be a decimal above 0 such as 0.05, got {parts[2]!r}")
    step = Fraction(parts[2])
    if low > high:
        raise DevnetError(f"--share: FROM ({parts[0]}) must not exceed TO ({parts[1]})")
    count = int((high - low) / step) + 1
    if count > MAX_SHARES:
        raise DevnetError(f"--share {text} makes {count} shares; at most {MAX_SHARES}")
    return [low + k * step for k in range(count)]


def format_share(share: Fraction) -> str:
    """A share as its shortest decimal (shares have at most six decimals)."""
    return f"{float(share):.6f}".rstrip("0").rstrip(".")


def compute_attack_scenario(scenario: Scenario, share: Fraction, vote_mode: str) -> Scenario:
    """The scenario's honest validators, their stakes scaled, and one attacker with exactly `share`
    of the stake, in `vote_mode`; no other validator, no proposals."""
    honest = [v for v in scenario.validators if v.strategy == "honest"]
    if not honest:
        raise ScenarioError(f"{scenario.path}: has no honest validator to attack")
    scale = share.denominator - share.numerator
    attacker_stake = sum(v.stake for v in honest) * share.numerator
    if max(attacker_stake, *(v.stake * scale for v in honest)) > 2**53:
        raise ScenarioError(f"{scenario.path}: stakes too large to give an attacker exactly {format_share(share)}")
    names = {v.name for v in honest}
    name = next(n for n in ("attacker", *(f"attacker-{k}" for k in range(2, len(names) + 3))) if n not in names)
    attacker = ValidatorSpec(
        name=name, stake=attacker_stake, strategy="cartel", group=name, target_bps=ATTACK_TARGET_BPS, direction="up"
    )
    return replace(
        scenario,
        validators=(*(replace(v, stake=v.stake * scale) for v in honest), attacker),
        proposals=(),
        vote_mode=vote_mode,
    )


def compute_attack_row(share: Fraction, vote_mode: str, summary: dict[str, Any]) -> dict[str, Any]:
    """One row of attack.csv from a run's summary."""
    honest = summary["price_vs_honest"]
    strategies = summary["strategies"]
    attacker = strategies["cartel"]
    total = sum(figures["rewards"] for figures in strategies.values())
    return {
        "share": format_share(share),
        "vote_mode": vote_mode,
        "max_deviation_bps": honest["max_deviation_bps"],
        "mean_deviation_bps": honest["mean_deviation_bps"],
        "outside_honest_range": honest["epochs_outside_honest_range"] > 0,
        "epochs_outside_honest_range": honest["epochs_outside_honest_range"],
        "attacker_rewards": attacker["rewards"],
        "rewards_lost": round(float(total * share) - attacker["rewards"], 2),
        "jails": attacker["jails"],
        "slashed": attacker["slashed"],
    }


def run_attack(
    scenario: Scenario, shares: list[Fraction], out: Path, *, progress: bool | None = None
) -> dict[str, Any]:
    """Run the scenario with an attacker at each share in each vote mode; write attack.csv and
    attack.png in `out` (each run's own files in out/runs/MODE-SHARE) and return the report."""
    from tqdm import tqdm

    rows = []
    runs = [(mode, share) for mode in VOTE_MODES for share in shares]
    with tqdm(
        runs, unit="run", desc="attacking", disable=(not progress) if progress is not None else None, file=sys.stderr
    ) as bar:
        for mode, share in bar:
            attacked = compute_attack_scenario(scenario, share, mode)
            summary = run_inproc(attacked, out / "runs" / f"{mode}-{format_share(share)}", progress=False)
            rows.append(compute_attack_row(share, mode, summary))
    first = {
        mode: next((r["share"] for r in rows if r["vote_mode"] == mode and r["outside_honest_range"]), None)
        for mode in VOTE_MODES
    }
    write_attack_csv(out / "attack.csv", rows)
    plot_attack(out / "attack.png", rows, first, f"{Path(scenario.path).name}: the cost to move the price")
    return {
        "scenario": scenario.path,
        "target_bps": ATTACK_TARGET_BPS,
        "first_outside_honest_range": first,
        "rows": rows,
        "dir": str(out),
    }


def write_attack_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """One row per share and vote mode; booleans as true/false, a missing figure as an empty cell."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(ATTACK_COLUMNS)
        for row in rows:
            writer.writerow(
                [
                    "true" if v is True else "false" if v is False else "" if v is None else v
                    for v in (row[c] for c in ATTACK_COLUMNS)
                ]
            )


def plot_attack(path: Path, rows: list[dict[str, Any]], first: dict[str, str | None], title: str) -> None:
    """The largest deviation of the price from the honest median against the attacker's share, one
    line per vote mode, the 50% line marked and where the price first left the honest range."""
    from matplotlib.ticker import FuncFormatter

    fig, ax = new_plot()
    styles = {"open": ("tab:red", "o", "-"), "commit_reveal": ("tab:blue", "s", "--")}
    for mode in dict.fromkeys(r["vote_mode"] for r in rows):
        points = [(float(r["share"]) * 100, r["max_deviation_bps"] or 0) for r in rows if r["vote_mode"] == mode]
        color, marker, line = styles.get(mode, ("tab:gray", "^", ":"))
        xs, ys = zip(*points)
        ax.plot(xs, ys, color=color, marker=marker, linestyle=line, label=f"vote_mode = {mode}")
        if first.get(mode) is not None:
            x = float(first[mode]) * 100  # type: ignore[arg-type]
            y = next(v for u, v in points if u == x)
            ax.annotate(
                f"leaves the honest range at {x:g}% ({mode})",
                (x, y),
                textcoords="offset points",
                xytext=(-230, -30 if mode == "open" else -45),
                arrowprops={"arrowstyle": "->", "color": color},
                color=color,
                bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.85, "edgecolor": color},
            )
    ax.axvline(50, color="black", linestyle=":", label="half of the stake")
    ax.set_yscale("symlog", linthresh=100)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
    ax.text(
        0.01,
        0.02,
        f"attacker: one cartel validator aiming at {ATTACK_TARGET_BPS // 100}% above the others' median, "
        "shaded into the reward band while it holds at most half of the power",
        transform=ax.transAxes,
        fontsize=8,
        color="dimgray",
    )
    save_plot(
        fig,
        ax,
        path,
        "largest deviation of the price from the honest median (bps)",
        title,
        "attacker's share of the stake (%)",
    )
