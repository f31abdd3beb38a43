"""Typed errors and the exit codes they map to.

Every expected failure raises a subclass of :class:`ImginspectError`. Each class carries the
exit code the CLI documents for it, a one-line message and an optional hint. Only ``cli.py``
turns them into ``error: ...`` / ``hint: ...`` lines and process exit codes; the library just
raises them. Pure module: no third-party imports.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """The documented exit codes (README, "Exit codes")."""

    OK = 0
    REGISTRY = 1  # registry or protocol failure: 5xx, malformed document, digest mismatch
    USAGE = 2  # bad command line or invalid reference
    AUTH = 3  # authentication or authorization refused
    NOT_FOUND = 4  # repository, tag, digest or requested platform not found
    NETWORK = 5  # connection, TLS or timeout
    RATE_LIMITED = 6  # 429 / too many requests
    MISSING_PLATFORM = 7  # --require: a required platform is absent
    DIGEST_DRIFT = 8  # --expect-digest: the reference points elsewhere
    IMAGES_DIFFER = 9  # `imginspect diff`: the two targets differ
    INTERRUPTED = 130  # Ctrl-C
    BROKEN_PIPE = 141  # 128 + SIGPIPE: stdout's reader went away (`| head -1`), quietly
    TERMINATED = 143  # 128 + SIGTERM: pending cache writes flushed first


class ImginspectError(Exception):
    """Base class of every error the tool expects and reports without a traceback."""

    exit_code: ExitCode = ExitCode.REGISTRY
    #: a short machine-readable code used in structured (batch / extended JSON) output
    code: str = "registry-error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class RegistryError(ImginspectError):
    """The registry answered, but not usefully: 5xx, unexpected status, protocol violation."""


class MalformedDocumentError(RegistryError):
    """A manifest, index, config or token response is not what its type promises."""

    code = "malformed-document"


class UnsupportedManifestError(RegistryError):
    """A document type we deliberately do not handle (e.g. Docker schema1)."""

    code = "unsupported-manifest"


class DigestMismatchError(RegistryError):
    """Bytes received do not hash to the digest that was asked for or announced."""

    code = "digest-mismatch"


class TooLargeError(RegistryError):
    """A response body exceeds the bound we accept for its kind."""

    code = "too-large"


class UsageError(ImginspectError):
    """The command line is wrong."""

    exit_code = ExitCode.USAGE
    code = "usage"


class ConfigError(UsageError):
    """A configuration file or directory the user has is unusable (exit code 2).

    Local configuration, like a bad option: retrying will not help and it is no network
    problem, hence the usage exit code rather than 5.
    """

    code = "config"


class CertsDirError(ConfigError):
    """A ``certs.d`` host directory is inconsistent (lone ``.cert``/``.key``, unreadable CA)."""

    code = "certs-dir"


class InvalidReferenceError(UsageError):
    """The image reference cannot be parsed or violates the reference grammar."""

    code = "invalid-reference"


class AuthError(ImginspectError):
    """Authentication failed or access was denied."""

    exit_code = ExitCode.AUTH
    code = "auth"

    def __init__(
        self, message: str, *, hint: str | None = None, credentials_may_help: bool = True
    ) -> None:
        super().__init__(message, hint=hint)
        #: False when the registry itself is broken (e.g. an unusable token realm): then
        #: pointing the user at credentials would mislead
        self.credentials_may_help = credentials_may_help


class NotFoundError(ImginspectError):
    """The repository, tag or digest does not exist (or the registry hides it as 404)."""

    exit_code = ExitCode.NOT_FOUND
    code = "not-found"

    def __init__(self, message: str, *, hint: str | None = None, missing: str = "") -> None:
        super().__init__(message, hint=hint)
        #: what is missing when the source said so: "repository" (NAME_UNKNOWN), "tag",
        #: "digest", "manifest", "blob"; "" when it did not tell
        self.missing = missing


class PlatformNotFoundError(NotFoundError):
    """``--platform`` selected a platform the image does not provide."""

    code = "platform-not-found"


class NetworkError(ImginspectError):
    """Connection refused, DNS failure, TLS failure or timeout."""

    exit_code = ExitCode.NETWORK
    code = "network"


class RateLimitedError(ImginspectError):
    """The registry asked us to slow down (HTTP 429) beyond what we are willing to wait."""

    exit_code = ExitCode.RATE_LIMITED
    code = "rate-limited"


class MissingPlatformError(ImginspectError):
    """``--require``: one or more required platforms are absent."""

    exit_code = ExitCode.MISSING_PLATFORM
    code = "missing-platform"


class DigestDriftError(ImginspectError):
    """``--expect-digest``: the reference no longer points at the expected digest."""

    exit_code = ExitCode.DIGEST_DRIFT
    code = "digest-drift"


class ConnectionFailedError(NetworkError):
    """No connection could be made (refused, DNS, TLS handshake); nothing was sent."""

    code = "connection-failed"
    #: True for failures a retry cannot fix (TLS handshake, DNS)
    permanent: bool = False
