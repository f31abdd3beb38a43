"""Content digests: parsing, validation and computing them from bytes received.

A digest is always computed over the exact bytes the registry sent; nothing here ever
re-serializes a document. Pure module (hashlib only).
"""

from __future__ import annotations

import hashlib
import re

from imginspect.errors import DigestMismatchError, MalformedDocumentError

#: The algorithms the OCI image spec registers (and Docker's go-digest), with the length of
#: the lowercase hex each produces. The one definition of the digest grammar's algorithms.
DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
_ALGORITHMS = DIGEST_HEX_LENGTHS
#: How to write a digest, for error hints.
DIGEST_HINT = "a digest is ALGORITHM:HEX, e.g. sha256: followed by 64 lowercase hexadecimal digits"
_DIGEST_RE = re.compile(r"([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)")


def is_valid_digest(value: object) -> bool:
    """True if ``value`` is a digest string of a registered algorithm with the right length."""
    if not isinstance(value, str):
        return False
    if len(value) == 71 and value.startswith("sha256:"):
        # Nearly every digest: no regular expression needed (a batch checks several per
        # reference).
        return _LOWER_HEX.issuperset(value[7:])
    match = _DIGEST_RE.fullmatch(value)  # not match(): "$" would let a final newline in
    if match is None:
        return False
    algorithm, encoded = match.groups()
    length = _ALGORITHMS.get(algorithm)
    return length is not None and len(encoded) == length and _is_lower_hex(encoded)


_LOWER_HEX = frozenset("0123456789abcdef")


def _is_lower_hex(text: str) -> bool:
    return _LOWER_HEX.issuperset(text)


def algorithm_of(digest: str) -> str:
    return digest.split(":", 1)[0]


def new_hasher(algorithm: str = "sha256") -> hashlib._Hash:
    """A hash object for ``algorithm`` (one of the registered ones)."""
    if algorithm not in _ALGORITHMS:
        raise MalformedDocumentError(f"unsupported digest algorithm {algorithm!r}")
    return hashlib.new(algorithm)


def compute_digest(data: bytes, algorithm: str = "sha256") -> str:
    hasher = new_hasher(algorithm)
    hasher.update(data)
    return f"{algorithm}:{hasher.hexdigest()}"


def verify_digest(data: bytes, expected: str, *, what: str) -> None:
    """Raise :class:`DigestMismatchError` unless ``data`` hashes to ``expected``."""
    actual = compute_digest(data, algorithm_of(expected))
    if actual != expected:
        raise DigestMismatchError(
            f"digest mismatch for {what}: expected {expected}, received content hashes to {actual}",
            hint="the registry or something between it and you altered the content",
        )


def short_digest(digest: str, length: int = 12) -> str:
    """``sha256:0123456789ab`` style abbreviation for tables."""
    algorithm, _, encoded = digest.partition(":")
    return f"{algorithm}:{encoded[:length]}"
