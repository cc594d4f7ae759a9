"""Scenario files (SPEC §9): what `parse_scenario` accepts, and one located error for everything else.

Every malformed case below is the BASE scenario with some of its lines replaced, so the line the
error must name is written next to the case.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chain.money import MAX_NGONKA
from devnet.errors import DevnetError, ScenarioError
from devnet.scenario import (
    DemandSpec,
    ProposalSpec,
    Scenario,
    ValidatorSpec,
    compute_scenario_chain_id,
    load_scenario,
    parse_scenario,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PATH = "scenarios/case.toml"

# Line numbers (1-based) are part of the tests below: edit with care.
BASE_LINES = [
    "# a small scenario; the tests replace single lines",  # 1
    "seed = 5",  # 2
    "epochs = 10",  # 3
    "epoch_length = 2",  # 4
    "",  # 5
    "[[validators]]",  # 6
    'name = "alice"',  # 7
    "stake = 100",  # 8
    'strategy = "honest"',  # 9
    "true_cost = 1000",  # 10
    "noise_bps = 100",  # 11
    "",  # 12
    "[[validators]]",  # 13
    'name = "bob"',  # 14
    "stake = 50",  # 15
    'strategy = "fixed"',  # 16
    "price = 7",  # 17
    'denom = "micoin"',  # 18
    "join_epoch = 2",  # 19
    "leave_epoch = 8",  # 20
]
BASE = "\n".join(BASE_LINES) + "\n"


def variant(**replace: str) -> str:
    """BASE with line N replaced by `replace["l<N>"]` (an empty string blanks the line)."""
    lines = list(BASE_LINES)
    for key, text in replace.items():
        lines[int(key[1:]) - 1] = text
    return "\n".join(lines) + "\n"


# An example in the shape of the issue: every documented key, every strategy.
ISSUE_EXAMPLE = """\
description = "every key of the scenario format"
seed = 42
epochs = 30
epoch_length = 5
default_unit_of_compute_price = 1000
chain_id = "uoc-sim-issue"

[[validators]]
name = "honest-a"
stake = 400
strategy = "honest"
true_cost = 1200
noise_bps = 500

[[validators]]
name = "fixed_b"
stake = 300
strategy = "fixed"
price = 2
denom = "uicoin"
vote_every = 3

[[validators]]
name = "quiet"
stake = 150
strategy = "silent"
leave_epoch = 20

