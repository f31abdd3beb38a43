"""Image references: parsing, normalization and display, exactly as Docker does it.

This module owns the grammar of image references (``[domain/]path[:tag][@digest]``) and the
Docker Hub normalization rules (``ubuntu`` -> ``docker.io/library/ubuntu:latest``). It is a
faithful port of ``ParseNormalizedNamed`` + ``TagNameOnly`` from
github.com/distribution/reference (the package the Docker CLI and Engine use), with the digest
checks of github.com/opencontainers/go-digest, so that a reference means the same image here
as it does to ``docker pull``. The regular expressions are transcribed from ``regexp.go``.

Where we deliberately differ from Docker, it is to refuse something Docker accepts but that
cannot name an image in a registry (see :func:`parse_reference`); we never accept anything
Docker refuses.

Pure module: no I/O, standard library only. The rest of the tool gets a validated, immutable
:class:`Reference` and never re-parses strings itself.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import replace
from typing import Final

from imginspect._record import Record, record
from imginspect.digest import DIGEST_HEX_LENGTHS, DIGEST_HINT, is_valid_digest
from imginspect.errors import InvalidReferenceError

__all__ = [
    "DEFAULT_DOMAIN",
    "DEFAULT_TAG",
    "DOCKER_HUB_API_HOST",
    "DOCKER_HUB_HOSTS",
    "LEGACY_DEFAULT_DOMAIN",
    "OFFICIAL_REPO_PREFIX",
    "REPOSITORY_NAME_MAX_LENGTH",
    "Reference",
    "host_without_port",
    "is_docker_hub",
    "is_loopback_host",
    "is_valid_tag",
    "parse_reference",
]

#: The canonical name of Docker Hub in references ("ubuntu" -> "docker.io/library/ubuntu").
DEFAULT_DOMAIN: Final = "docker.io"
#: Docker Hub's historical name ("the Docker Index"); canonicalized to DEFAULT_DOMAIN.
LEGACY_DEFAULT_DOMAIN: Final = "index.docker.io"
#: The host that actually serves Docker Hub's registry API. docker.io itself does not.
DOCKER_HUB_API_HOST: Final = "registry-1.docker.io"
#: Every name Docker Hub goes by; the one list of them (credentials, certs.d, TLS hints, ...).
DOCKER_HUB_HOSTS: Final = frozenset({DEFAULT_DOMAIN, LEGACY_DEFAULT_DOMAIN, DOCKER_HUB_API_HOST})
#: Namespace of Docker Hub's official images; added to one-component Hub names.
OFFICIAL_REPO_PREFIX: Final = "library/"
#: Tag assumed when a reference names neither a tag nor a digest.
DEFAULT_TAG: Final = "latest"
#: Maximum length of the repository path. Since distribution/reference v0.6.0 (PR #9, used by
#: Docker 27+) only the path counts, not the domain: "docker.io/" + 255 characters is valid.
REPOSITORY_NAME_MAX_LENGTH: Final = 255

_LOCALHOST: Final = "localhost"

# --- The reference grammar, transcribed from distribution/reference regexp.go. ---------------
# Compiled with re.ASCII because Go's \w is ASCII-only, and always applied with fullmatch()
# because Python's "$" would also match before a trailing newline, which Go's does not.
# Python's backtracking engine picks the same submatches as Go's leftmost-first RE2 semantics,
# which matters for the optional domain group: it prefers treating the first segment as a domain.

# Path components: lowercase alphanumerics joined by one '.', one or two '_', or any run of '-'.
_ALPHANUMERIC: Final = r"[a-z0-9]+"
_SEPARATOR: Final = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT: Final = rf"{_ALPHANUMERIC}(?:{_SEPARATOR}{_ALPHANUMERIC})*"
_REMOTE_NAME: Final = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"

# Domains: a DNS-like name (uppercase allowed), an IPv4 address, or a bracketed IPv6 address
# (no zone, no dotted IPv4 tail), with an optional numeric port that is not range-checked.
_DOMAIN_NAME_COMPONENT: Final = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME: Final = rf"{_DOMAIN_NAME_COMPONENT}(?:\.{_DOMAIN_NAME_COMPONENT})*"
_IPV6_ADDRESS: Final = r"\[(?:[a-fA-F0-9:]+)\]"
_HOST: Final = rf"(?:{_DOMAIN_NAME}|{_IPV6_ADDRESS})"
_OPTIONAL_PORT: Final = r"(?::[0-9]+)?"
_DOMAIN_AND_PORT: Final = _HOST + _OPTIONAL_PORT

_NAME: Final = rf"(?:{_DOMAIN_AND_PORT}/)?{_REMOTE_NAME}"
_TAG: Final = r"[\w][\w.-]{0,127}"
# The reference grammar's digest: loose on purpose; go-digest validates it afterwards.
_DIGEST: Final = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9A-Fa-f]{32,}"
# A bare image ID (sha256 hex without the algorithm).
_IDENTIFIER: Final = r"[a-f0-9]{64}"

_REFERENCE_RE: Final = re.compile(rf"({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?", re.ASCII)
_ANCHORED_NAME_RE: Final = re.compile(rf"(?:({_DOMAIN_AND_PORT})/)?({_REMOTE_NAME})", re.ASCII)
_DOMAIN_RE: Final = re.compile(_DOMAIN_AND_PORT, re.ASCII)
_PATH_COMPONENT_RE: Final = re.compile(_PATH_COMPONENT, re.ASCII)
_TAG_RE: Final = re.compile(_TAG, re.ASCII)
_DIGEST_RE: Final = re.compile(_DIGEST, re.ASCII)
_IDENTIFIER_RE: Final = re.compile(_IDENTIFIER, re.ASCII)

# --- go-digest (v1.0.0) validation, which Parse applies to the digest after the grammar. -------
# The algorithms Docker registers (crypto/sha256 and crypto/sha512, the latter also providing
# sha384), with the hex length each must have (imginspect.digest); the hex must be lowercase.
_DIGEST_HEX_LENGTHS: Final = DIGEST_HEX_LENGTHS
_LOWER_HEX_RE: Final = re.compile(r"[a-f0-9]+", re.ASCII)

_TAG_HINT: Final = (
    "a tag is 1 to 128 characters: letters, digits, '_', '.' and '-', not starting with '.' or '-'"
)
_DIGEST_HINT: Final = DIGEST_HINT
_COMPONENT_HINT: Final = (
    "repository name components are lowercase letters and digits, separated by '.', '_', '__' "
    "or dashes, and cannot start or end with a separator"
)


def _quote(text: str) -> str:
    """Quote user input for an error message, escaping control characters and quotes."""
    return json.dumps(text, ensure_ascii=False)


@record
class Reference(Record):
    """A normalized image reference, as :func:`parse_reference` returns it.

    Build one with :func:`parse_reference`; the constructor does not validate, so a hand-made
    instance is only as good as its fields. A reference may carry both a tag and a digest:
    then the digest is what identifies the image and the tag is kept for display only.
    """

    domain: str  # "docker.io", "localhost:5000", "[::1]:5000", "registry-1.docker.io"
    path: str  # "library/ubuntu"
    tag: str | None = None  # None when only a digest was given
    digest: str | None = None  # "sha256:<hex>" or None

    @property
    def name(self) -> str:
        """The canonical repository name, ``domain/path``: ``docker.io/library/ubuntu``."""
        return f"{self.domain}/{self.path}"

    @property
    def api_host(self) -> str:
        """The host (and port) to send registry API requests to.

        docker.io is only a name: Docker Hub's registry API lives on registry-1.docker.io.
        """
        return DOCKER_HUB_API_HOST if self.domain == DEFAULT_DOMAIN else self.domain

    @property
    def is_docker_hub(self) -> bool:
        """Whether the reference names Docker Hub by its canonical domain."""
        return self.domain == DEFAULT_DOMAIN

    @property
    def target(self) -> str:
        """What to ask the registry for: the digest when there is one, otherwise the tag.

        A digest pins the content, so ``name:tag@digest`` resolves by digest exactly as Docker
        does. A hand-built reference with neither falls back to the default tag.
        """
        return self.digest or self.tag or DEFAULT_TAG

    @property
    def familiar_name(self) -> str:
        """Docker's ``FamiliarName``: the short form the Docker UI shows.

        Drops ``docker.io/``, and ``library/`` when what follows has no further slash:
        ``ubuntu``, ``foo/bar``, ``library/foo/bar``, ``localhost:5000/x``.
        """
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        if self.path.startswith(OFFICIAL_REPO_PREFIX):
            remainder = self.path[len(OFFICIAL_REPO_PREFIX) :]
            # Docker strips library/ only for a single remaining component (see its TODO about
            # nested namespaces on Hub), so that "library/foo/bar" stays unambiguous.
            if "/" not in remainder:
                return remainder
        return self.path

    def familiar_string(self) -> str:
        """Docker's ``FamiliarString``: familiar name plus ``:tag`` and ``@digest`` as present."""
        return self._with_suffixes(self.familiar_name)

    def __str__(self) -> str:
        """The canonical form, ``name[:tag][@digest]``; parsing it gives back an equal value."""
        return self._with_suffixes(self.name)

    def with_digest(self, digest: str) -> Reference:
        """The same name and tag, pinned to ``digest`` (validated like a parsed digest)."""
        _check_digest(digest, digest)
        return replace(self, digest=digest)

    def _with_suffixes(self, name: str) -> str:
        tag = f":{self.tag}" if self.tag is not None else ""
        digest = f"@{self.digest}" if self.digest is not None else ""
        return f"{name}{tag}{digest}"


