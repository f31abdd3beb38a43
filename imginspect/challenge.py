"""Parsing ``WWW-Authenticate`` challenges (RFC 7235) as registries send them.

Registries answer an unauthenticated request with e.g.
``Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="..."``.
A header may carry several challenges, and a response several headers. The parser is
forgiving (it never raises): what it cannot read it skips, and callers decide whether what
remains is usable. Pure module.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import field
from typing import TypeGuard

from imginspect._record import Record, record

# RFC 7230 token characters.
_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
# token68 may also contain these (RFC 7235 section 2.1).
_TOKEN68_EXTRA = frozenset("-._~+/=")


@record
class Challenge(Record):
    """One challenge: a lower-cased scheme and its parameters (keys lower-cased)."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")


def parse_challenges(headers: Iterable[str]) -> list[Challenge]:
    """Parse every challenge in the given ``WWW-Authenticate`` header values, in order."""
    challenges: list[Challenge] = []
    for header in headers:
        challenges.extend(_parse_one(header))
    return challenges


def _parse_one(text: str) -> list[Challenge]:
    challenges: list[Challenge] = []
    current: Challenge | None = None
    pos, end = 0, len(text)
    while pos < end:
        pos = _skip(text, pos, " \t,")
        if pos >= end:
            break
        token, after = _read_token(text, pos)
        if not token:
            # Not a token where one must be: skip to the next comma and resynchronise.
            comma = text.find(",", pos + 1)
            pos = end if comma < 0 else comma
            continue
        eq = _skip(text, after, " \t")
        if current is not None and eq < end and text[eq] == "=" and not _is_token68_tail(text, eq):
            value, pos = _read_value(text, _skip(text, eq + 1, " \t"))
            key = token.lower()
            # The first occurrence wins: a later duplicate cannot override the realm.
            current.params.setdefault(key, value)
            continue
        current = Challenge(scheme=token.lower())
        challenges.append(current)
        pos = after
        # An optional token68 (e.g. "Negotiate abc==") directly after the scheme: skip it.
        nxt = _skip(text, after, " \t")
        if nxt > after:
            t68, t68_end = _read_token68(text, nxt)
            tail = _skip(text, t68_end, " \t")
            if t68 and (tail >= end or text[tail] == ",") and "=" not in t68.rstrip("="):
                pos = t68_end
    return challenges


def _skip(text: str, pos: int, chars: str) -> int:
    while pos < len(text) and text[pos] in chars:
        pos += 1
    return pos


def _read_token(text: str, pos: int) -> tuple[str, int]:
    start = pos
    while pos < len(text) and text[pos] in _TCHAR:
        pos += 1
    return text[start:pos], pos


def _read_token68(text: str, pos: int) -> tuple[str, int]:
    start = pos
    while pos < len(text) and (text[pos] in _TCHAR or text[pos] in _TOKEN68_EXTRA):
        pos += 1
    return text[start:pos], pos


def _is_token68_tail(text: str, eq: int) -> bool:
    """``abc==``: an '=' followed by another '=' or the end is token68 padding, not a param."""
    nxt = eq + 1
    return nxt >= len(text) or text[nxt] in "=,"


def _read_value(text: str, pos: int) -> tuple[str, int]:
    if pos < len(text) and text[pos] == '"':
        out: list[str] = []
        pos += 1
        while pos < len(text):
            ch = text[pos]
            if ch == "\\" and pos + 1 < len(text):
                out.append(text[pos + 1])
                pos += 2
                continue
            if ch == '"':
                return "".join(out), pos + 1
            out.append(ch)
            pos += 1
        return "".join(out), pos  # unterminated quote: take what there is
    start = pos
    while pos < len(text) and text[pos] not in ", \t":
        pos += 1
    return text[start:pos], pos


def preferred_challenge(challenges: list[Challenge]) -> Challenge | None:
    """Bearer is preferred over Basic (a registry offering both wants tokens); others ignored."""
    for scheme in ("bearer", "basic"):
        for challenge in challenges:
            if challenge.scheme == scheme:
                return challenge
    return None


#: A token expiring further away than this (about 31 years) is not believed (fresh or cached).
MAX_TOKEN_LIFETIME = 1e9

#: A bearer token longer than this is not a token (JWTs are a few KiB); it must also fit a
#: cached token file (imginspect.cache).
MAX_TOKEN_CHARS = 32 * 1024


def usable_token(value: object) -> TypeGuard[str]:
    """Whether ``value`` can go into an ``Authorization: Bearer`` header as is: printable
    ASCII without spaces, bounded. Fresh tokens (auth) and cached ones (cache) both pass
    through this one rule."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_TOKEN_CHARS
        and value.isascii()
        and value.isprintable()
        and " " not in value
    )