[[validators]]
name = "byz"
stake = 100
strategy = "extreme"
low = 1
high = 1000000000000
join_epoch = 5
leave_epoch = 25
"""


# ---------------------------------------------------------------------------------------------
# Accepted scenarios
# ---------------------------------------------------------------------------------------------


def test_base_scenario_of_these_tests_parses_into_the_written_values() -> None:
    scenario = parse_scenario(BASE, PATH)
    assert scenario == Scenario(
        path=PATH,
        seed=5,
        epochs=10,
        epoch_length=2,
        default_unit_of_compute_price=100,
        chain_id=compute_scenario_chain_id(BASE),
        description="",
        validators=(
            ValidatorSpec(name="alice", stake=100, strategy="honest", true_cost=1000, noise_bps=100),
            ValidatorSpec(name="bob", stake=50, strategy="fixed", price=7, denom="micoin", join_epoch=2, leave_epoch=8),
        ),
        voting_period=2,  # defaults to epoch_length
    )


def test_vote_mode_defaults_to_open_and_commit_reveal_reaches_the_genesis_params() -> None:
    assert parse_scenario(BASE, PATH).params.vote_mode == "open"
    scenario = parse_scenario(variant(l5='vote_mode = "commit_reveal"'), PATH)
    assert (scenario.vote_mode, scenario.params.vote_mode) == ("commit_reveal", "commit_reveal")


def test_a_scenario_without_a_chain_id_gets_one_of_its_own_from_its_text() -> None:
    ids = {parse_scenario(text, PATH).chain_id for text in (BASE, BASE + "\n# another scenario\n", BASE + " ")}
    assert len(ids) == 3 and all(re.fullmatch(r"uoc-sim-[0-9a-f]{12}", i) for i in ids)
    assert parse_scenario(BASE, PATH).chain_id == parse_scenario(BASE, "elsewhere/x.toml").chain_id
    assert len({load_scenario(p).chain_id for p in EXAMPLES.glob("*.toml")}) == len(list(EXAMPLES.glob("*.toml")))


def test_issue_example_with_every_key_parses_into_the_written_values() -> None:
    s = parse_scenario(ISSUE_EXAMPLE, "issue.toml")
    assert (s.seed, s.epochs, s.epoch_length, s.default_unit_of_compute_price) == (42, 30, 5, 1000)
    assert (s.chain_id, s.description) == ("uoc-sim-issue", "every key of the scenario format")
    by_name = {v.name: v for v in s.validators}
    assert [v.name for v in s.validators] == ["honest-a", "fixed_b", "quiet", "byz"]
    honest, fixed, quiet, byz = (by_name[n] for n in ("honest-a", "fixed_b", "quiet", "byz"))
    assert (honest.strategy, honest.stake, honest.true_cost, honest.noise_bps) == ("honest", 400, 1200, 500)
    assert (fixed.strategy, fixed.price, fixed.denom, fixed.vote_every) == ("fixed", 2, "uicoin", 3)
    assert (quiet.strategy, quiet.join_epoch, quiet.leave_epoch) == ("silent", 0, 20)
    assert (byz.strategy, byz.low, byz.high, byz.join_epoch, byz.leave_epoch) == ("extreme", 1, 10**12, 5, 25)
    assert [v.is_genesis() for v in s.validators] == [True, True, True, False]
    assert byz.is_active(5) and byz.is_active(24) and not byz.is_active(4) and not byz.is_active(25)


@pytest.mark.parametrize(
    ("example", "epochs", "epoch_length", "default_price", "names"),
    [
        ("basic.toml", 50, 10, 100, ["alice", "bob", "carol", "dave", "mallory"]),
        ("byzantine.toml", 60, 5, 1000, ["honest-1", "honest-2", "honest-3", "byz-high", "byz-low"]),
        ("churn.toml", 80, 4, 500, ["founder", "lazy", "quiet", "newcomer", "tourist"]),
        ("demand.toml", 10, 8, 100, ["alice", "bob", "carol", "erin"]),
    ],
)
def test_every_shipped_example_scenario_loads(
    example: str, epochs: int, epoch_length: int, default_price: int, names: list[str]
) -> None:
    path = EXAMPLES / example
    scenario = load_scenario(path)
    assert scenario.path == str(path)
    assert (scenario.epochs, scenario.epoch_length, scenario.default_unit_of_compute_price) == (
        epochs,
        epoch_length,
        default_price,
    )
    assert [v.name for v in scenario.validators] == names
    assert scenario == parse_scenario(path.read_text(encoding="utf-8"), str(path))


def test_basic_example_keeps_the_micoin_joiner_schedule_and_vote_every() -> None:
    by_name = {v.name: v for v in load_scenario(EXAMPLES / "basic.toml").validators}
    mallory = by_name["mallory"]
    assert (mallory.strategy, mallory.price, mallory.denom, mallory.join_epoch, mallory.leave_epoch) == (
        "fixed",
        7,
        "micoin",
        3,
        30,
    )
    assert by_name["carol"].vote_every == 3
    assert by_name["dave"].strategy == "silent"


def test_extreme_validator_without_bounds_votes_between_1_and_the_largest_ngonka_amount() -> None:
    text = 'epochs = 3\n[[validators]]\nname = "x"\nstake = 1\nstrategy = "extreme"\n'
    (spec,) = parse_scenario(text, PATH).validators
    assert (spec.low, spec.high) == (1, MAX_NGONKA - 1)


@pytest.mark.parametrize(
    ("denom", "price"),
    [("ngonka", MAX_NGONKA - 1), ("icoin", (MAX_NGONKA - 1) // 10**9), ("gonka", 1), ("nicoin", 5), ("mgonka", 3)],
)
def test_fixed_price_accepts_every_denomination_up_to_the_ngonka_limit(denom: str, price: int) -> None:
    text = 'epochs = 3\n[[validators]]\nname = "x"\nstake = 1\nstrategy = "fixed"\n'
    text += f'price = {price}\ndenom = "{denom}"\n'
    (spec,) = parse_scenario(text, PATH).validators
    assert (spec.price, spec.denom) == (price, denom)


# ---------------------------------------------------------------------------------------------
# Malformed scenarios: one ScenarioError naming the file, the exact line and the key
# ---------------------------------------------------------------------------------------------

MALFORMED = [
    # (case id, scenario text, line the error must name, key the error must name, words it must contain)
    ("invalid TOML syntax", variant(l15="stake = "), 15, None, "not valid TOML"),
    ("key written twice (TOML)", variant(l12="stake = 3"), 12, None, "not valid TOML"),
    ("unknown top-level key", variant(l5="speed = 3"), 5, "speed", "not a known key"),
    ("unknown validator key", variant(l12='colour = "red"'), 12, "validators[0].colour", "not a known key"),
    ("stake given as a string", variant(l15='stake = "400"'), 15, "validators[1].stake", '"400"'),
    ("stake 0", variant(l8="stake = 0"), 8, "validators[0].stake", "got 0"),
    ("negative noise_bps", variant(l11="noise_bps = -5"), 11, "validators[0].noise_bps", "-5"),
    ("unknown strategy", variant(l9='strategy = "greedy"'), 9, "validators[0].strategy", "greedy"),
    ("price on an honest validator", variant(l12="price = 5"), 12, "validators[0].price", "does not apply"),
    ("noise_bps on a fixed validator", variant(l20="noise_bps = 5"), 20, "validators[1].noise_bps", "does not apply"),
    ("low on a fixed validator", variant(l20="low = 5"), 20, "validators[1].low", "does not apply"),
    ("duplicate validator names", variant(l14='name = "alice"'), 14, "validators[1].name", "unique"),
    ("bad characters in a name", variant(l7='name = "Alice Smith"'), 7, "validators[0].name", "Alice Smith"),
    ("name too long", variant(l14=f'name = "{"b" * 33}"'), 14, "validators[1].name", "1-32"),
    ("unknown denom for fixed", variant(l18='denom = "dollars"'), 18, "validators[1].denom", "dollars"),
    (
        "price overflowing 2^63 ngonka in icoin",
        variant(l17="price = 10000000000", l18='denom = "icoin"'),
        17,
        "validators[1].price",
        "2^63",
    ),
    ("join_epoch equal to epochs", variant(l19="join_epoch = 10"), 19, "validators[1].join_epoch", "got 10"),
    ("join_epoch after epochs", variant(l19="join_epoch = 11"), 19, "validators[1].join_epoch", "got 11"),
    ("leave_epoch equal to join_epoch", variant(l20="leave_epoch = 2"), 20, "validators[1].leave_epoch", "got 2"),
    ("leave_epoch before join_epoch", variant(l20="leave_epoch = 1"), 20, "validators[1].leave_epoch", "got 1"),
    ("leave_epoch after the last epoch", variant(l20="leave_epoch = 11"), 20, "validators[1].leave_epoch", "got 11"),
    ("vote_every 0", variant(l12="vote_every = 0"), 12, "validators[0].vote_every", "got 0"),
    ("bool where an int is expected (top level)", variant(l4="epoch_length = true"), 4, "epoch_length", "true"),
    ("bool where an int is expected (validator)", variant(l17="price = false"), 17, "validators[1].price", "false"),
    ("float where an int is expected (top level)", variant(l3="epochs = 10.0"), 3, "epochs", "10.0"),
    ("float where an int is expected (validator)", variant(l15="stake = 50.5"), 15, "validators[1].stake", "50.5"),
    ("epochs 0", variant(l3="epochs = 0"), 3, "epochs", "got 0"),
    ("negative seed", variant(l2="seed = -1"), 2, "seed", "-1"),
    ("chain_id not a string", variant(l5="chain_id = 7"), 5, "chain_id", "string"),
    ("unknown vote_mode", variant(l5='vote_mode = "secret"'), 5, "vote_mode", "open, commit_reveal"),
    ("vote_mode not a string", variant(l5="vote_mode = 1"), 5, "vote_mode", "string"),
    ("default price 0", variant(l5="default_unit_of_compute_price = 0"), 5, "default_unit_of_compute_price", "got 0"),
    ("validator without a stake (points at its header)", variant(l15=""), 13, "validators[1].stake", "required"),
    ("validator without a name (points at its header)", variant(l7=""), 6, "validators[0].name", "required"),
    (
        "validators not an array of tables",
        "\n".join(BASE_LINES[:4]) + "\nvalidators = 3\n",
        5,
        "validators",
        "[[validators]]",
    ),
]


@pytest.mark.parametrize(
    ("text", "line", "key", "words"),
    [pytest.param(text, line, key, words, id=case) for case, text, line, key, words in MALFORMED],
)
def test_malformed_scenario_raises_one_scenario_error_naming_file_line_and_key(
    text: str, line: int, key: str | None, words: str
) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, PATH)
    message = str(info.value)
    assert "\n" not in message, f"the error must be one line: {message!r}"
    prefix = f"{PATH}:{line}: " + (f"{key} " if key else "")
    assert message.startswith(prefix), f"expected {prefix!r} at the start of {message!r}"
    assert words in message
    assert isinstance(info.value, DevnetError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        pytest.param(variant(l3=""), "epochs", "required", id="missing epochs"),
        pytest.param("\n".join(BASE_LINES[:5]) + "\n", "validators", "[[validators]]", id="no [[validators]] at all"),
    ],
)
def test_missing_required_key_raises_an_error_naming_file_and_key(text: str, key: str, words: str) -> None:
    # The key is not written anywhere, so there is no line to point at: the error starts with "path: key".
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, PATH)
    message = str(info.value)
    assert message.startswith(f"{PATH}: {key} ") or re.match(rf"{re.escape(PATH)}:\d+: {re.escape(key)} ", message)
    assert words in message
    assert "\n" not in message


def test_scenario_without_a_genesis_validator_is_refused_at_a_line_of_the_file() -> None:
    # alice (the only genesis validator) now joins at epoch 1 too, so nobody is bonded at genesis.
    # The error must still point at a line: alice's join_epoch (12) or the first [[validators]] (6).
    text = variant(l12="join_epoch = 1")
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, PATH)
    message = str(info.value)
    assert "genesis" in message
    assert "validators" in message
    assert re.match(rf"{re.escape(PATH)}:(6|12): ", message), f"no line of the file in {message!r}"


@pytest.mark.parametrize("noise_bps", [1, 100, 9_999])
def test_honest_true_cost_whose_noisy_vote_can_overflow_2_63_ngonka_is_refused(noise_bps: int) -> None:
    # The simulator votes true_cost * (10000 + noise) // 10000 with noise up to +noise_bps; with
    # true_cost near 2^63 that is over the ngonka limit, so the scenario cannot be simulated.
    text = variant(l10=f"true_cost = {MAX_NGONKA - 1}", l11=f"noise_bps = {noise_bps}")
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, PATH)
    message = str(info.value)
    assert re.match(rf"{re.escape(PATH)}:(10: validators\[0\]\.true_cost|11: validators\[0\]\.noise_bps) ", message), (
        message
    )


@pytest.mark.parametrize(
    ("true_cost", "noise_bps"), [(MAX_NGONKA - 1, 0), (10**18, 9_999), ((MAX_NGONKA - 1) * 10_000 // 10_500, 500)]
)
def test_honest_true_cost_whose_noisy_vote_stays_below_2_63_ngonka_is_accepted(true_cost: int, noise_bps: int) -> None:
    assert true_cost * (10_000 + noise_bps) // 10_000 < MAX_NGONKA
    scenario = parse_scenario(variant(l10=f"true_cost = {true_cost}", l11=f"noise_bps = {noise_bps}"), PATH)
    assert (scenario.validators[0].true_cost, scenario.validators[0].noise_bps) == (true_cost, noise_bps)


# TOML allows these spellings; the reported line must still be the one where the key is written.
SYNTAX_VARIANTS = [
    ("double-quoted key", variant(l15='"stake" = 0'), 15, "validators[1].stake"),
    ("tabs and extra spaces around =", variant(l15="  stake\t=   0"), 15, "validators[1].stake"),
    ("key followed by a comment", variant(l15="stake = 0  # none"), 15, "validators[1].stake"),
    (
        "header with inner spaces and a comment",
        variant(l13="[[ validators ]]  # bob", l15="stake = 0"),
        15,
        "validators[1].stake",
    ),
    ("literal-string (single-quoted) key", variant(l15="'stake' = 0"), 15, "validators[1].stake"),
    (
        "top-level key after a multi-line string with a line starting with [",
        'description = """\n[draft] scenario\n"""\n' + variant(l2='seed = "five"'),
        5,
        "seed",
    ),
]


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [pytest.param(text, line, key, id=case) for case, text, line, key in SYNTAX_VARIANTS],
)
def test_error_line_is_exact_for_every_toml_spelling_of_the_key(text: str, line: int, key: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, PATH)
    assert str(info.value).startswith(f"{PATH}:{line}: {key} "), str(info.value)


def test_error_names_the_first_offending_validator_when_several_are_wrong() -> None:
    text = variant(l8='stake = "a"', l15='stake = "b"')
    with pytest.raises(ScenarioError, match=r"^scenarios/case\.toml:8: validators\[0\]\.stake .*\"a\""):
        parse_scenario(text, PATH)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        pytest.param(None, "cannot read", id="missing file"),
        pytest.param(b"epochs = 3\n\xff\xfe\n", "cannot read", id="not UTF-8"),
    ],
)
def test_load_scenario_reports_an_unreadable_file_in_one_line(
    tmp_path: Path, content: bytes | None, words: str
) -> None:
    path = tmp_path / "scenario.toml"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert words in message
    assert "\n" not in message


def test_load_scenario_locates_errors_by_the_path_it_was_given(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(variant(l15='stake = "400"'), encoding="utf-8")
    with pytest.raises(ScenarioError, match=rf"^{re.escape(str(path))}:15: validators\[1\]\.stake "):
        load_scenario(path)


# ---------------------------------------------------------------------------------------------
# Governance events: [[proposals]]
# ---------------------------------------------------------------------------------------------

PROPOSAL_LINES = [
    "",  # 21
    "[[proposals]]",  # 22
    "at_epoch = 3",  # 23
    'proposer = "alice"',  # 24
    'kind = "register_model"',  # 25
    'id = "model-alpha"',  # 26
    "units_of_compute_per_token = 10",  # 27
    'votes = { alice = "yes", bob = "no_with_veto" }',  # 28
]


def with_proposal(**replace: str) -> str:
    """BASE plus one [[proposals]] table (lines 21-28), with line N replaced by `replace["l<N>"]`."""
    lines = BASE_LINES + PROPOSAL_LINES
    for key, text in replace.items():
        lines[int(key[1:]) - 1] = text
    return "\n".join(lines) + "\n"


def test_a_proposal_table_parses_with_its_votes_in_file_order_and_the_default_deposit() -> None:
    scenario = parse_scenario(with_proposal(), PATH)
    (proposal,) = scenario.proposals
    assert proposal == ProposalSpec(
        at_epoch=3,
        proposer="alice",
        kind="register_model",
        id="model-alpha",
        units_of_compute_per_token=10,
        deposit=None,
        votes=(("alice", "yes"), ("bob", "no_with_veto")),
    )
    assert scenario.deposit_of(proposal) == scenario.min_deposit == 25_000_000


def test_a_remove_model_proposal_needs_no_units_and_may_carry_a_small_deposit_without_votes() -> None:
    text = with_proposal(l25='kind = "remove_model"', l27="deposit = 5", l28="")
    (proposal,) = parse_scenario(text, PATH).proposals
    assert (proposal.kind, proposal.units_of_compute_per_token, proposal.deposit, proposal.votes) == (
        "remove_model",
        None,
        5,
        (),
    )


PROPOSAL_ERRORS = [
    ("unknown proposal key", with_proposal(l28="colour = 1"), 28, "proposals[0].colour", "not a known key"),
    ("at_epoch past the end", with_proposal(l23="at_epoch = 10"), 23, "proposals[0].at_epoch", "between 0 and 9"),
    ("unknown proposer", with_proposal(l24='proposer = "zed"'), 24, "proposals[0].proposer", "not a validator"),
    ("unknown kind", with_proposal(l25='kind = "update_params"'), 25, "proposals[0].kind", "register_model"),
    ("empty model id", with_proposal(l26='id = ""'), 26, "proposals[0].id", "non-empty"),
    ("over-long model id", with_proposal(l26=f'id = "{"m" * 129}"'), 26, "proposals[0].id", "over the limit of 128"),
    ("units 0", with_proposal(l27="units_of_compute_per_token = 0"), 27, "proposals[0].units", "≥ 1"),
    ("units as a float", with_proposal(l27="units_of_compute_per_token = 1.5"), 27, "proposals[0].units", "1.5"),
    ("units missing", with_proposal(l27=""), 22, "proposals[0].units", "is required"),
    ("units on a removal", with_proposal(l25='kind = "remove_model"'), 27, "proposals[0].units", "does not apply"),
    ("unknown vote option", with_proposal(l28='votes = { alice = "maybe" }'), 28, "proposals[0].votes", "maybe"),
    ("vote by a stranger", with_proposal(l28='votes = { zed = "yes" }'), 28, "proposals[0].votes", "zed"),
    ("vote before bob has power", with_proposal(l23="at_epoch = 2"), 28, "proposals[0].votes", "no power in epoch 2"),
    ("votes not a table", with_proposal(l28='votes = "yes"'), 28, "proposals[0].votes", "inline table"),
    (
        "votes on an underfunded proposal",
        with_proposal(l27="units_of_compute_per_token = 1\ndeposit = 3"),
        29,
        "proposals[0].votes",
        "below min_deposit",
    ),
    ("epoch_length 1 with proposals", with_proposal(l4="epoch_length = 1"), 4, "epoch_length", "at least 2"),
]


@pytest.mark.parametrize(
    ("text", "line", "key", "words"), [c[1:] for c in PROPOSAL_ERRORS], ids=[c[0] for c in PROPOSAL_ERRORS]
)
def test_malformed_proposal_raises_one_scenario_error_naming_file_line_and_key(
    text: str, line: int, key: str, words: str
) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, PATH)
    message = str(info.value)
    assert message.startswith(f"{PATH}:{line}: "), message
    assert key in message and words in message, message


# -- clients -------------------------------------------------------------------------------------

CLIENT_LINES = BASE_LINES + [
    "",  # 21
    "[[proposals]]",  # 22
    "at_epoch = 0",  # 23
    'proposer = "alice"',  # 24
    'kind = "register_model"',  # 25
    'id = "m1"',  # 26
    "units_of_compute_per_token = 3",  # 27
    "",  # 28
    "[[clients]]",  # 29
    'name = "acme"',  # 30
    "escrow = 1000000",  # 31
    "",  # 32
    "[[clients.demand]]",  # 33
    'model = "m1"',  # 34
    'kind = "ramp"',  # 35
    "jobs = 1",  # 36
    "to_jobs = 9",  # 37
    "tokens_in = 10",  # 38
    "tokens_out = 5",  # 39
    "reference_price_per_token = 300",  # 40
    "sensitivity_bps = 15000",  # 41
]


def client_variant(**replace: str) -> str:
    """CLIENT_LINES with line N replaced by `replace["l<N>"]`."""
    lines = list(CLIENT_LINES)
    for key, text in replace.items():
        lines[int(key[1:]) - 1] = text
    return "\n".join(lines) + "\n"


def test_a_client_parses_into_its_escrow_and_demand_per_model() -> None:
    scenario = parse_scenario(client_variant(), PATH)
    (client,) = scenario.clients
    assert (client.name, client.escrow) == ("acme", 1_000_000)
    assert client.demand == (
        DemandSpec(
            model="m1",
            kind="ramp",
            jobs=1,
            tokens_in=10,
            tokens_out=5,
            to_jobs=9,
            reference_price_per_token=300,
            sensitivity_bps=15_000,
        ),
    )
    assert parse_scenario(BASE, PATH).clients == ()


def test_a_reference_price_without_a_sensitivity_lowers_demand_one_for_one() -> None:
    (client,) = parse_scenario(client_variant(l41=""), PATH).clients
    assert client.demand[0].sensitivity_bps == 10_000


TWO_CLIENTS = client_variant() + '\n[[clients]]\nname = "acme"\nescrow = 5\n\n[[clients.demand]]\nmodel = "m1"\n'
DEMAND_TWICE = (
    client_variant()
    + '\n[[clients.demand]]\nmodel = "m1"\nkind = "constant"\njobs = 1\ntokens_in = 1\ntokens_out = 1\n'
)
TOO_MANY_JOBS = client_variant(l35='kind = "constant"', l36="jobs = 1000", l37="") + "".join(
    f'\n[[clients]]\nname = "c{i}"\nescrow = 5\n\n[[clients.demand]]\nmodel = "m1"\nkind = "constant"\n'
    "jobs = 1000\ntokens_in = 1\ntokens_out = 0\n"
    for i in range(10)
)

MALFORMED_CLIENTS = [
    ("clients not tables", variant(l5="clients = 3"), 5, "clients", "[[clients]]"),
    ("bad client name", client_variant(l30='name = "Acme!"'), 30, "clients[0].name", "a-z"),
    ("escrow 0", client_variant(l31="escrow = 0"), 31, "clients[0].escrow", "got 0"),
    ("escrow missing (points at its header)", client_variant(l31=""), 29, "clients[0].escrow", "required"),
    ("escrow a string", client_variant(l31='escrow = "1"'), 31, "clients[0].escrow", '"1"'),
    ("unknown client key", client_variant(l32="budget = 5"), 32, "clients[0].budget", "name, escrow, demand"),
    ("a client without demand", "\n".join(CLIENT_LINES[:32]) + "\n", 29, "clients[0].demand", "[[clients.demand]]"),
    ("duplicate client name", TWO_CLIENTS, 44, "clients[1].name", "another client"),
    ("model never registered", client_variant(l34='model = "m2"'), 34, "clients[0].demand[0].model", "never"),
    ("model id invalid", client_variant(l34='model = "a b"'), 34, "clients[0].demand[0].model", "a b"),
    ("a model twice", DEMAND_TWICE, 44, "clients[0].demand[1].model", "one per model"),
    ("unknown kind", client_variant(l35='kind = "sine"'), 35, "clients[0].demand[0].kind", "random_walk"),
    ("kind missing (points at its header)", client_variant(l35=""), 33, "clients[0].demand[0].kind", "required"),
    ("a key of another kind", client_variant(l37="step = 2"), 37, "clients[0].demand[0].step", '"ramp"'),
    ("jobs over the limit", client_variant(l36="jobs = 1001"), 36, "clients[0].demand[0].jobs", "0 and 1000"),
    ("jobs negative", client_variant(l36="jobs = -1"), 36, "clients[0].demand[0].jobs", "got -1"),
    ("jobs a float", client_variant(l36="jobs = 2.5"), 36, "clients[0].demand[0].jobs", "2.5"),
    (
        "no token at all",
        client_variant(l38="tokens_in = 0", l39="tokens_out = 0"),
        38,
        "clients[0].demand[0].tokens_in",
        "both 0",
    ),
    ("tokens a float", client_variant(l39="tokens_out = 5.5"), 39, "clients[0].demand[0].tokens_out", "5.5"),
    ("sensitivity without reference", client_variant(l40=""), 41, "clients[0].demand[0].sensitivity_bps", "needs"),
    (
        "reference 0",
        client_variant(l40="reference_price_per_token = 0"),
        40,
        "clients[0].demand[0].reference_price_per_token",
        "got 0",
    ),
    ("unknown demand key", client_variant(l41="elasticity = 2"), 41, "clients[0].demand[0].elasticity", "not a known"),
    (
        "spike after the last epoch",
        client_variant(l35='kind = "spike"', l37="peak_epoch = 10", l41="peak_jobs = 4"),
        37,
        "clients[0].demand[0].peak_epoch",
        "0 and 9",
    ),
    (
        "random walk ceiling below its start",
        client_variant(l35='kind = "random_walk"', l36="jobs = 5", l37="max_jobs = 4", l41="step = 2"),
        37,
        "clients[0].demand[0].max_jobs",
        "5 and 1000",
    ),
    ("more jobs an epoch than a block settles", TOO_MANY_JOBS, 29, "clients", "11000 jobs"),
]


@pytest.mark.parametrize(
    ("text", "line", "key", "words"),
    [pytest.param(text, line, key, words, id=case) for case, text, line, key, words in MALFORMED_CLIENTS],
)
def test_malformed_client_raises_one_scenario_error_naming_file_line_and_key(
    text: str, line: int, key: str, words: str
) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, PATH)
    message = str(info.value)
    assert "\n" not in message, f"the error must be one line: {message!r}"
    assert message.startswith(f"{PATH}:{line}: {key} "), message
    assert words in message, message
