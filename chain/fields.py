"""Typed field kinds, and the declared objects built from them (messages, governance content).

A field kind knows everything about one kind of value:

- `parse(value, where)`: a wire (JSON) value to its Python value, or `FieldError`;
- `check(value, where)`: validate an already-built Python value (what `parse` gives back);
- `dump(value)`: the Python value back to its wire form;
- `schema()`: its JSON schema (an OpenAPI 3.0 fragment);
- `parse_text(text, where)`: a command-line or URL string to its Python value;
- `describe()`: one line for people; `example()`: a valid value (for docs and tests).

A declared object is a frozen dataclass whose fields are declared once with `wire(kind, text)`:

    class MsgSend(Msg):
        TYPE: ClassVar[str] = "MsgSend"
        to: str = wire(ADDRESS, "the recipient")
        amount: int = wire(AMOUNT, "the amount sent")

From that one declaration come its wire parser, its JSON form, its schema and its validation when
built: the constructor checks every field with the same `check` the wire parser uses, so a bad value
raises the same `FieldError` (same code, same reason) whether it came off the wire or from Python.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar, Generic, TypeGuard, TypeVar, dataclass_transform

from .crypto import ADDRESS_PREFIX, is_valid_address
from .encoding import parse_json
from .errors import InvalidTx, MoneyError
from .money import DENOMS, MAX_NGONKA, describe_int, get_denom_factor, is_int, to_ngonka

T = TypeVar("T")
MAX_INT64 = MAX_NGONKA - 1
MAX_MODEL_ID = 128
MAX_TEXT_FIELD = 256
MAX_HF_REPO = 256
MAX_HF_COMMIT = 128
_ALNUM = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_CONTROL_CHARS = frozenset(
    chr(c) for c in (*range(0x20), *range(0x7F, 0xA0), *range(0x202A, 0x202F), *range(0x2066, 0x206A))
)
_BECH32_CHARS = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_AMOUNT_TEXT = re.compile(r"\s*([0-9][0-9_]*)\s*([A-Za-z]*)\s*")
_META = "uoc"
ADDRESS_FORMAT = "uoc-address"  # the OpenAPI format of an address: ADDRESS_PATTERN, and a bech32 checksum that holds
ADDRESS_LENGTH = len(ADDRESS_PREFIX) + 1 + 38  # the prefix, the separator, 32 characters of 20 bytes and 6 of checksum
ADDRESS_PATTERN = f"^{ADDRESS_PREFIX}1[{_BECH32_CHARS}]{{38}}$"


class FieldError(InvalidTx, ValueError):
    """A value a field kind refuses.

    `code` is what a transaction carrying it is rejected with ("malformed" unless the kind has its
    own code); `reason` is the kind's own code (invalid_address, invalid_amount, invalid_parameter…),
    which an API answering for one field reports."""

    code = "malformed"
    reason = "invalid_field"

    def __init__(self, message: str, *, code: str | None = None, reason: str | None = None) -> None:
        super().__init__(message, code=code)
        if reason is not None:
            self.reason = reason


def show(value: object) -> str:
    """A value for an error message, cut short (huge integers are described, not printed)."""
    if is_int(value):
        assert isinstance(value, int)
        return describe_int(value)
    return repr(value)[:40]


@lru_cache(maxsize=256)
def compute_key_sets(required: tuple[str, ...], allowed: tuple[str, ...]) -> tuple[frozenset[str], frozenset[str]]:
    """The required keys and every known key, as sets (the keys of a JSON object compare with them in C)."""
    return frozenset(required), frozenset(required + allowed)


def require_object(
    value: object, where: str, required: tuple[str, ...], allowed: tuple[str, ...] = ()
) -> dict[str, Any]:
    """`value` as a JSON object holding every `required` key and nothing but them and `allowed`."""
    if not isinstance(value, dict):
        raise FieldError(f"{where} must be a JSON object")
    needed, known = compute_key_sets(required, allowed)
    if needed <= value.keys() <= known:
        return value
    missing = [k for k in required if k not in value]
    extra = sorted(k for k in value if k not in required and k not in allowed)
    if missing:
        raise FieldError(f"{where} is missing field(s): {', '.join(missing)}")
    if extra:
        raise FieldError(f"{where} has unknown field(s): {', '.join(extra)}")
    return value


def parse_int_text(text: str, where: str, error: FieldError | None = None) -> int:
    """Decimal digits (underscores between them allowed) of at most 19 digits, or FieldError."""
    digits = text.replace("_", "")
    if not (digits.isascii() and digits.isdigit() and len(digits) <= 19) or "__" in text or text[:1] == "_":
        raise error or FieldError(f"{where} must be an integer, got {text[:40]!r}", reason="invalid_parameter")
    return int(digits)


def is_int_text(text: str) -> bool:
    """True if `text` spells an integer (a sign, then decimal digits), whatever its size."""
    digits = text[1:] if text[:1] in "+-" else text
    return digits.isascii() and digits.isdigit()


def compute_base64_pattern(size: int) -> str:
    """The pattern of canonical padded standard base64 of exactly `size` bytes (the unused low bits of the
    last character zero, as a strict decoder requires)."""
    quads, rest = divmod(size, 3)
    if rest == 0:
        return f"^[A-Za-z0-9+/]{{{4 * quads}}}$"
    last = "AQgw" if rest == 1 else "AEIMQUYcgkosw048"
    return f"^[A-Za-z0-9+/]{{{4 * quads + rest}}}[{last}]{'=' * (3 - rest)}$"


# -- kinds --------------------------------------------------------------------------------------


class Kind(Generic[T]):
    """A typed field kind (see the module docstring)."""

    code: str = "malformed"  # the code of a transaction carrying a bad value
    reason: str = "invalid_field"  # the kind's own code

    def fail(self, message: str) -> FieldError:
        """The FieldError of this kind."""
        return FieldError(message, code=self.code, reason=self.reason)

    def check(self, value: Any, where: str) -> T:
        """Validate a Python value of this kind; return it."""
        raise NotImplementedError

    def parse(self, value: Any, where: str) -> T:
        """A wire (JSON) value to its Python value; by default the same value, checked."""
        return self.check(value, where)

    def dump(self, value: T) -> Any:
        """The wire form of a Python value; by default the value itself."""
        return value

    def parse_text(self, text: str, where: str) -> T:
        """A command-line or URL string to its Python value; by default the string, checked."""
        return self.check(text, where)

    def schema(self) -> dict[str, Any]:
        """The JSON schema (OpenAPI 3.0) of the wire form."""
        raise NotImplementedError

    def describe(self) -> str:
        """One line for people."""
        raise NotImplementedError

    def example(self) -> T:
        """A valid Python value."""
        raise NotImplementedError


@dataclass(frozen=True)
class AddressKind(Kind[str]):
    """A bech32 `uoc1…` account address."""

    reason: str = "invalid_address"

    def check(self, value: Any, where: str) -> str:
        if not is_valid_address(value):
            raise self.fail(f"{where} must be a bech32 'uoc1…' address, got {show(value)}")
        return str(value)

    def schema(self) -> dict[str, Any]:
        return {
            "type": "string",
            "format": ADDRESS_FORMAT,
            "minLength": ADDRESS_LENGTH,
            "maxLength": ADDRESS_LENGTH,
            "description": f"bech32 (BIP-173) of 20 bytes: {ADDRESS_PATTERN}, the last 6 characters a checksum "
            f"of the others (format {ADDRESS_FORMAT})",
        }

    def describe(self) -> str:
        return f"a bech32 '{ADDRESS_PREFIX}1…' address"

    def example(self) -> str:
        from .crypto import PrivateKey

        return PrivateKey.from_name("example").address


def compute_ngonka(where: str, amount: object, denom: object) -> int:
    """to_ngonka with its MoneyError as a FieldError (the money code as the reason)."""
    try:
        return to_ngonka(amount, denom, field=where)
    except MoneyError as exc:
        raise FieldError(str(exc), reason=exc.code) from None


def compute_money_schema(amount: str, denom: str = "denom") -> dict[str, Any]:
    """The schema of an object {amount: int > 0, denom: a denomination} worth less than 2^63 ngonka: one
    branch per denomination, its largest amount the limit over the denomination's factor."""
    return {
        "oneOf": [
            {
                "type": "object",
                "required": [amount, denom],
                "properties": {
                    amount: {"type": "integer", "minimum": 1, "maximum": MAX_INT64 // factor},
                    denom: {"type": "string", "enum": [name]},
                },
                "additionalProperties": False,
            }
            for name, factor in DENOMS.items()
        ]
    }


@dataclass(frozen=True)
class AmountKind(Kind[int]):
    """An amount of money: a money object {"amount", "denom"} on the wire, ngonka (an int > 0) in Python."""

    reason: str = "invalid_amount"

    def check(self, value: Any, where: str) -> int:
        return compute_ngonka(where, value, "ngonka")

    def parse(self, value: Any, where: str) -> int:
        coin = require_object(value, where, ("amount", "denom"))
        return compute_ngonka(f"{where}.amount", coin["amount"], coin["denom"])

    def dump(self, value: int) -> Any:
        return {"amount": value, "denom": "ngonka"}

    def parse_text(self, text: str, where: str) -> int:
        """`1000` or `1_000` (ngonka), `5icoin` or `5 icoin`."""
        match = _AMOUNT_TEXT.fullmatch(text)
        if match is None:
            raise self.fail(f"{where} must be an amount such as 1000 (ngonka) or 5icoin, got {text[:40]!r}")
        amount = parse_int_text(match[1], where, self.fail(f"{where} has too many digits: {text[:40]!r}"))
        return compute_ngonka(where, amount, match[2] or "ngonka")

    def schema(self) -> dict[str, Any]:
        return compute_money_schema("amount")

    def describe(self) -> str:
        return 'a money object {"amount": int > 0, "denom": "ngonka"|"icoin"|…}, < 2^63 ngonka'

    def example(self) -> int:
        return 1000


@dataclass(frozen=True)
class DenomKind(Kind[str]):
    """A denomination of SPEC §1 (case-sensitive)."""

    reason: str = "invalid_denom"

    def check(self, value: Any, where: str) -> str:
        try:
            get_denom_factor(value, field=where)
        except MoneyError as exc:
            raise self.fail(str(exc)) from None
        return str(value)

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "enum": sorted(DENOMS)}

    def describe(self) -> str:
        return f"a denomination: {', '.join(DENOMS)}"

    def example(self) -> str:
        return "icoin"


