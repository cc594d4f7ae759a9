"""Schemathesis hooks for `schemathesis run` against a node (loaded by schemathesis.toml): strategies of the
custom string formats the node's OpenAPI documents use, for what a JSON schema cannot state (a bech32
checksum)."""

from __future__ import annotations

import schemathesis
from hypothesis import strategies as st

from chain.crypto import ADDRESS_PREFIX, bech32_encode
from chain.fields import ADDRESS_FORMAT

schemathesis.openapi.format(
    ADDRESS_FORMAT, st.binary(min_size=20, max_size=20).map(lambda b: bech32_encode(ADDRESS_PREFIX, b))
)
