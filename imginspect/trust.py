"""Which certificate authorities a verified TLS connection trusts: the operating system's.

docker and skopeo trust the system's store, so a CA added with ``update-ca-certificates``
(the usual corporate TLS-inspecting proxy) or the macOS keychain or the Windows certificate
store works for them; so it must for imginspect. :func:`system_trust_context` builds a
verifying client context from that store with ``truststore`` (the package pip uses: the OS
verifier on macOS and Windows, the system CA bundle on Linux), falling back to the standard
library's default context where it is unavailable. On Linux both honour ``SSL_CERT_FILE``
and ``SSL_CERT_DIR``, as OpenSSL does. certifi's bundle is never used.

Building a context reads the CA bundle, so nothing here runs before a verified TLS
connection needs it (a plain-HTTP or insecure registry never pays for it). Standard library
and truststore only: no httpx.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping


def system_trust_context() -> ssl.SSLContext:
    """A new verifying client context trusting the operating system's store.

    New each call, so that a caller may add CAs or a client certificate (certs.d) to its own.
    """
    try:
        import truststore
    except ImportError:  # pragma: no cover - a declared dependency; kept as a safe fallback
        return ssl.create_default_context()
    context: ssl.SSLContext = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    return context


def describe_trust_store(environ: Mapping[str, str] | None = None) -> str:
    """One line saying what verified connections trust (for ``imginspect auth``)."""
    env = os.environ if environ is None else environ
    overrides = [
        f"{name}={env[name]}" for name in ("SSL_CERT_FILE", "SSL_CERT_DIR") if env.get(name)
    ]
    if overrides:
        return f"the CAs in {', '.join(overrides)} (as OpenSSL reads them)"
    return "the operating system's trust store"