@dataclass(frozen=True)
class PriceKind(Kind[int]):
    """A price as given: an integer > 0 (its denomination is another field)."""

    reason: str = "invalid_amount"

    def check(self, value: Any, where: str) -> int:
        return compute_ngonka(where, value, "ngonka")

    def parse_text(self, text: str, where: str) -> int:
        what = "an integer > 0 and < 2^63 ngonka" if is_int_text(text) else "an integer"
        return self.check(parse_int_text(text, where, self.fail(f"{where} must be {what}, got {text[:40]!r}")), where)

    def schema(self) -> dict[str, Any]:
        return {"type": "integer", "minimum": 1, "maximum": MAX_INT64}

    def describe(self) -> str:
        return "an integer > 0 (in its denomination; < 2^63 ngonka)"

    def example(self) -> int:
        return 300


@dataclass(frozen=True)
class IntKind(Kind[int]):
    """An integer from `minimum` to `maximum` (an id, a count, an epoch…)."""

    minimum: int = 0
    maximum: int = MAX_INT64
    text: str = "an integer"
    code: str = "malformed"
    reason: str = "invalid_parameter"

    def check(self, value: Any, where: str) -> int:
        if not is_int(value) or not self.minimum <= value <= self.maximum:
            top = "2^63-1" if self.maximum == MAX_INT64 else str(self.maximum)
            raise self.fail(f"{where} must be an integer from {self.minimum} to {top}, got {show(value)}")
        return int(value)

    def parse_text(self, text: str, where: str) -> int:
        top = "2^63-1" if self.maximum == MAX_INT64 else str(self.maximum)
        what = f"an integer from {self.minimum} to {top}" if is_int_text(text) else "an integer"
        return self.check(parse_int_text(text, where, self.fail(f"{where} must be {what}, got {text[:40]!r}")), where)

    def schema(self) -> dict[str, Any]:
        return {"type": "integer", "minimum": self.minimum, "maximum": self.maximum}

    def describe(self) -> str:
        top = "2^63-1" if self.maximum == MAX_INT64 else str(self.maximum)
        return f"{self.text}: an integer from {self.minimum} to {top}"

    def example(self) -> int:
        return max(self.minimum, 1)


