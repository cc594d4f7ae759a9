"""Node identity and mutual TLS: a P-256 TLS key bound to the ed25519 node key, peers pinned by node id.

    node id          hex(sha256(node pubkey)[:20]): 40 lower-case hex digits (CometBFT's format; the
                     same 20 bytes as the node key's `uoc1…` address)
    peer address     NODE_ID@HOST:PORT in config.toml's grpc.peers
    HOME/node_tls_key.pem    the node's ECDSA P-256 TLS key, PKCS#8 PEM (mode 0600)
    HOME/node_tls_cert.pem   its self-signed X.509 certificate (mode 0644): subject CN and DNS name =
                             the node id, valid 2000-01-01 to 9999-12-31 (nodes keep no clock here),
                             and the binding extension below

The binding extension (OID `BINDING_OID`, not critical) holds the DER of SEQUENCE { OCTET STRING
node pubkey (32 bytes), OCTET STRING signature (64 bytes) }: the node key's ed25519 signature (the
chain's strict rules, `chain.crypto.verify_signature`) of `BINDING_DOMAIN` followed by the DER
SubjectPublicKeyInfo of the certificate's key. A certificate is bound to node id X when that
signature verifies and sha256(node pubkey)[:20] is X. (Ed25519 certificates would be simpler, but
gRPC's TLS refuses them: `NO_COMMON_SIGNATURE_ALGORITHMS`.)

gRPC in Python has no certificate-verify callback, so identity is checked by pinning:

* dialing NODE_ID@HOST:PORT, a `PeerClient` first takes the peer's certificate in a plain TLS
  handshake (`fetch_peer_certificate`), checks its binding to NODE_ID (`verify_certificate`), and only
  then opens the gRPC channel with that exact certificate as its only root and NODE_ID as the TLS
  name: the channel's handshake then proves the peer holds the bound key. Whatever else the address
  answers with (another node's certificate, a forged binding, a plaintext server) is refused.
* the server requires a client certificate and accepts only the pinned certificates: those of the
  configured peers that this node has fetched and verified, and its own (so that tools run with the
  node's home can call it). `PeerPins` holds them; `grpc.dynamic_ssl_server_credentials` reads its
  current set at each new handshake. A handshake while some configured peer is not pinned yet also
  calls `on_unpinned` (at most every `REDIAL_INTERVAL_S`): the node then dials its unpinned peers at
  once, so a peer that starts later is accepted within its own retry, not after this node's backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import logging
import re
import secrets
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from chain.crypto import PUBKEY_SIZE, SIGNATURE_SIZE, PrivateKey, verify_signature

from .errors import ConfigError, PeerIdentityError
from .secret_files import create_file, read_secret, write_secret

log = logging.getLogger(__name__)

TLS_KEY_FILE = "node_tls_key.pem"
TLS_CERT_FILE = "node_tls_cert.pem"
NODE_ID_BYTES = 20
# An OID under 2.25 (ITU-T X.667: a UUID as an integer), so none needs registering.
BINDING_OID = x509.ObjectIdentifier("2.25.126209626604789046411036275844974905775")
BINDING_DOMAIN = b"uoc/node-tls-binding/v1\x00"
_BINDING_HEAD = bytes([0x30, 4 + PUBKEY_SIZE + SIGNATURE_SIZE, 0x04, PUBKEY_SIZE])
_SIGNATURE_HEAD = bytes([0x04, SIGNATURE_SIZE])
_NODE_ID = re.compile(r"[0-9a-f]{40}")
_NOT_BEFORE = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
_NOT_AFTER = datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=datetime.UTC)
MAX_CERT_BYTES = 8192  # a bound certificate is about 600 bytes
REDIAL_INTERVAL_S = 0.5  # the most often a handshake makes the node dial its unpinned peers


def compute_node_id(pubkey: bytes) -> str:
    """The node id of an ed25519 node public key: hex(sha256(pubkey)[:20])."""
    return hashlib.sha256(pubkey).digest()[:NODE_ID_BYTES].hex()


def is_node_id(text: object) -> bool:
    """True for 40 lower-case hex digits."""
    return isinstance(text, str) and _NODE_ID.fullmatch(text) is not None


def compute_binding_message(spki_der: bytes) -> bytes:
    """The bytes the node key signs to bind a TLS public key (DER SubjectPublicKeyInfo) to itself."""
    return BINDING_DOMAIN + spki_der


def encode_binding(pubkey: bytes, signature: bytes) -> bytes:
    """The binding extension's value: DER SEQUENCE { OCTET STRING pubkey, OCTET STRING signature }."""
    return _BINDING_HEAD + pubkey + _SIGNATURE_HEAD + signature


