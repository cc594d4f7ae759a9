"""The state machine's composition (`chain.machine`): importing a module registers nothing; an
Application puts the modules' rules in the dispatch tables in the one stated order, however often."""

from __future__ import annotations

import subprocess
import sys

from chain import dynamic, index, machine, rules, usage
from chain.app import Application
from chain.store import MemoryStore
from chain.tx import IndexConfig, MsgSettleUsage, RefundSettlement


def test_importing_the_modules_registers_nothing():
    code = (
        "import chain.usage, chain.dynamic, chain.index, chain.queries\n"
        "from chain import rules\n"
        "assert not rules.BLOCK_END_RULES and not rules.EPOCH_RULES, (rules.BLOCK_END_RULES, rules.EPOCH_RULES)\n"
        "assert not rules.CONTENT_RULES and not rules.CONTENT_CHECKS\n"
        "assert not set(chain.usage.USAGE_RULES) & set(rules.MESSAGE_RULES)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_an_application_composes_the_tables_in_the_stated_order_and_again_changes_nothing():
    for _ in range(2):
        Application(MemoryStore())
        assert rules.BLOCK_END_RULES == [dynamic.process_dynamic_prices, usage.process_usage_block_end]
        assert rules.EPOCH_RULES == [index.process_index]
        assert rules.CONTENT_RULES == {
            RefundSettlement.TYPE: usage.process_refund_proposal,
            IndexConfig.TYPE: index.process_index_config,
        }
        assert rules.CONTENT_CHECKS == {IndexConfig.TYPE: index.check_index_config}
        assert rules.MESSAGE_RULES[MsgSettleUsage] is usage.process_msg_settle_usage
    machine.compose()
    assert len(rules.BLOCK_END_RULES) == 2 and len(rules.EPOCH_RULES) == 1
