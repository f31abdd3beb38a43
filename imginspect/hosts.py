"""One configuration per registry host: how to reach it, verify it, and log in to it.

A :class:`HostConfig` is everything a run knows about one registry host, resolved once:
whether it is insecure (https without verification, then plain http) and why, its mirrors,
and where its credentials come from. The TLS context for a verified host (certs.d CAs and
client certificate on top of the operating system's store) is asked for by the transport
through :meth:`HostResolver.tls_context`, lazily, so a plain-HTTP run never builds one.

:class:`HostResolver` builds them from the run's settings (``--insecure``, ``certs.d`` and
``daemon.json`` through :class:`~imginspect.settings.RegistrySettings`, and a credential
provider such as :meth:`~imginspect.credentials.CredentialResolver.lookup`); the
:class:`~imginspect.inspector.Inspector` takes one resolver instead of several callbacks.
The rule "loopback registries are insecure, unless certs.d says how to verify them" lives
in :meth:`RegistrySettings.is_insecure` alone; everything asks through here.

No I/O at import; standard library only (the settings read files when first asked).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import field
from typing import TYPE_CHECKING

from imginspect._record import Record, record
from imginspect.settings import Mirror, RegistrySettings

if TYPE_CHECKING:
    import ssl

    from imginspect.auth import Credential, CredentialLookup

#: Finds the credential for (registry host, repository path); None means anonymous.
CredentialProvider = Callable[[str, str], "Credential | None"]


@record
class HostConfig(Record):
    """What a run knows about one registry host (``host[:port]`` as references write it)."""

    host: str
    #: https without verification, then plain http (as the Docker daemon treats them)
    insecure: bool
    #: why it is insecure (for explanations); None when it is verified
    insecure_reason: str | None = None
    #: ``registry-mirrors`` to try first, in order (Docker Hub only)
    mirrors: tuple[Mirror, ...] = ()
    #: the credential for a repository of this host (None: anonymous)
    credentials: CredentialLookup | None = field(default=None, compare=False)


class HostResolver:
    """Resolves a :class:`HostConfig` per host, once per run; thread-safe.

    ``settings``: certs.d and daemon.json (default: none at all, loopback hosts still
    insecure); ``credentials``: a provider for (host, repository) (default: anonymous);
    ``insecure``: treat every registry as insecure (``--insecure``).
    """

    def __init__(
        self,
        *,
        settings: RegistrySettings | None = None,
        credentials: CredentialProvider | None = None,
        insecure: bool = False,
    ) -> None:
        self.settings = settings if settings is not None else RegistrySettings.empty()
        self._credentials = credentials
        self._insecure_all = insecure
        self._configs: dict[str, HostConfig] = {}
        self._lock = threading.Lock()

    def config(self, host: str) -> HostConfig:
        """The configuration of ``host`` (resolved on first use, then reused)."""
        found = self._configs.get(host)
        if found is not None:
            return found
        reason = self.insecure_reason(host)
        provider = self._credentials
        config = HostConfig(
            host=host,
            insecure=reason is not None,
            insecure_reason=reason,
            mirrors=self.settings.mirrors_for(host),
            credentials=None if provider is None else functools.partial(provider, host),
        )
        with self._lock:
            return self._configs.setdefault(host, config)

    def is_insecure(self, host: str) -> bool:
        """Whether ``host`` (a registry, a mirror or a token realm) is reached insecurely."""
        return self.insecure_reason(host) is not None

    def insecure_reason(self, host: str) -> str | None:
        if self._insecure_all:
            return "--insecure: every registry is treated as insecure"
        return self.settings.insecure_reason(host)

    def tls_context(self, host: str) -> ssl.SSLContext | None:
        """The verifying context certs.d gives ``host``; None: the system trust store."""
        return self.settings.ssl_context_for(host)

    def explain(self, host: str) -> tuple[str, ...]:
        """Lines saying how ``host`` is reached (TLS mode, certs.d, mirrors); no secrets."""
        if self._insecure_all:
            reason = self.insecure_reason(host)
            return (f"tls: insecure (https without verification, then http): {reason}",)
        return self.settings.explain_host(host)
