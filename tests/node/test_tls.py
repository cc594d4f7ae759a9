"""Node identity and mutual TLS (node.tls): certificates bound to node keys, refused when bound to another
node or forged; real gRPC between real servers: the right peer connects, every other is refused both ways."""

from __future__ import annotations

import asyncio
import logging
import stat
import time
from dataclasses import replace

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.crypto import PrivateKey, bech32_decode
from node import tls
from node.config import ConfigError, compute_peer_address, init_home, load_home, parse_config, render_config
from node.errors import PeerIdentityError
from node.network import PeerClient
from node.node import Node
from node.pb import services_pb2 as spb
from tests.node.netutil import aio_self_channel, load_tls_identity, make_homes

NODE = PrivateKey.from_name("tls-node")
OTHER = PrivateKey.from_name("tls-other")


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def build_cert(
    tls_key: ec.EllipticCurvePrivateKey,
    *,
    claimed: PrivateKey = NODE,
    signer: PrivateKey | None = None,
    signed_key: ec.EllipticCurvePrivateKey | None = None,
    binding: bytes | None = None,
    name: str | None = None,
    with_binding: bool = True,
) -> x509.Certificate:
    """A certificate of `tls_key` whose binding claims node `claimed`, its signature made by `signer` (default:
    the claimed key) over the key `signed_key` (default: tls_key), named `name` (default: the claimed node id)."""
    node_id = tls.compute_node_id(claimed.pubkey)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name or node_id)])
    spki = (
        (signed_key or tls_key)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    signature = (signer or claimed).sign(tls.compute_binding_message(spki))
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(tls_key.public_key())
        .serial_number(7)
        .not_valid_before(tls._NOT_BEFORE)
        .not_valid_after(tls._NOT_AFTER)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name or node_id)]), critical=False)
    )
    if with_binding:
        value = binding if binding is not None else tls.encode_binding(claimed.pubkey, signature)
        builder = builder.add_extension(x509.UnrecognizedExtension(tls.BINDING_OID, value), critical=False)
    return builder.sign(tls_key, hashes.SHA256())


def p256() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


# -- identity and certificates ----------------------------------------------------------------
def test_the_node_id_is_the_hex_of_the_20_bytes_behind_the_node_keys_address():
    node_id = tls.compute_node_id(NODE.pubkey)
    assert tls.is_node_id(node_id) and len(node_id) == 40
    assert node_id == bech32_decode(NODE.address)[1].hex()


def test_a_made_certificate_is_bound_to_its_node_id():
    cert = tls.make_certificate(NODE, p256())
    assert tls.verify_certificate(pem(cert), tls.compute_node_id(NODE.pubkey)) == tls.compute_node_id(NODE.pubkey)
    der = cert.public_bytes(serialization.Encoding.DER)
    assert tls.verify_certificate(der) == tls.compute_node_id(NODE.pubkey)


def _forged_binding_copied_from_another_key() -> bytes:
    genuine = tls.make_certificate(NODE, p256())
    value = genuine.extensions.get_extension_for_oid(tls.BINDING_OID).value
    assert isinstance(value, x509.UnrecognizedExtension)
    return pem(build_cert(p256(), binding=value.value))  # the node key signed another TLS key


