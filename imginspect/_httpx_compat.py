"""What imginspect takes from httpx, and how it imports it.

Direct requests speak HTTP/1.1 through :mod:`imginspect.http11`; requests through a proxy go
to httpcore's proxy pools (:mod:`imginspect.proxied`). httpx itself is used where its rules are
the reference: proxies. :func:`environment_proxies` reads
``HTTP(S)_PROXY``/``ALL_PROXY``/``NO_PROXY`` as httpx does (``urllib``'s ``getproxies``, httpx's
mount patterns), and :func:`proxy_origin` parses a proxy URL with ``httpx.Proxy`` (its scheme
rules, credentials in the URL). httpx is imported only when the environment names a proxy.

* **The start-up trim.** httpx's package ``__init__`` imports its own command-line tool,
  ``httpx._main``, which pulls in rich, click's extras and pygments: about half of the
  cost of ``import httpx`` (60 of 130 ms measured with ``python -X importtime``). httpx
  guards that import with ``except ImportError``; a ``None`` entry in :data:`sys.modules`
  makes it fail at once. This is the one use of an httpx internal: should an httpx release
  stop tolerating it, :func:`load_httpx` imports httpx again without the trim, and raises
  instead when :data:`STRICT_ENV` is set (the tests set it), so that the change is seen.

Supported (and tested, see scripts/floors): httpx 0.25.0 or newer with httpcore 0.18.0 or
newer.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from typing import Any

#: Set to 1 (the tests do), a compatibility fallback raises instead of working around.
STRICT_ENV = "IMGINSPECT_STRICT_COMPAT"


class CompatibilityError(RuntimeError):
    """httpx or httpcore no longer behave as this module relies on (strict mode only)."""


def strict() -> bool:
    """Whether a fallback must raise (:data:`STRICT_ENV` set to a non-empty, non-0 value)."""
    return os.environ.get(STRICT_ENV, "") not in ("", "0")


#: Whether httpx was imported here without its command-line tool (None: not imported yet).
TRIMMED: bool | None = None


def load_httpx() -> Any:
    """The httpx module, imported without its command-line tool if it is not loaded yet."""
    global TRIMMED
    if TRIMMED is None:
        TRIMMED = _import_httpx()
    import httpx

    return httpx


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


def proxy_origin(url: str) -> tuple[bytes, bytes, int | None, bytes, tuple[str, str] | None]:
    """``(scheme, host, port, path, credentials)`` of a proxy URL, as ``httpx.Proxy`` reads
    it; ValueError for a proxy httpcore cannot use (only http:// and https:// ones)."""
    httpx = load_httpx()
    try:
        proxy = httpx.Proxy(url)
    except (ValueError, httpx.InvalidURL) as exc:
        raise ValueError(f"invalid proxy URL: {exc}") from None
    parsed = proxy.url
    if parsed.scheme not in ("http", "https"):
        raise ValueError(
            f"unsupported proxy {parsed.scheme}://{parsed.host}: "
            "only http:// and https:// proxies are"
        )
    credentials: tuple[str, str] | None = proxy.auth
    return parsed.raw_scheme, parsed.raw_host, parsed.port, parsed.raw_path, credentials


def environment_proxies() -> dict[str, str | None]:
    """httpx mount patterns for the proxies the environment names (``HTTPS_PROXY``,
    ``HTTP_PROXY``, ``ALL_PROXY``, lower case too): pattern -> proxy URL, or None for a
    ``NO_PROXY`` entry (connect directly). The rules are httpx's (and curl's)."""
    found = _getproxies()
    mounts: dict[str, str | None] = {}
    for scheme in ("http", "https", "all"):
        url = found.get(scheme)
        if scheme == "all" and "http://" in mounts and "https://" in mounts:
            # Never used (the scheme's own proxy wins), so not refused either: a SOCKS
            # ALL_PROXY (desktop proxy settings export one) refused every run. Go reads none.
            continue
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
        elif entry.startswith("*."):
            # Subdomains, as Go's httpproxy reads it (".corp.example"); httpx's "**.corp..."
            # pattern matched no host at all
            mounts[f"all://{entry}"] = None
        else:
            mounts[f"all://*{entry}"] = None
    return mounts


def _is_ip(text: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(text.split("/")[0]).version == version
    except ValueError:
        return False


def _getproxies() -> dict[str, str]:
    """``urllib.request.getproxies()``, without importing urllib.request (http.client and
    the email package: ~15 ms of a cold start) when the answer is known to be empty: on
    Linux and other Unixes it reads only ``*_proxy`` environment variables (macOS and
    Windows also read system settings: there it is always asked)."""
    if sys.platform not in ("darwin", "win32") and not any(
        name.lower().endswith("_proxy") for name in os.environ
    ):
        return {}
    from urllib.request import getproxies

    return getproxies()