def parse_reference(text: str) -> Reference:
    """Parse and normalize an image reference the way ``docker pull`` does.

    This is Docker's ``ParseNormalizedNamed`` followed by ``TagNameOnly``: the default domain
    and the ``library/`` namespace are filled in, ``index.docker.io`` becomes ``docker.io``,
    and the tag ``latest`` is added when neither a tag nor a digest is given.

    Two inputs Docker's parser accepts are refused, because neither can name an image in a
    registry: a bare digest such as ``sha256:<64 hex>`` (Docker reads it as image ``sha256``
    with that hex as its tag; ``docker run`` treats it as a local image ID), and a first
    segment that contains a dot but is no valid host, such as ``foo_bar.com/x`` (Docker
    parses it with an empty domain, which no registry request can use).

    Raises :class:`InvalidReferenceError` for anything else that is not a valid reference;
    it never raises any other exception, whatever the input string.
    """
    return _parse(text, suggest=True)


def _parse(text: str, *, suggest: bool) -> Reference:
    """:func:`parse_reference`; ``suggest`` allows one level of "did you mean" re-parsing."""
    # Same order of checks as ParseNormalizedNamed, so that the same error wins.
    if _IDENTIFIER_RE.fullmatch(text):
        raise InvalidReferenceError(
            f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings",
            hint="that looks like an image ID; registries are queried by repository name, "
            f"e.g. NAME@sha256:{text}",
        )
    if _is_registered_digest(text):
        raise InvalidReferenceError(
            f"invalid reference format: {_quote(text)} is a digest, not an image name",
            hint=f"name the repository too, e.g. NAME@{text}",
        )

    domain, remainder = _split_docker_domain(text)
    # Docker checks case on the remote name up to the first ':', i.e. before any tag. That may
    # include an "@algorithm" when there is no tag; an uppercase algorithm is reported as a
    # digest problem below rather than as a repository-name one.
    colon = remainder.find(":")
    remote = remainder if colon < 0 else remainder[:colon]
    repository = remote.partition("@")[0]
    if repository.lower() != repository:
        raise InvalidReferenceError(
            # Docker's exact words; quoted only if the input holds control characters, so
            # the message stays one line.
            f"invalid reference format: repository name "
            f"({repository if repository.isprintable() else _quote(repository)}) "
            "must be lowercase",
            hint=_lowercase_hint(text) if suggest else None,
        )

    candidate = f"{domain}/{remainder}"
    match = _REFERENCE_RE.fullmatch(candidate)
    if match is None:
        lowered = candidate.lower()
        if lowered != candidate and _REFERENCE_RE.fullmatch(lowered):
            # Docker's Parse reports this as a case problem: it happens when an uppercase
            # first segment (taken for a domain) is no valid host, as in "Foo_bar/x".
            raise InvalidReferenceError(
                f"invalid reference format: {_quote(text)}: repository name must be lowercase",
                hint=_lowercase_hint(text) if suggest else None,
            )
        reason, hint = _diagnose(text)
        raise InvalidReferenceError(
            f"invalid reference format: {_quote(text)}: {reason}", hint=hint
        )

    name, tag, digest = match.groups()
    name_match = _ANCHORED_NAME_RE.fullmatch(name)
    # Cannot fail: the reference grammar embeds the name grammar.
    assert name_match is not None
    parsed_domain, path = name_match.groups()
    if parsed_domain is None:
        # The first segment was taken for a domain (it contains a '.') but only parses as a
        # path component (it contains a '_'). Docker leaves the domain empty here; refuse.
        first = text.partition("/")[0]
        raise InvalidReferenceError(
            f"invalid reference format: {_quote(text)}: {_quote(first)} is not a valid "
            "registry host",
            hint="registry hosts contain only letters, digits, '-' and '.', and an optional "
            "port; a repository's first component cannot contain a '.' without a registry host "
            "in front of it",
        )
    if len(path) > REPOSITORY_NAME_MAX_LENGTH:
        raise InvalidReferenceError(
            f"invalid reference format: {_quote(text)}: repository name must not be more than "
            f"{REPOSITORY_NAME_MAX_LENGTH} characters (it has {len(path)})"
        )
    if digest is not None:
        _check_digest(digest, text)
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(domain=parsed_domain, path=path, tag=tag, digest=digest)