@lru_cache(maxsize=64)
def compute_identifier_chars(punctuation: str) -> frozenset[str]:
    """The characters an identifier with `punctuation` may hold: ASCII letters, digits and `punctuation`."""
    return _ALNUM | frozenset(punctuation)


def is_identifier(value: str, punctuation: str) -> bool:
    """Whether every character of `value` is an ASCII letter, an ASCII digit or one of `punctuation`."""
    return compute_identifier_chars(punctuation).issuperset(value)


def is_free_text(value: str) -> bool:
    """Whether `value` holds no control character (C0, DEL, C1) and no bidirectional override."""
    return _CONTROL_CHARS.isdisjoint(value)


@dataclass(frozen=True)
class IdentifierKind(Kind[str]):
    """An identifier: 1 to `max_length` ASCII letters, digits and `punctuation` (no space, control
    character or markup, so it is safe in a URL, a terminal, HTML and any client's string)."""

    what: str = "an identifier"
    max_length: int = MAX_MODEL_ID
    punctuation: str = "-_./:"
    sample: str = "Qwen/Qwen2.5-7B"
    code: str = "malformed"
    reason: str = "invalid_identifier"

    def check(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(f"{where} must be a non-empty string")
        if len(value) > self.max_length:
            raise self.fail(f"{where} is {len(value)} characters, over the limit of {self.max_length}")
        if not is_identifier(value, self.punctuation):
            raise self.fail(f"{where} {show(value)} may only hold letters, digits and {' '.join(self.punctuation)}")
        return value

    def schema(self) -> dict[str, Any]:
        ordered = self.punctuation.replace("-", "") + ("-" if "-" in self.punctuation else "")
        return {"type": "string", "minLength": 1, "maxLength": self.max_length, "pattern": f"^[A-Za-z0-9{ordered}]+$"}

    def describe(self) -> str:
        return f"{self.what}: 1 to {self.max_length} letters, digits and {' '.join(self.punctuation)}"

    def example(self) -> str:
        return self.sample


@dataclass(frozen=True)
class EnumKind(Kind[str]):
    """One of a fixed list of strings."""

    options: tuple[str, ...] = ()
    code: str = "malformed"
    reason: str = "invalid_option"

    def check(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or value not in self.options:
            raise self.fail(f"{where} must be one of {', '.join(self.options)}, got {show(value)}")
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "enum": list(self.options)}

    def describe(self) -> str:
        return f"one of {' | '.join(self.options)}"

    def example(self) -> str:
        return self.options[0]


@dataclass(frozen=True)
class TextKind(Kind[str]):
    """A short free text (at most `max_length` characters, no control character nor bidirectional override)."""

    max_length: int = MAX_TEXT_FIELD

    def check(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or len(value) > self.max_length:
            raise self.fail(f"{where} must be a string of at most {self.max_length} characters")
        if not is_free_text(value):
            raise self.fail(f"{where} {show(value)} holds a control character")
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "maxLength": self.max_length, "pattern": "^[^\\x00-\\x1f\\x7f-\\x9f]*$"}

    def describe(self) -> str:
        return f"a string of at most {self.max_length} characters, no control characters"

    def example(self) -> str:
        return "example"


_HEX_DIGITS = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class HexKind(Kind[str]):
    """Exactly `size` bytes as lower-case hex (2 × size digits), such as a sha256 hash or a salt."""

    size: int = 32
    what: str = "32 bytes"
    code: str = "malformed"
    reason: str = "invalid_hex"

    def check(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or len(value) != 2 * self.size or not set(value) <= _HEX_DIGITS:
            raise self.fail(f"{where} must be {self.what}: {2 * self.size} lower-case hex digits, got {show(value)}")
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": f"^[0-9a-f]{{{2 * self.size}}}$"}

    def describe(self) -> str:
        return f"{self.what} as {2 * self.size} lower-case hex digits"

    def example(self) -> str:
        return "ab" * self.size


def is_decimal(value: Any) -> TypeGuard[str]:
    """True for a plain non-negative decimal string: digits, at most one point, digits on both sides."""
    if not isinstance(value, str) or not value.isascii():
        return False
    whole, dot, frac = value.partition(".")
    return whole.isdigit() and (not dot or frac.isdigit())


@dataclass(frozen=True)
class DecimalKind(TextKind):
    """A non-negative decimal string such as "0.95" (exact: never a float)."""

    def check(self, value: Any, where: str) -> str:
        super().check(value, where)
        if not is_decimal(value):
            raise self.fail(f'{where} must be a decimal string such as "0.95", got {show(value)}')
        return str(value)

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "maxLength": self.max_length, "pattern": r"^[0-9]+(\.[0-9]+)?$"}

    def describe(self) -> str:
        return 'a decimal string such as "0.95"'

    def example(self) -> str:
        return "0.95"


Pairs = tuple[tuple[str, Any], ...]  # a map's Python value: its (key, value) pairs, by key


@dataclass(frozen=True)
class MapKind(Kind[Pairs]):
    """A JSON object of 1 to `max_items` entries whose values are of kind `values`; in Python the tuple of
    its (key, value) pairs sorted by key (frozen, comparable).

    Its keys are not checked when parsed: an OpenAPI 3.0 schema cannot constrain property names, so a
    request valid by the schema would be refused before its signature is read. The rule that uses the
    map checks them with `check_keys` (of kind `keys`), once the transaction's signature is verified."""

    keys: Kind[Any] = dataclasses.field(default_factory=lambda: IdentifierKind())
    values: Kind[Any] = dataclasses.field(default_factory=lambda: DecimalKind())
    max_items: int = 16
    what: str = "name=value"
    sample: Pairs = ()  # its example (default: one entry of the kinds' examples)
    code: str = "malformed"  # an entry's error is reported with the map's code and reason
    reason: str = "invalid_field"

    def check(self, value: Any, where: str) -> Pairs:
        pairs = isinstance(value, tuple) and all(isinstance(p, tuple) and len(p) == 2 for p in value)
        if not pairs or not all(isinstance(k, str) for k, _ in value):
            raise self.fail(f"{where} must be (key, value) pairs with string keys, got {show(value)}")
        return self.parse(dict(value), where) if len(dict(value)) == len(value) else self.parse(None, where)

    def parse(self, value: Any, where: str) -> Pairs:
        if not isinstance(value, dict) or not 1 <= len(value) <= self.max_items:
            raise self.fail(f"{where} must be a JSON object of 1 to {self.max_items} entries, got {show(value)}")
        for key in sorted(value):
            try:
                self.values.check(value[key], f"{where}.{key[:40]}")
            except FieldError as exc:
                raise self.fail(str(exc)) from None
        return tuple(sorted(value.items()))

    def check_keys(self, value: Pairs, where: str) -> None:
        """Check every key with the `keys` kind (FieldError with the map's code naming the entry)."""
        for key, _ in value:
            try:
                self.keys.check(key, f"{where} key")
            except FieldError as exc:
                raise self.fail(str(exc)) from None

    def dump(self, value: Pairs) -> Any:
        return dict(value)

    def parse_text(self, text: str, where: str) -> Pairs:
        """`key=value[,key=value…]`."""
        entries: dict[str, str] = {}
        for item in text.split(","):
            key, eq, raw = item.strip().partition("=")
            if not eq or key in entries:
                raise self.fail(f"{where} must be {self.what}[,{self.what}…] with each key once, got {text[:60]!r}")
            entries[key] = raw.strip()
        return self.parse(entries, where)

    def schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "minProperties": 1,
            "maxProperties": self.max_items,
            "additionalProperties": self.values.schema(),
            "description": f"keys: {self.keys.describe()}",
        }

    def describe(self) -> str:
        return f"{self.what}[,…]: 1 to {self.max_items} entries; keys {self.keys.describe()}"

    def example(self) -> Pairs:
        return self.sample or ((self.keys.example(), self.values.example()),)