def decode_binding(value: bytes) -> tuple[bytes, bytes]:
    """(node pubkey, signature) of a binding extension value; PeerIdentityError unless it is exactly that DER."""
    size = len(_BINDING_HEAD) + PUBKEY_SIZE + len(_SIGNATURE_HEAD) + SIGNATURE_SIZE
    split = len(_BINDING_HEAD) + PUBKEY_SIZE
    if len(value) != size or not value.startswith(_BINDING_HEAD) or value[split : split + 2] != _SIGNATURE_HEAD:
        raise PeerIdentityError("the certificate's node-key binding is malformed")
    return value[len(_BINDING_HEAD) : split], value[split + 2 :]


def get_spki_der(cert: x509.Certificate) -> bytes:
    """The DER SubjectPublicKeyInfo of a certificate's key."""
    return cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def make_certificate(node_key: PrivateKey, tls_key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    """A self-signed certificate of `tls_key` for the node id of `node_key`, with the node key's binding."""
    node_id = compute_node_id(node_key.pubkey)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node_id)])
    spki = tls_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    binding = encode_binding(node_key.pubkey, node_key.sign(compute_binding_message(spki)))
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(tls_key.public_key())
        .serial_number(int.from_bytes(secrets.token_bytes(16), "big") >> 1 | 1)
        .not_valid_before(_NOT_BEFORE)
        .not_valid_after(_NOT_AFTER)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(node_id)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.UnrecognizedExtension(BINDING_OID, binding), critical=False)
        .sign(tls_key, hashes.SHA256())
    )


def load_certificate(data: bytes) -> x509.Certificate:
    """A certificate from PEM or DER bytes; PeerIdentityError if it is neither or too large."""
    if len(data) > MAX_CERT_BYTES:
        raise PeerIdentityError(f"the certificate is {len(data)} bytes, more than {MAX_CERT_BYTES}")
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise PeerIdentityError(f"not an X.509 certificate: {exc}") from None


def verify_certificate(data: bytes, expected_node_id: str | None = None) -> str:
    """The node id a certificate (PEM or DER) is bound to; PeerIdentityError naming the fault if it is not a
    self-signed P-256 certificate carrying a valid binding whose node id is its name (and `expected_node_id`)."""
    cert = load_certificate(data)
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise PeerIdentityError("the certificate's key is not an ECDSA P-256 key")
    try:
        extension = cert.extensions.get_extension_for_oid(BINDING_OID).value
    except x509.ExtensionNotFound:
        raise PeerIdentityError("the certificate carries no node-key binding") from None
    except ValueError as exc:
        raise PeerIdentityError(f"the certificate's extensions are malformed: {exc}") from None
    assert isinstance(extension, x509.UnrecognizedExtension)
    pubkey, signature = decode_binding(extension.value)
    node_id = compute_node_id(pubkey)
    if expected_node_id is not None and node_id != expected_node_id:
        raise PeerIdentityError(f"the certificate is bound to node {node_id}, not to {expected_node_id}")
    if not verify_signature(pubkey, signature, compute_binding_message(get_spki_der(cert))):
        raise PeerIdentityError(f"the certificate's binding to node {node_id} has an invalid signature (forged)")
    names = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    try:
        dns = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName
        )
    except x509.ExtensionNotFound:
        dns = []
    if names != [node_id] or dns != [node_id]:
        raise PeerIdentityError(f"the certificate's name is not its node id {node_id}")
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature):
        raise PeerIdentityError("the certificate is not validly self-signed") from None
    return node_id