def is_valid_tag(text: str) -> bool:
    r"""Docker's tag grammar (``[\w][\w.-]{0,127}``, ASCII): the one definition of it."""
    return _TAG_RE.fullmatch(text) is not None


def is_docker_hub(domain: str) -> bool:
    """Whether ``domain`` (``host[:port]``) names Docker Hub, under any of its names."""
    return domain.lower() in DOCKER_HUB_HOSTS


def is_loopback_host(domain: str) -> bool:
    """Whether a reference domain designates this machine.

    The port and IPv6 brackets are ignored; true for ``localhost``, any address in
    127.0.0.0/8, ``::1``, and IPv4-mapped loopback addresses (``::ffff:127.0.0.1``). Never
    raises: anything unparsable is simply not loopback.
    """
    host = host_without_port(domain)
    if host.lower() == _LOCALHOST:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        # Checked explicitly: IPv6Address.is_loopback covers mapped addresses only on 3.13+.
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def host_without_port(domain: str) -> str:
    """``host[:port]`` or ``[v6][:port]`` without the port and brackets."""
    if domain.startswith("["):
        end = domain.find("]")
        return domain[1:end] if end > 0 else domain
    if domain.count(":") == 1:
        return domain.partition(":")[0]
    # No port, or an unbracketed IPv6 address whose colons are not port separators.
    return domain


