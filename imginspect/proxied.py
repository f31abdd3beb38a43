"""Requests through a proxy the environment names: httpcore's ``HTTPProxy`` pools.

Imported only when a proxy is configured (:class:`imginspect.connections.Connections` asks
for one), so a run without a proxy never loads httpcore or h11. A proxy gets one pool per TLS
mode: forwarding for http targets, ``CONNECT`` tunnels for https ones. Every connect, TLS
handshake, read and write is capped by the current deadline (httpcore applies its read
timeout per socket read: a proxy that trickles bytes would otherwise never time out), and
httpcore's exceptions are turned into :mod:`imginspect.http11`'s, so the transport maps a
failure the same way whether or not a proxy carried the request.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import httpcore

from imginspect import http11

if TYPE_CHECKING:
    from imginspect.connections import Request, Target

#: Cap a timeout by the caller's deadline (:func:`imginspect.connections._capped`).
Cap = Callable[["float | None"], "float | None"]

#: httpcore's exceptions -> ours (most specific first: the first isinstance match wins).
_MAPPED: tuple[tuple[type[Exception], type[http11.HTTPError]], ...] = (
    (httpcore.ConnectTimeout, http11.ConnectTimeout),
    (httpcore.ReadTimeout, http11.ReadTimeout),
    (httpcore.WriteTimeout, http11.WriteTimeout),
    (httpcore.PoolTimeout, http11.PoolTimeout),
    (httpcore.TimeoutException, http11.TimeoutException),
    (httpcore.ConnectError, http11.ConnectError),
    (httpcore.ReadError, http11.ReadError),
    (httpcore.WriteError, http11.WriteError),
    (httpcore.ProxyError, http11.ProxyError),
    (httpcore.RemoteProtocolError, http11.RemoteProtocolError),
    (httpcore.UnsupportedProtocol, http11.UnsupportedProtocol),
    (httpcore.NetworkError, http11.NetworkError),
    (httpcore.ProtocolError, http11.ProtocolError),
)


#: Everything httpcore raises for a failed exchange.
_CORE_ERRORS = (
    httpcore.TimeoutException,
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.ProxyError,
    httpcore.UnsupportedProtocol,
)


def _mapped(exc: Exception) -> http11.HTTPError:
    for theirs, ours in _MAPPED:
        if isinstance(exc, theirs):
            mapped = ours(str(exc))
            mapped.__cause__ = exc
            return mapped
    return http11.HTTPError(str(exc))


def _refused(proxy: str, answer: str) -> http11.ProxyError:
    """The proxy's refusal, naming it by its origin (never its credentials)."""
    from imginspect._httpx_compat import proxy_origin

    scheme, host, port, _path, _credentials = proxy_origin(proxy)
    shown = f"[{host.decode()}]" if b":" in host else host.decode()
    where = f"{scheme.decode()}://{shown}" + (f":{port}" if port is not None else "")
    return http11.ProxyError(f"the proxy {where} answered {answer}")


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read, write and TLS handshake ends by the deadline."""

    def __init__(self, inner: httpcore.NetworkStream, cap: Cap) -> None:
        self._inner = inner
        self._cap = cap

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._cap(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._cap(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        if server_hostname is not None and server_hostname.startswith("["):
            # An IPv6 registry at the end of a CONNECT tunnel: httpcore names the TLS server
            # by the target's host, bracketed for the CONNECT line (ProxyPools.send); ssl wants
            # the bare address (verified against the certificate's IP addresses, no SNI).
            server_hostname = server_hostname[1:-1]
        return _DeadlineStream(
            self._inner.start_tls(ssl_context, server_hostname, self._cap(timeout)), self._cap
        )

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """Opens :class:`_DeadlineStream` connections (the connect itself is capped too) and
    counts them (``opened``: the caller's per-thread counter)."""

    def __init__(self, cap: Cap, opened: Callable[[], None]) -> None:
        self._inner = httpcore.SyncBackend()
        self._cap = cap
        self._opened = opened

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(
            host, port, self._cap(timeout), local_address, socket_options
        )
        self._opened()
        return _DeadlineStream(stream, self._cap)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _guarded(stream: Iterable[bytes]) -> Iterator[bytes]:
    try:
        yield from stream
    except _CORE_ERRORS as exc:
        raise _mapped(exc) from exc


class ProxyPools:
    """One httpcore pool per proxy and TLS mode, for a whole run."""

    def __init__(self, cap: Cap, opened: Callable[[], None], max_connections: int) -> None:
        self._backend = _DeadlineBackend(cap, opened)
        self._max = max_connections
        self._pools: dict[tuple[str, object, bool], httpcore.HTTPProxy] = {}
        self._lock = threading.Lock()

    def send(
        self,
        request: Request,
        target: Target,
        proxy: str,
        *,
        tls_mode: object,
        ssl_context: Callable[[], ssl.SSLContext],
        proxy_ssl_context: Callable[[], ssl.SSLContext],
    ) -> tuple[http11.Response, Callable[[], None]]:
        """``ssl_context`` verifies an https target at the end of a CONNECT tunnel (built
        only then); ``proxy_ssl_context`` verifies an https proxy itself (the operating
        system's store, not httpcore's default, which is certifi's bundle)."""
        if target.scheme == "https":
            pool = self._pool(proxy, tls_mode, ssl_context, proxy_ssl_context)
        else:
            # Forwarded in the clear: no TLS context for the target is needed, or built.
            pool = self._pool(proxy, None, None, proxy_ssl_context)
        default = 443 if target.scheme == "https" else 80
        host = target.host.encode()
        if b":" in host:
            # RFC 9112's authority and absolute forms bracket an IPv6 address; httpcore writes
            # the host as given ("CONNECT 2001:db8::1:5000", which no proxy can split). TLS
            # in the tunnel is given the bare address (_DeadlineStream.start_tls).
            host = b"[" + host + b"]"
        core_request = httpcore.Request(
            method=request.method.encode("ascii"),
            url=httpcore.URL(
                scheme=target.scheme.encode(),
                host=host,
                # none for the default port, as httpx: a proxy's request line has no ":80"
                port=None if target.port == default else target.port,
                target=target.target.encode("ascii"),
            ),
            headers=request.headers,
            content=request.body if request.body is not None else b"",
            extensions={
                "timeout": {
                    "connect": request.connect_timeout,
                    "read": request.read_timeout,
                    "write": request.read_timeout,
                    "pool": request.connect_timeout,
                }
            },
        )
        try:
            response = pool.handle_request(core_request)
        except httpcore.ProxyError as exc:
            # The CONNECT was refused: say by whom, or "407 Proxy Authentication Required" /
            # "403 Forbidden" reads as the registry's answer (without the URL's credentials).
            raise _refused(proxy, str(exc)) from exc
        except _CORE_ERRORS as exc:
            raise _mapped(exc) from exc
        if response.status == 407:
            # Only a proxy answers 407 (RFC 9110 15.5.8): to a forwarded plain-http request,
            # it is the proxy refusing, as to a CONNECT, not the registry answering (was
            # "unexpected HTTP 407 from REGISTRY", exit 1, where the CONNECT gave exit 5).
            reason = response.extensions.get("reason_phrase", b"")
            response.close()
            raise _refused(proxy, f"407 {reason.decode('ascii', errors='replace')}".strip())
        stream = _guarded(response.stream)  # type: ignore[arg-type]
        return http11.Response(response.status, list(response.headers), stream, None), (
            response.close
        )

    def _pool(
        self,
        proxy: str,
        tls_mode: object,
        ssl_context: Callable[[], ssl.SSLContext] | None,
        proxy_ssl_context: Callable[[], ssl.SSLContext],
    ) -> httpcore.HTTPProxy:
        key = (proxy, tls_mode, ssl_context is not None)
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                from imginspect._httpx_compat import proxy_origin

                scheme, host, port, path, credentials = proxy_origin(proxy)
                pool = httpcore.HTTPProxy(
                    proxy_url=httpcore.URL(scheme=scheme, host=host, port=port, target=path),
                    proxy_auth=credentials,
                    ssl_context=ssl_context() if ssl_context is not None else None,
                    # httpcore refuses one for an http:// proxy
                    proxy_ssl_context=proxy_ssl_context() if scheme == b"https" else None,
                    # Surplus or expired connections closed outside httpcore's lock race with
                    # the thread handed them: keep-alive limit = connection limit, and no
                    # client-side expiry.
                    max_connections=self._max,
                    max_keepalive_connections=self._max,
                    keepalive_expiry=None,
                    network_backend=self._backend,
                )
                self._pools[key] = pool
        return pool

    def close(self) -> None:
        with self._lock:
            pools = list(self._pools.values())
            self._pools.clear()
        for pool in pools:
            pool.close()