D = TypeVar("D", bound="Declared")


@dataclass(frozen=True)
class NestedKind(Kind[D]):
    """A declared object nested in another, chosen by its `@type` among the subclasses of `base`."""

    base: type[D]
    registry: Mapping[str, type[D]]
    text: str = "object"

    def check(self, value: Any, where: str) -> D:
        if not isinstance(value, self.base):
            raise self.fail(f"{where} must be {self.text} ({', '.join(sorted(self.registry))}), got {show(value)}")
        return value

    def parse(self, value: Any, where: str) -> D:
        if not isinstance(value, dict) or not isinstance(value.get("@type"), str):
            raise self.fail(f"{where} must be an object with a string '@type'")
        cls = self.registry.get(value["@type"])
        if cls is None:
            known = ", ".join(sorted(self.registry))
            raise self.fail(f"{where}.@type {value['@type']!r} is not known {self.text}; known: {known}")
        return cls.parse(value, where)

    def dump(self, value: D) -> Any:
        return value.to_json()

    def parse_text(self, text: str, where: str) -> D:
        """Its wire form as JSON text (the command line reads `@FILE` into it)."""
        try:
            value = parse_json(text)
        except InvalidTx as exc:
            raise self.fail(f"{where} ({self.text}) must be its JSON: {exc}") from None
        return self.parse(value, where)

    def schema(self) -> dict[str, Any]:
        return {
            "oneOf": [cls.schema() for _, cls in sorted(self.registry.items())],
            "discriminator": {"propertyName": "@type"},
        }

    def describe(self) -> str:
        return f"{self.text}: one of {', '.join(sorted(self.registry))}"

    def example(self) -> D:
        return self.registry[min(self.registry)].example()


