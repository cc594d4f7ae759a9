"""`uocd`, the command line of uoc (`python -m uocd` is the same program).

The top floor: it imports `chain`, `node` and `devnet`, and nothing imports it. One module per command
group (`keys`, `tx`, `query`, `node` for init and start, `genesis`, `devnet`, `grpc`), each adding its
subcommands to the argument tree that `uocd.main` builds; `uocd.options` holds the options they share
and `uocd.output` what they print (`--output json`, or text whose tables fit the terminal)."""

import os

# gRPC core reads GRPC_VERBOSITY once, when `grpc` is first imported, which the command modules do at
# their top: set it before them, so gRPC's own log lines stay off stderr, where a failure is one line.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")