# -- this node's identity ---------------------------------------------------------------------
@dataclass(frozen=True)
class TlsIdentity:
    """This node's TLS key and certificate (PEM), their files, and its node id."""

    node_id: str
    key_pem: bytes
    cert_pem: bytes
    key_path: Path
    cert_path: Path


def create_identity(home: Path, node_key: PrivateKey) -> TlsIdentity:
    """Make a new TLS key and bound certificate in `home` (key mode 0600, certificate 0644)."""
    tls_key = ec.generate_private_key(ec.SECP256R1())
    key_pem = tls_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    cert_pem = make_certificate(node_key, tls_key).public_bytes(serialization.Encoding.PEM)
    key_path, cert_path = home / TLS_KEY_FILE, home / TLS_CERT_FILE
    write_secret(key_path, key_pem)
    create_file(cert_path, cert_pem, 0o644)
    return TlsIdentity(compute_node_id(node_key.pubkey), key_pem, cert_pem, key_path, cert_path)


def load_identity(home: Path, node_key: PrivateKey) -> TlsIdentity:
    """The home's TLS identity; ConfigError if its files are missing, unreadable, or not bound to `node_key`."""
    key_path, cert_path = home / TLS_KEY_FILE, home / TLS_CERT_FILE
    node_id = compute_node_id(node_key.pubkey)
    fix = f"(delete {key_path} and {cert_path} to have new ones made at the next start)"
    try:
        key_pem, cert_pem = read_secret(key_path), cert_path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(f"{exc.filename} is missing (run uocd init, or start the node once)") from None
    try:
        verify_certificate(cert_pem, node_id)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (PeerIdentityError, ValueError, TypeError) as exc:
        raise ConfigError(f"{cert_path}: not this node's TLS identity: {exc} {fix}") from None
    if key.public_key() != load_certificate(cert_pem).public_key():
        raise ConfigError(f"{key_path} is not the key of {cert_path} {fix}")
    return TlsIdentity(node_id, key_pem, cert_pem, key_path, cert_path)


def load_or_create_identity(home: Path, node_key: PrivateKey) -> TlsIdentity:
    """The home's TLS identity, made first if neither of its files exists (homes from before TLS)."""
    if not (home / TLS_KEY_FILE).exists() and not (home / TLS_CERT_FILE).exists():
        log.info("no TLS identity in %s: making one for node %s", home, compute_node_id(node_key.pubkey))
        return create_identity(home, node_key)
    return load_identity(home, node_key)


# -- pins and credentials ---------------------------------------------------------------------
class PeerPins:
    """The verified certificates of the configured peers (by node id) and this node's own: the client
    certificates this node's server accepts. Changed on the event loop, read by gRPC at each handshake."""

    def __init__(self, identity: TlsIdentity, allowed: frozenset[str]) -> None:
        self.identity = identity
        self.allowed = allowed
        self._certs: dict[str, bytes] = {}
        self._roots = identity.cert_pem  # replaced whole, never changed in place (read from gRPC's threads)
        self._version = 0
        self._served = 0
        self.on_unpinned: Callable[[], object] | None = None  # called from gRPC's threads: must be thread-safe
        self._redialed_at = -REDIAL_INTERVAL_S

    def get(self, node_id: str) -> bytes | None:
        """The pinned certificate (PEM) of `node_id`, if any."""
        return self._certs.get(node_id)

    def pin(self, node_id: str, cert_pem: bytes) -> None:
        """Pin a verified certificate of a configured peer (replacing its former one)."""
        if node_id not in self.allowed or self._certs.get(node_id) == cert_pem:
            return
        self._certs[node_id] = cert_pem
        self._roots = b"".join([self.identity.cert_pem, *(self._certs[k] for k in sorted(self._certs))])
        self._version += 1

    def compute_server_configuration(self) -> grpc.ServerCertificateConfiguration:
        """The server's certificate and the client certificates it accepts now."""
        return grpc.ssl_server_certificate_configuration(
            [(self.identity.key_pem, self.identity.cert_pem)], root_certificates=self._roots
        )

    def fetch_configuration(self) -> grpc.ServerCertificateConfiguration | None:
        """gRPC's per-handshake question: a new configuration if the pins changed, else None."""
        if self.on_unpinned is not None and len(self._certs) < len(self.allowed):
            now = time.monotonic()
            if now - self._redialed_at >= REDIAL_INTERVAL_S:
                self._redialed_at = now
                with contextlib.suppress(RuntimeError):  # the event loop is closing: nothing to dial
                    self.on_unpinned()
        version = self._version
        if version == self._served:
            return None
        self._served = version
        return self.compute_server_configuration()