# -- declared objects ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldSpec:
    """One declared field: its name, kind, description and whether it may be absent (None)."""

    name: str
    kind: Kind[Any]
    description: str
    optional: bool = False


def wire(kind: Kind[Any], description: str, *, default: Any = dataclasses.MISSING) -> Any:
    """Declare a wire field of a declared object (with `default=None`, an optional one)."""
    meta = {_META: (kind, description)}
    return dataclasses.field(default=default, metadata=meta)


@dataclass_transform(frozen_default=True, field_specifiers=(wire, dataclasses.field))
class Declared:
    """A frozen dataclass whose wire fields are declared with `wire`; validated when built.

    Subclasses are made dataclasses by `__init_subclass__` (no decorator); a subclass that defines
    `TYPE` is a concrete kind with that `@type` on the wire."""

    TYPE: ClassVar[str] = ""
    FIELDS: ClassVar[tuple[FieldSpec, ...]] = ()
    _WIRE_REQUIRED: ClassVar[tuple[str, ...]] = ("@type",)  # the keys of the wire form
    _WIRE_ALLOWED: ClassVar[tuple[str, ...]] = ("@type",)
    _DEFAULTS: ClassVar[dict[str, Any]] = {}  # the value of every field with a default

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        dataclasses.dataclass(frozen=True)(cls)
        specs = []
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if _META in f.metadata:
                kind, description = f.metadata[_META]
                specs.append(FieldSpec(f.name, kind, description, f.default is None))
        cls.FIELDS = tuple(specs)
        cls._WIRE_REQUIRED = ("@type", *(s.name for s in specs if not s.optional))
        cls._WIRE_ALLOWED = ("@type", *(s.name for s in specs if s.optional))
        fields = dataclasses.fields(cls)  # type: ignore[arg-type]
        cls._DEFAULTS = {f.name: f.default for f in fields if f.default is not dataclasses.MISSING}

    def __post_init__(self) -> None:
        """Check every field with its kind, then the object's own rules (`validate`)."""
        for spec in self.FIELDS:
            value = getattr(self, spec.name)
            if not (value is None and spec.optional):
                spec.kind.check(value, f"{self.TYPE}.{spec.name}")
        self.validate()

    def validate(self) -> None:
        """Rules between fields (none by default); FieldError if broken."""

    @classmethod
    def parse(cls: type[D], obj: Any, where: str) -> D:
        """Build from the wire form (`@type` already matched): exact field names, each field parsed.

        Each kind's `parse` checks its value (naming where it is on the wire) with the `check` the
        constructor runs, so the object is put together without checking the fields a second time;
        the rules between fields (`validate`) run as in the constructor."""
        require_object(obj, where, cls._WIRE_REQUIRED, cls._WIRE_ALLOWED)
        values = dict(cls._DEFAULTS)
        for spec in cls.FIELDS:
            name = spec.name
            if name in obj:
                values[name] = spec.kind.parse(obj[name], f"{where}.{name}")
        built = object.__new__(cls)
        built.__dict__.update(values)  # a frozen dataclass's fields live in its __dict__
        built.validate()
        return built

    def to_json(self) -> dict[str, Any]:
        """The wire form, with its `@type` (optional fields that are None are left out)."""
        out: dict[str, Any] = {"@type": self.TYPE}
        for spec in self.FIELDS:
            value = getattr(self, spec.name)
            if not (value is None and spec.optional):
                out[spec.name] = spec.kind.dump(value)
        return out

    @classmethod
    def schema(cls) -> dict[str, Any]:
        """The JSON schema (OpenAPI 3.0) of the wire form."""
        properties: dict[str, Any] = {"@type": {"type": "string", "enum": [cls.TYPE]}}
        for spec in cls.FIELDS:
            properties[spec.name] = {**spec.kind.schema(), "description": spec.description}
        required = ["@type", *(s.name for s in cls.FIELDS if not s.optional)]
        description = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else cls.TYPE
        schema = {
            "type": "object",
            "title": cls.TYPE,
            "description": description,
            "required": required,
            "properties": properties,
            "additionalProperties": False,
        }
        prices = [s.name for s in cls.FIELDS if isinstance(s.kind, PriceKind)]
        denoms = [s.name for s in cls.FIELDS if isinstance(s.kind, DenomKind)]
        if len(prices) == 1 and len(denoms) == 1:  # together below 2^63 ngonka: a bound per denomination
            schema["oneOf"] = [
                {"properties": {prices[0]: {"maximum": MAX_INT64 // factor}, denoms[0]: {"enum": [name]}}}
                for name, factor in DENOMS.items()
            ]
        return schema

    @classmethod
    def example(cls: type[D]) -> D:
        """A valid instance built from each required field's example."""
        return cls(**{s.name: s.kind.example() for s in cls.FIELDS if not s.optional})


@dataclass(frozen=True)
class Cli:
    """How the command line spells a declared object's command: `uocd tx PATH…`, its positional
    fields (the others are --options), their metavars and their command-line defaults."""

    path: tuple[str, ...]
    help: str
    description: str
    positional: tuple[str, ...] = ()
    metavars: Mapping[str, str] = dataclasses.field(default_factory=dict)
    defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)


# -- arguments (commands and queries) ----------------------------------------------------------------


@dataclass(frozen=True)
class Arg:
    """One argument of a command or a query: a positional (or path) argument, or an --option (a filter).

    `default` is used when it is omitted; `default_param` names a chain param whose value is the
    default instead (read from the node); `words` are strings that stand for a value ("current")."""

    name: str
    kind: Kind[Any]
    description: str
    positional: bool = False
    required: bool = True
    default: Any = None
    default_param: str | None = None
    metavar: str | None = None
    words: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    flag: str | None = None  # its command-line option (default: --name, with - for _)

    def parse_text(self, text: str) -> Any:
        """The value of the argument given as a string."""
        if text in self.words:
            return self.words[text]
        return self.kind.parse_text(text, self.name)

    def check(self, value: Any) -> Any:
        """An already-built value of the argument (None: the default)."""
        if value is None or value in self.words.values():
            return self.default if value is None else value
        return self.kind.check(value, self.name)

    @property
    def option(self) -> str:
        """Its command-line option (`--from-epoch`, `--limit`)."""
        return self.flag or "--" + self.name.replace("_", "-")

    def schema(self) -> dict[str, Any]:
        """The argument as an OpenAPI 3.0 parameter schema."""
        return {**self.kind.schema(), "description": self.description}
