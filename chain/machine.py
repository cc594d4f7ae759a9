"""The state machine's composition: the rules of the modules built on `chain.rules`, put in its dispatch
tables in one place and one stated order.

`chain.rules` holds the core (accounts, staking, price votes, governance, evidence, the epoch) and the
tables its dispatch reads: `MESSAGE_RULES`, `CONTENT_RULES`, `CONTENT_CHECKS`, `BLOCK_END_RULES` and
`EPOCH_RULES`. The modules built on it (`chain.usage`, `chain.dynamic`, `chain.index`) import it, so
it cannot import them; none of them registers anything when imported. `compose` fills the tables,
and `chain.app` calls it: the order of the block-end and epoch rules is part of consensus, so it is
written here once rather than left to the order in which modules happen to be imported.
"""

from __future__ import annotations

from . import dynamic, index, rules, usage
from .tx import IndexConfig, RefundSettlement

# the end of every block, after the core's (governance periods, unbonding releases, evidence pruning)
# and before the epoch: the dynamic prices see the block's settled tokens, then usage's withdrawals,
# dispute windows and totals
BLOCK_END_RULES = (dynamic.process_dynamic_prices, usage.process_usage_block_end)
# the epoch transition, after the model activation and before the epoch record
EPOCH_RULES = (index.process_index,)
CONTENT_RULES = {
    RefundSettlement.TYPE: usage.process_refund_proposal,
    IndexConfig.TYPE: index.process_index_config,
}
CONTENT_CHECKS = {IndexConfig.TYPE: index.check_index_config}


def compose() -> None:
    """Put the modules' rules in `chain.rules`' dispatch tables (idempotent: the tables end up exactly
    the core's plus these, whatever ran before)."""
    rules.MESSAGE_RULES.update(usage.USAGE_RULES)
    rules.CONTENT_RULES.clear()
    rules.CONTENT_RULES.update(CONTENT_RULES)
    rules.CONTENT_CHECKS.clear()
    rules.CONTENT_CHECKS.update(CONTENT_CHECKS)
    rules.BLOCK_END_RULES[:] = BLOCK_END_RULES
    rules.EPOCH_RULES[:] = EPOCH_RULES


__all__ = ["BLOCK_END_RULES", "CONTENT_CHECKS", "CONTENT_RULES", "EPOCH_RULES", "compose"]