def _looks_like_domain(segment: str) -> bool:
    """Docker's test for whether a reference's first segment is a registry domain.

    Path components are lowercase and cannot contain ':', so a first segment that is
    ``localhost``, contains '.' or ':' or has an uppercase letter is taken as a host.
    """
    return segment == _LOCALHOST or "." in segment or ":" in segment or segment.lower() != segment


def _split_docker_domain(name: str) -> tuple[str, str]:
    """Port of Docker's ``splitDockerDomain``: the domain and the rest (path, tag, digest)."""
    maybe_domain, slash, maybe_remainder = name.partition("/")
    if not slash:
        # A single segment is always a Hub official image, even "localhost" or "foo:5000"
        # (which is image "foo" with tag "5000"), never a host.
        return DEFAULT_DOMAIN, OFFICIAL_REPO_PREFIX + name
    if maybe_domain == LEGACY_DEFAULT_DOMAIN:
        domain, remainder = DEFAULT_DOMAIN, maybe_remainder
    elif _looks_like_domain(maybe_domain):
        domain, remainder = maybe_domain, maybe_remainder
    else:
        domain, remainder = DEFAULT_DOMAIN, name
    # "docker.io/ubuntu" means the official image; other registries have no such namespace.
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPO_PREFIX + remainder
    return domain, remainder


def _is_registered_digest(text: str) -> bool:
    """Whether ``text`` is a complete digest go-digest accepts (``ParseAnyReference``'s test)."""
    return is_valid_digest(text)