@pytest.mark.parametrize(
    "make, expected, message",
    [
        (lambda: pem(tls.make_certificate(OTHER, p256())), NODE, "is bound to node"),
        (lambda: pem(build_cert(p256(), signer=OTHER)), NODE, "invalid signature (forged)"),
        (_forged_binding_copied_from_another_key, NODE, "invalid signature (forged)"),
        (lambda: pem(build_cert(p256(), signed_key=p256())), NODE, "invalid signature (forged)"),
        (lambda: pem(build_cert(p256(), with_binding=False)), NODE, "carries no node-key binding"),
        (lambda: pem(build_cert(p256(), binding=b"\x30\x00")), NODE, "binding is malformed"),
        (lambda: pem(build_cert(p256(), name="0" * 40)), NODE, "name is not its node id"),
        (lambda: b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", NODE, "not an X.509"),
        (lambda: b"x" * (tls.MAX_CERT_BYTES + 1), NODE, "more than"),
        (
            lambda: pem(build_cert(ec.generate_private_key(ec.SECP384R1()))),  # type: ignore[arg-type]
            NODE,
            "not an ECDSA P-256 key",
        ),
    ],
    ids=[
        "bound-to-another-node",
        "signed-by-another-node-key",
        "binding-copied-onto-another-tls-key",
        "binding-of-another-tls-key",
        "no-binding",
        "malformed-binding",
        "name-not-node-id",
        "not-a-certificate",
        "too-large",
        "p384-key",
    ],
)
def test_a_certificate_not_bound_to_the_expected_node_is_refused(make, expected, message):
    with pytest.raises(PeerIdentityError) as info:
        tls.verify_certificate(make(), tls.compute_node_id(expected.pubkey))
    assert message in str(info.value)


GENUINE_KEY = p256()
GENUINE = tls.make_certificate(NODE, GENUINE_KEY)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_changing_any_byte_of_a_binding_makes_the_certificate_refused(data):
    value = GENUINE.extensions.get_extension_for_oid(tls.BINDING_OID).value
    assert isinstance(value, x509.UnrecognizedExtension)
    index = data.draw(st.integers(0, len(value.value) - 1))
    flip = data.draw(st.integers(1, 255))
    changed = bytearray(value.value)
    changed[index] ^= flip
    cert = build_cert(GENUINE_KEY, binding=bytes(changed))
    with pytest.raises(PeerIdentityError):
        tls.verify_certificate(pem(cert), tls.compute_node_id(NODE.pubkey))


def test_init_makes_the_tls_identity_with_safe_modes_and_a_first_start_makes_a_missing_one(tmp_path):
    home = init_home(tmp_path / "h", "h").path
    assert stat.S_IMODE((home / tls.TLS_KEY_FILE).stat().st_mode) == 0o600
    assert stat.S_IMODE((home / tls.TLS_CERT_FILE).stat().st_mode) == 0o644
    node_key = load_home(home).node_key
    made = tls.load_identity(home, node_key)
    assert made.node_id == tls.compute_node_id(node_key.pubkey)
    assert tls.load_or_create_identity(home, node_key) == made  # kept
    (home / tls.TLS_KEY_FILE).unlink()
    (home / tls.TLS_CERT_FILE).unlink()
    again = tls.load_or_create_identity(home, node_key)  # a home from before TLS
    assert again.cert_pem != made.cert_pem and tls.verify_certificate(again.cert_pem, made.node_id)
    assert stat.S_IMODE((home / tls.TLS_KEY_FILE).stat().st_mode) == 0o600


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda h: (h / tls.TLS_CERT_FILE).write_bytes(pem(tls.make_certificate(OTHER, p256()))), "is bound to node"),
        (lambda h: (h / tls.TLS_KEY_FILE).write_bytes(b"junk"), "TLS identity"),
        (lambda h: (h / tls.TLS_CERT_FILE).unlink(), "is missing"),
        (
            lambda h: (h / tls.TLS_KEY_FILE).write_bytes(
                p256().private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
            ),
            "is not the key of",
        ),
    ],
    ids=["cert-of-another-node", "junk-key", "cert-missing", "key-of-another-cert"],
)
def test_a_damaged_tls_identity_is_one_clear_error_and_nothing_changes(tmp_path, damage, message):
    home = init_home(tmp_path / "h", "h").path
    damage(home)
    before = {
        name: (home / name).read_bytes() for name in (tls.TLS_KEY_FILE, tls.TLS_CERT_FILE) if (home / name).exists()
    }
    with pytest.raises(ConfigError) as info:
        tls.load_or_create_identity(home, load_home(home).node_key)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert before == {n: (home / n).read_bytes() for n in (tls.TLS_KEY_FILE, tls.TLS_CERT_FILE) if (home / n).exists()}


# -- config ---------------------------------------------------------------------------------
ID = "ab" * 20


@pytest.mark.parametrize(
    "peers, message",
    [
        ('["127.0.0.1:26656"]', "has no node id: write it NODE_ID@HOST:PORT"),
        (f'["{ID.upper()}@127.0.0.1:26656"]', "40 lower-case hex digits"),
        ('["abcd@127.0.0.1:26656"]', "40 lower-case hex digits"),
        (f'["{ID}@127.0.0.1:0"]', "port in 1..65535"),
        (f'["{ID}@127.0.0.1:70000"]', "port in 1..65535"),
        (f'["{ID}@:26656"]', "must be host:port"),
        (f'["{ID}@127.0.0.1"]', "must be host:port"),
        ("[1]", "a peer address is a string"),
        (f'"{ID}@127.0.0.1:1"', "must be a list of NODE_ID@HOST:PORT"),
        (f'["{ID}@127.0.0.1:1", "{ID}@127.0.0.2:1"]', f"lists node {ID} twice"),
    ],
)
def test_a_bad_peer_address_is_one_clear_config_error(peers, message):
    text = render_config(parse_config('moniker = "m"\n')).replace("peers = []", f"peers = {peers}")
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert message in str(info.value) and "grpc.peers" in str(info.value)


