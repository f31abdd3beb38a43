"""WWW-Authenticate parsing: real-world headers and a never-raises property."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imginspect.challenge import Challenge, parse_challenges, preferred_challenge

CASES = [
    (
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/ubuntu:pull"',
        [
            Challenge(
                "bearer",
                {
                    "realm": "https://auth.docker.io/token",
                    "service": "registry.docker.io",
                    "scope": "repository:library/ubuntu:pull",
                },
            )
        ],
    ),
    ('Basic realm="Registry Realm"', [Challenge("basic", {"realm": "Registry Realm"})]),
    ("BEARER Realm=x", [Challenge("bearer", {"realm": "x"})]),
    (
        'Basic realm="a", Bearer realm="b",service="c"',
        [Challenge("basic", {"realm": "a"}), Challenge("bearer", {"realm": "b", "service": "c"})],
    ),
    ('Bearer realm="q\\"uote"', [Challenge("bearer", {"realm": 'q"uote'})]),
    (
        'Bearer realm="https://x/t", realm="https://evil/t"',
        [Challenge("bearer", {"realm": "https://x/t"})],
    ),
    (
        "Negotiate abc==, Basic realm=r",
        [Challenge("negotiate"), Challenge("basic", {"realm": "r"})],
    ),
    ("Bearer", [Challenge("bearer")]),
    ('Bearer realm="unterminated', [Challenge("bearer", {"realm": "unterminated"})]),
    ("", []),
    (",,, ,", []),
    ("=x", []),
]


@pytest.mark.parametrize(("header", "expected"), CASES)
def test_parse(header: str, expected: list[Challenge]) -> None:
    assert parse_challenges([header]) == expected


def test_several_headers_and_preference() -> None:
    challenges = parse_challenges(['Basic realm="a"', 'Bearer realm="b"'])
    preferred = preferred_challenge(challenges)
    assert preferred is not None and preferred.scheme == "bearer"
    assert preferred_challenge(parse_challenges(["Digest realm=x"])) is None


@settings(max_examples=2000)
@given(
    st.lists(
        st.text(alphabet=st.sampled_from(list('Bb earr=",\\\t lmxy;/:')), max_size=80)
        | st.text(max_size=80),
        max_size=3,
    )
)
def test_never_raises(headers: list[str]) -> None:
    for challenge in parse_challenges(headers):
        assert challenge.scheme == challenge.scheme.lower()
        assert all(isinstance(v, str) for v in challenge.params.values())