def build_server_credentials(pins: PeerPins) -> grpc.ServerCredentials:
    """Server credentials: this node's certificate; a client certificate required, one of the pinned ones."""
    return grpc.dynamic_ssl_server_credentials(
        pins.compute_server_configuration(), pins.fetch_configuration, require_client_authentication=True
    )


def build_channel_credentials(identity: TlsIdentity, peer_cert_pem: bytes) -> grpc.ChannelCredentials:
    """Channel credentials presenting `identity` and trusting only the (verified) certificate `peer_cert_pem`."""
    return grpc.ssl_channel_credentials(
        root_certificates=peer_cert_pem, private_key=identity.key_pem, certificate_chain=identity.cert_pem
    )


def compute_channel_options(node_id: str) -> list[tuple[str, str]]:
    """Channel options naming the peer by its node id (the name its certificate carries)."""
    return [("grpc.ssl_target_name_override", node_id)]


def build_self_channel(identity: TlsIdentity) -> tuple[grpc.ChannelCredentials, list[tuple[str, str]]]:
    """Credentials and options of a channel to this node as itself (tools and tests run with the node's home)."""
    return build_channel_credentials(identity, identity.cert_pem), compute_channel_options(identity.node_id)


async def fetch_peer_certificate(host_port: str, identity: TlsIdentity, timeout_s: float) -> bytes:
    """The certificate (DER) a gRPC server at `host_port` presents, taken in a TLS handshake that trusts
    nothing (the caller verifies it). OSError, ssl.SSLError or TimeoutError if there is none."""
    host, _, port = host_port.rpartition(":")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["h2"])
    context.load_cert_chain(identity.cert_path, identity.key_path)
    async with asyncio.timeout(timeout_s):
        _, writer = await asyncio.open_connection(host.strip("[]"), int(port), ssl=context, server_hostname=None)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        with contextlib.suppress(Exception):
            writer.transport.abort()
    if not der:
        raise ssl.SSLError("the server presented no certificate")
    return bytes(der)


def parse_peer_address(text: object) -> tuple[str, str]:
    """(node id, host:port) of a NODE_ID@HOST:PORT peer address; ValueError saying what is wrong."""
    if not isinstance(text, str):
        raise ValueError(f"a peer address is a string NODE_ID@HOST:PORT, got {text!r}")
    node_id, at, host_port = text.partition("@")
    if not at:
        raise ValueError(f"peer {text!r} has no node id: write it NODE_ID@HOST:PORT (`uocd show-node-id` prints it)")
    if not is_node_id(node_id):
        raise ValueError(f"peer {text!r}: the node id must be 40 lower-case hex digits, got {node_id!r}")
    host, _, port = host_port.rpartition(":")
    if not host or not (port.isascii() and port.isdigit() and len(port) <= 5 and 1 <= int(port) <= 65535):
        raise ValueError(f"peer {text!r}: the address after @ must be host:port with a port in 1..65535")
    return node_id, host_port


def get_peer_node_id(context: grpc.aio.ServicerContext) -> str | None:
    """The node id of the peer making a call (its pinned certificate's name), None on a plaintext server."""
    names = context.auth_context().get("x509_common_name") or []
    return names[0].decode() if names else None