def test_peers_with_node_ids_round_trip_through_config_toml():
    peers = (f"{ID}@127.0.0.1:26656", f"{'cd' * 20}@[::1]:1", f"{'ef' * 20}@node.example:65535")
    config = replace(parse_config('moniker = "m"\n'), peers=peers)
    assert parse_config(render_config(config)).peers == peers


# -- real gRPC between real servers -------------------------------------------------------------
async def status_server(key_pem: bytes, cert_pem: bytes, trusted: bytes | None) -> tuple[grpc.aio.Server, int]:
    """A gRPC server presenting (key, cert) with a Status service; mutual TLS trusting `trusted`, or plaintext."""
    server = grpc.aio.server()

    async def get_status(request: bytes, context) -> spb.StatusResponse:
        return spb.StatusResponse(chain_id="spy", node_id=tls.get_peer_node_id(context) or "")

    handler = grpc.unary_unary_rpc_method_handler(get_status, response_serializer=lambda m: m.SerializeToString())
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("uoc.v1.Status", {"GetStatus": handler})])
    if trusted is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        credentials = grpc.ssl_server_credentials([(key_pem, cert_pem)], trusted, require_client_auth=True)
        port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    return server, port


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture
def pair(tmp_path):
    """Two node homes, each the other's peer."""
    return make_homes(tmp_path, 2)


@pytest.mark.asyncio
async def test_a_peer_presenting_the_expected_node_id_connects_and_is_known_by_its_node_id(tmp_path):
    client_home = init_home(tmp_path / "c", "c").path
    client = load_tls_identity(client_home)
    tls_key = p256()
    cert = pem(tls.make_certificate(NODE, tls_key))
    server, port = await status_server(key_pem(tls_key), cert, client.cert_pem)
    pins = tls.PeerPins(client, frozenset({tls.compute_node_id(NODE.pubkey)}))
    peer = PeerClient(f"{tls.compute_node_id(NODE.pubkey)}@127.0.0.1:{port}", identity=client, pins=pins)
    try:
        status = await peer.get_status()
        assert status.chain_id == "spy" and status.node_id == client.node_id  # the server saw who called
        assert pins.get(tls.compute_node_id(NODE.pubkey)) == cert  # pinned: this node's server now accepts it
    finally:
        await peer.close()
        await server.stop(0)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "make_cert, code, message",
    [
        (lambda k: tls.make_certificate(OTHER, k), "UNAUTHENTICATED", "is bound to node"),
        (lambda k: build_cert(k, signer=OTHER), "UNAUTHENTICATED", "forged"),
        (None, "UNAVAILABLE", "TLS handshake failed"),  # a plaintext server
    ],
    ids=["bound-to-another-node", "forged-binding", "plaintext-server"],
)
async def test_dialing_a_node_id_refuses_a_server_that_cannot_prove_it(tmp_path, caplog, make_cert, code, message):
    client = load_tls_identity(init_home(tmp_path / "c", "c").path)
    tls_key = p256()
    cert = pem(make_cert(tls_key)) if make_cert else b""
    server, port = await status_server(key_pem(tls_key), cert, client.cert_pem if make_cert else None)
    pins = tls.PeerPins(client, frozenset({tls.compute_node_id(NODE.pubkey)}))
    peer = PeerClient(f"{tls.compute_node_id(NODE.pubkey)}@127.0.0.1:{port}", identity=client, pins=pins)
    try:
        with caplog.at_level(logging.INFO, logger="node.network"), pytest.raises(grpc.aio.AioRpcError) as info:
            await peer.get_status()
        assert info.value.code().name == code and message in info.value.details()
        assert peer.is_backed_off() and pins.get(tls.compute_node_id(NODE.pubkey)) is None
        assert any(message in r.getMessage() and peer.address in r.getMessage() for r in caplog.records)
        if code == "UNAUTHENTICATED":
            assert any(r.levelno == logging.WARNING for r in caplog.records)
    finally:
        await peer.close()
        await server.stop(0)