def _check_digest(digest: str, text: str) -> None:
    """go-digest's ``Digest.Validate`` for the algorithms Docker registers; raise if invalid."""
    if not _DIGEST_RE.fullmatch(digest):
        raise InvalidReferenceError(
            f"invalid reference format: {_quote(text)}: malformed digest {_quote(digest)}",
            hint=_DIGEST_HINT,
        )
    algorithm, _, encoded = digest.partition(":")
    expected = _DIGEST_HEX_LENGTHS.get(algorithm)
    if expected is None:
        supported = ", ".join(_DIGEST_HEX_LENGTHS)
        raise InvalidReferenceError(
            f"invalid reference format: {_quote(text)}: unsupported digest algorithm "
            f"{_quote(algorithm)} (supported: {supported})",
            hint="digest algorithms are lowercase"
            if algorithm.lower() in _DIGEST_HEX_LENGTHS
            else None,
        )
    if len(encoded) != expected:
        raise InvalidReferenceError(
            f"invalid reference format: {_quote(text)}: invalid checksum digest length: "
            f"{algorithm} needs {expected} hexadecimal digits, got {len(encoded)}"
        )
    if not _LOWER_HEX_RE.fullmatch(encoded):
        raise InvalidReferenceError(
            f"invalid reference format: {_quote(text)}: invalid checksum digest format: "
            f"{algorithm} hex must be lowercase",
            hint=f"use {algorithm}:{encoded.lower()}",
        )


def _lowercase_hint(text: str) -> str:
    """Suggest the input with its repository path lowercased, when that parses."""
    base = "repository names must be lowercase (registry hosts and tags may use uppercase)"
    first, slash, _ = text.partition("/")
    start = 0
    if slash and _looks_like_domain(first) and _looks_like_domain(first.lower()):
        # A real host stays as typed. A first segment that is a "host" only because it has
        # uppercase letters ("MyOrg/app") was almost certainly meant as a namespace.
        start = len(first) + 1
    colon = text.find(":", start)
    end = len(text) if colon < 0 else colon
    at = text.find("@", start, end)
    end = end if at < 0 else at
    suggestion = text[:start] + text[start:end].lower() + text[end:]
    if suggestion == text:
        return base
    try:
        _parse(suggestion, suggest=False)
    except InvalidReferenceError:
        return base
    return f"{base}; did you mean {_quote(suggestion)}?"


def _diagnose(text: str) -> tuple[str, str | None]:
    """Say which part of an unparsable reference is wrong; only used to word the error.

    Whether a reference is valid is decided by the grammar alone; this walks the input
    piece by piece afterwards to name the first piece at fault.
    """
    if not text:
        return "empty image reference", "give an image name, e.g. ubuntu or ghcr.io/owner/image:tag"
    if any(ch.isspace() for ch in text):
        return "contains whitespace", None
    scheme, sep, rest = text.partition("://")
    if sep:
        return (
            "an image reference is not a URL",
            f"drop the {_quote(scheme + '://')} prefix: {rest}" if rest else None,
        )
    name_tag, at, digest = text.partition("@")
    if at:
        if not digest:
            return "missing digest after '@'", _DIGEST_HINT
        if not _DIGEST_RE.fullmatch(digest):
            return f"malformed digest {_quote(digest)}", _DIGEST_HINT
    name = name_tag
    colon, slash = name_tag.rfind(":"), name_tag.rfind("/")
    if colon > slash:
        name, tag = name_tag[:colon], name_tag[colon + 1 :]
        if not tag:
            return "missing tag after ':'", _TAG_HINT
        if len(tag) > 128:
            return f"tag is {len(tag)} characters long, the maximum is 128", _TAG_HINT
        if not _TAG_RE.fullmatch(tag):
            return f"invalid tag {_quote(tag)}", _TAG_HINT
    if not name:
        return "missing repository name", None
    components = name.split("/")
    if len(components) > 1 and _looks_like_domain(components[0]):
        if not _DOMAIN_RE.fullmatch(components[0]):
            return (
                f"invalid registry host {_quote(components[0])}",
                "a registry host is a DNS name, an IPv4 address or a bracketed IPv6 address, "
                "with an optional numeric port",
            )
        components = components[1:]
    for component in components:
        if not component:
            return "empty repository name component ('//' or a '/' at either end)", None
        if not _PATH_COMPONENT_RE.fullmatch(component):
            return f"invalid repository name component {_quote(component)}", _COMPONENT_HINT
    return "not a valid image reference", "expected [REGISTRY/]REPOSITORY[:TAG][@DIGEST]"
