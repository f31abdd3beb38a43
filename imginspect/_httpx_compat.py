"""Everything imginspect does with httpx and httpcore beyond calling their documented API.

transport.py is the only module that talks to httpx, and it does so through this one. What
is here, and why:

* **The start-up trim.** httpx's package ``__init__`` imports its own command-line tool,
  ``httpx._main``, which pulls in rich, click's extras and pygments: about half of the
  cost of ``import httpx`` (60 of 130 ms measured with ``python -X importtime``). httpx
  guards that import with ``except ImportError``; a ``None`` entry in :data:`sys.modules`
  makes it fail at once. This is the one use of an httpx internal left: should an httpx
  release stop tolerating it, :func:`_import_httpx` imports httpx again without the trim,
  and raises instead when :data:`STRICT_ENV` is set (the tests set it), so that the change
  is seen. (cli.py trims ``trio`` and ``anyio`` the same way, for the CLI process only.)

* **The per-operation deadline, through public API only.** httpx's ``HTTPTransport`` does
  not take an httpcore network backend, so :class:`PoolTransport` is our own
  :class:`httpx.BaseTransport` over :class:`httpcore.ConnectionPool` or
  :class:`httpcore.HTTPProxy` built with ``network_backend=`` (both public), mapping
  requests, responses and exceptions as httpx's own transport does. A client given a
  transport builds no proxy transports from the environment, so :func:`environment_mounts`
  reads ``HTTP(S)_PROXY``/``ALL_PROXY``/``NO_PROXY`` as httpx does (``urllib``'s
  ``getproxies``) and gives every proxy its own :class:`PoolTransport`, with our backend.

Supported (and tested, see scripts/floors): httpx 0.25.0 or newer with httpcore 0.18.0 or
newer.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.request import getproxies

#: Set to 1 (the tests do), a compatibility fallback raises instead of working around.
STRICT_ENV = "IMGINSPECT_STRICT_COMPAT"


class CompatibilityError(RuntimeError):
    """httpx or httpcore no longer behave as this module relies on (strict mode only)."""


def strict() -> bool:
    """Whether a fallback must raise (:data:`STRICT_ENV` set to a non-empty, non-0 value)."""
    return os.environ.get(STRICT_ENV, "") not in ("", "0")


def _import_httpx() -> bool:
    """Import httpx, without its command-line tool if it is not loaded yet; whether the
    trim took effect."""
    trimmed = False
    if "httpx" not in sys.modules and "httpx._main" not in sys.modules:
        sys.modules["httpx._main"] = None  # type: ignore[assignment]
        try:
            import httpx  # noqa: F401

            trimmed = True
        except ImportError as exc:
            # This httpx imports httpx._main unguarded: no trim then.
            for name in [n for n in sys.modules if n == "httpx" or n.startswith("httpx.")]:
                del sys.modules[name]
            if strict():
                raise CompatibilityError(
                    f"httpx no longer tolerates the start-up trim of httpx._main: {exc}"
                ) from exc
        finally:
            if sys.modules.get("httpx._main", False) is None:
                del sys.modules["httpx._main"]  # leave `import httpx._main` working for others
    return trimmed


#: Whether httpx was imported here, without its command-line tool.
TRIMMED = _import_httpx()

# The modules are loaded now; transport.py imports them from here, so that the trim above
# comes first.
import httpcore as httpcore  # noqa: E402
import httpx as httpx  # noqa: E402

# httpcore exceptions -> the httpx exceptions httpx's own transport raises for them.
# Order matters: the most specific classes first.
_EXCEPTIONS: tuple[tuple[type[Exception], type[httpx.HTTPError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


@contextmanager
def _mapped_exceptions() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        for source, target in _EXCEPTIONS:
            if isinstance(exc, source):
                raise target(str(exc)) from exc
        raise


class _ResponseStream(httpx.SyncByteStream):
    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        with _mapped_exceptions():
            yield from self._stream

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            with _mapped_exceptions():
                close()


class PoolTransport(httpx.BaseTransport):
    """An httpx transport over an httpcore pool that opens its connections through
    ``network_backend``: direct, or through an HTTP(S) ``proxy``."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext,
        limits: httpx.Limits,
        network_backend: httpcore.NetworkBackend,
        proxy: httpx.Proxy | None = None,
    ) -> None:
        self.network_backend = network_backend
        self.proxy_url = None if proxy is None else str(proxy.url)
        self._pool: httpcore.ConnectionPool
        if proxy is None:
            self._pool = httpcore.ConnectionPool(
                ssl_context=ssl_context,
                max_connections=limits.max_connections,
                max_keepalive_connections=limits.max_keepalive_connections,
                keepalive_expiry=limits.keepalive_expiry,
                network_backend=network_backend,
            )
        elif proxy.url.scheme in ("http", "https"):
            self._pool = httpcore.HTTPProxy(
                proxy_url=httpcore.URL(
                    scheme=proxy.url.raw_scheme,
                    host=proxy.url.raw_host,
                    port=proxy.url.port,
                    target=proxy.url.raw_path,
                ),
                proxy_auth=proxy.raw_auth,
                proxy_headers=proxy.headers.raw,
                ssl_context=ssl_context,
                proxy_ssl_context=proxy.ssl_context,
                max_connections=limits.max_connections,
                max_keepalive_connections=limits.max_keepalive_connections,
                keepalive_expiry=limits.keepalive_expiry,
                network_backend=network_backend,
            )
        else:
            raise ValueError(
                f"unsupported proxy {proxy.url.scheme}://{proxy.url.host}: "
                "only http:// and https:// proxies are"
            )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _mapped_exceptions():
            core_response = self._pool.handle_request(core_request)
        return httpx.Response(
            status_code=core_response.status,
            headers=core_response.headers,
            stream=_ResponseStream(core_response.stream),
            extensions=core_response.extensions,
        )

    def close(self) -> None:
        with _mapped_exceptions():
            self._pool.close()


def environment_proxies() -> dict[str, str | None]:
    """httpx mount patterns for the proxies the environment names (``HTTPS_PROXY``,
    ``HTTP_PROXY``, ``ALL_PROXY``, lower case too): pattern -> proxy URL, or None for a
    ``NO_PROXY`` entry (connect directly). The rules are httpx's (and curl's)."""
    found = getproxies()
    mounts: dict[str, str | None] = {}
    for scheme in ("http", "https", "all"):
        url = found.get(scheme)
        if url:
            mounts[f"{scheme}://"] = url if "://" in url else f"http://{url}"
    for entry in (part.strip() for part in found.get("no", "").split(",")):
        if entry == "*":
            return {}
        if not entry:
            continue
        if "://" in entry:
            mounts[entry] = None
        elif _is_ip(entry, 4):
            mounts[f"all://{entry}"] = None
        elif _is_ip(entry, 6):
            mounts[f"all://[{entry}]"] = None
        elif entry.lower() == "localhost":
            mounts[f"all://{entry}"] = None
        else:
            mounts[f"all://*{entry}"] = None
    return mounts


def _is_ip(text: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(text.split("/")[0]).version == version
    except ValueError:
        return False


def environment_mounts(
    direct: httpx.BaseTransport, make: Callable[[httpx.Proxy], httpx.BaseTransport]
) -> dict[str, httpx.BaseTransport]:
    """``mounts=`` for an :class:`httpx.Client`: each environment proxy gets ``make(proxy)``,
    each ``NO_PROXY`` entry the ``direct`` transport."""
    return {
        pattern: direct if url is None else make(httpx.Proxy(url))
        for pattern, url in environment_proxies().items()
    }