@pytest.mark.asyncio
async def test_a_node_accepts_its_peers_and_refuses_plaintext_and_every_other_identity(pair, tmp_path):
    nodes = [Node(load_home(h)) for h in pair]
    for node in nodes:
        await node.start()
    try:
        for _ in range(100):  # each dials the other: both connect
            if all(n.reachable_peers == 1 for n in nodes) and nodes[0].app.height >= 2:
                break
            await asyncio.sleep(0.05)
        assert [n.reachable_peers for n in nodes] == [1, 1] and nodes[0].app.height >= 2
        target = compute_peer_address(load_home(pair[0]))
        stranger = load_tls_identity(init_home(tmp_path / "s", "s").path)  # a genuine identity, not a peer
        stranger_node_key = load_home(tmp_path / "s").node_key
        forged_key = p256()  # claims to be node1 (a peer) with a binding node1 never signed
        impostor = replace(
            stranger,
            key_pem=key_pem(forged_key),
            cert_pem=pem(build_cert(forged_key, claimed=load_home(pair[1]).node_key, signer=stranger_node_key)),
        )
        for identity in (stranger, impostor):
            peer = PeerClient(target, identity=identity, rpc_timeout_s=2.0)
            try:
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await peer.get_status()
                assert info.value.code() == grpc.StatusCode.UNAVAILABLE  # the server closed the handshake
            finally:
                await peer.close()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{nodes[0].port}") as channel:
            call = channel.unary_unary("/uoc.v1.Status/GetStatus", response_deserializer=spb.StatusResponse.FromString)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await call(b"", timeout=2)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        async with aio_self_channel(pair[0], f"127.0.0.1:{nodes[0].port}") as channel:  # the node's own identity
            call = channel.unary_unary("/uoc.v1.Status/GetStatus", response_deserializer=spb.StatusResponse.FromString)
            assert (await call(b"", timeout=2)).node_id == nodes[0].node_id
    finally:
        for node in nodes:
            await node.stop(0.1)


@pytest.mark.asyncio
async def test_a_peer_that_makes_a_new_tls_key_is_pinned_again(pair):
    first, second = Node(load_home(pair[0])), Node(load_home(pair[1]))
    await first.start()
    await second.start()
    try:
        peer = first.peers[0]
        for _ in range(100):
            if first.reachable_peers == 1 and second.reachable_peers == 1:
                break
            await asyncio.sleep(0.05)
        old = peer._pinned
        assert old is not None
        await second.stop(0.1)
        for name in (tls.TLS_KEY_FILE, tls.TLS_CERT_FILE):
            (pair[1] / name).unlink()
        second = Node(load_home(pair[1]))
        await second.start()  # a new TLS key, bound to the same node key
        for _ in range(200):
            if first.reachable_peers == 1 and second.reachable_peers == 1 and peer._pinned != old:
                break
            await asyncio.sleep(0.05)
        assert peer._pinned == (pair[1] / tls.TLS_CERT_FILE).read_bytes()
        assert first.reachable_peers == 1 and second.reachable_peers == 1
    finally:
        await second.stop(0.1)
        await first.stop(0.1)


@pytest.mark.asyncio
async def test_a_peer_starting_while_this_node_backs_it_off_is_accepted_at_its_first_knock(pair):
    first = Node(load_home(pair[0]))
    await first.start()
    second = None
    try:
        peer = first.peers[0]
        for _ in range(100):
            if peer.failures:
                break
            await asyncio.sleep(0.05)
        assert peer.failures and first.reachable_peers == 0  # the other node is not up: dial failed
        peer.retry_at = time.monotonic() + 3600  # as if backed off for an hour
        second = Node(load_home(pair[1]))
        await second.start()  # it dials `first`, which has not pinned its certificate yet: refused ...
        for _ in range(200):  # ... but the knock makes `first` dial it now, and its next try is accepted
            if second.reachable_peers == 1 and first.reachable_peers == 1:
                break
            await asyncio.sleep(0.05)
        assert second.reachable_peers == 1 and first.reachable_peers == 1
    finally:
        if second is not None:
            await second.stop(0.1)
        await first.stop(0.1)
