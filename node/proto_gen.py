"""Regenerate the checked-in protobuf and gRPC code: `python -m node.proto_gen` (writes node/pb/).

`proto/uoc/v1/*.proto` compile with `grpc_tools.protoc` into one flat package `node.pb`; the
generated cross-file imports (`from uoc.v1 import types_pb2`) are rewritten to `from node.pb import
types_pb2`. `--out DIR` writes elsewhere (the staleness test compares a fresh copy with node/pb/).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTO_DIR = ROOT / "proto"
PROTO_PACKAGE = "uoc/v1"
OUT_DIR = ROOT / "node" / "pb"
INIT_TEXT = '"""Generated protobuf and gRPC code for proto/uoc/v1 (regenerate: python -m node.proto_gen)."""\n'


def get_proto_files() -> list[Path]:
    """The .proto files, sorted."""
    return sorted((PROTO_DIR / PROTO_PACKAGE).glob("*.proto"))


def compute_fixed_imports(text: str) -> str:
    """Rewrite generated `from uoc.v1 import x_pb2` imports into `from node.pb import x_pb2`."""
    return re.sub(r"^from uoc\.v1 import ", "from node.pb import ", text, flags=re.M)


def generate(out: Path) -> list[Path]:
    """Compile every proto into `out` (created, old generated files replaced); return the files written."""
    from grpc_tools import protoc  # type: ignore[import-untyped]

    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "grpc_tools.protoc",
            f"-I{PROTO_DIR}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            *(str(p.relative_to(PROTO_DIR)) for p in get_proto_files()),
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        out.mkdir(parents=True, exist_ok=True)
        for old in out.glob("*_pb2*.py*"):
            old.unlink()
        written = []
        for src in sorted((Path(tmp) / PROTO_PACKAGE).iterdir()):
            dest = out / src.name
            dest.write_text(compute_fixed_imports(src.read_text()))
            written.append(dest)
        (out / "__init__.py").write_text(INIT_TEXT)
        written.append(out / "__init__.py")
    return written


def main(argv: list[str] | None = None) -> int:
    """Command line: regenerate node/pb (or --out DIR)."""
    parser = argparse.ArgumentParser(prog="python -m node.proto_gen", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output directory (default: node/pb)")
    args = parser.parse_args(argv)
    files = generate(args.out)
    print(f"wrote {len(files)} files to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
