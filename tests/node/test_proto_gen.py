"""The checked-in generated protobuf code is fresh, and the runtime pins match its generator."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from node import proto_gen

ROOT = Path(__file__).resolve().parents[2]


def get_pins() -> dict[str, str]:
    """The `name>=version` minimums of pyproject's runtime dependencies (an upper bound may follow)."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return dict(re.fullmatch(r"([\w-]+)>=([\d.]+)(?:,<[\d.]+)?", d).groups() for d in deps)


def test_checked_in_generated_code_equals_a_fresh_generation(tmp_path: Path):
    fresh = proto_gen.generate(tmp_path / "pb")
    checked_in = sorted(p.name for p in proto_gen.OUT_DIR.iterdir() if p.is_file())
    assert sorted(p.name for p in fresh) == checked_in
    stale = [p.name for p in fresh if p.read_text() != (proto_gen.OUT_DIR / p.name).read_text()]
    assert stale == [], f"node/pb is stale ({stale}); run: python -m node.proto_gen"


def test_generated_imports_point_into_the_node_pb_package():
    texts = [p.read_text() for p in proto_gen.OUT_DIR.glob("*.py")]
    assert not any(re.search(r"^from uoc\.v1 ", t, re.M) for t in texts)
    assert any("from node.pb import types_pb2" in t for t in texts)


def test_grpcio_minimums_equal_the_generated_grpc_version():
    text = (proto_gen.OUT_DIR / "services_pb2_grpc.py").read_text()
    generated = re.search(r"GRPC_GENERATED_VERSION = '([\d.]+)'", text).group(1)
    pins = get_pins()
    assert pins["grpcio"] == generated
    assert pins["grpcio-health-checking"] == generated
    assert pins["grpcio-reflection"] == generated
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["test"]
    assert f"grpcio-tools=={generated}" in extras


def test_protobuf_minimum_equals_the_generated_protobuf_runtime_check():
    for path in proto_gen.OUT_DIR.glob("*_pb2.py"):
        pattern = r"ValidateProtobufRuntimeVersion\(\s*_runtime_version\.Domain\.PUBLIC,\s*(\d+),\s*(\d+),\s*(\d+),"
        m = re.search(pattern, path.read_text())
        assert m, path
        assert get_pins()["protobuf"] == ".".join(m.groups()), path


def test_generated_modules_import_and_describe_the_services():
    from node.pb import services_pb2

    services = services_pb2.DESCRIPTOR.services_by_name
    assert sorted(services) == ["BlockSync", "Gossip", "Status"]
    assert services["BlockSync"].methods_by_name["GetBlocks"].server_streaming
