"""Docker Hub's pull quota (RateLimit-* headers) reaches the extended JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from imginspect.result import RateLimit
from tests.support.badserver import GOOD_IMAGE, BadServer, Scenario, manifest_reply
from tests.support.cli import run_imginspect


@pytest.fixture(scope="module")
def server() -> Iterator[BadServer]:
    with BadServer("127.0.0.1") as srv:
        srv.add(
            Scenario(
                "quota",
                image=GOOD_IMAGE,
                manifest=manifest_reply(
                    GOOD_IMAGE.manifest,
                    headers=[
                        ("RateLimit-Limit", "100;w=21600"),
                        ("RateLimit-Remaining", "76;w=21600"),
                    ],
                ),
            )
        )
        yield srv


def test_rate_limit_in_extended_json(server: BadServer) -> None:
    result = run_imginspect("--format", "extended-json", server.ref("quota"))
    assert result.code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["rateLimit"] == {"limit": 100, "remaining": 76, "window": 21600}
    plain = run_imginspect("--format", "extended-json", server.ref("good"))
    assert json.loads(plain.stdout)["rateLimit"] is None


@pytest.mark.parametrize(
    ("limit", "remaining", "expected"),
    [
        ("100;w=21600", "76;w=21600", RateLimit(100, 76, 21600)),
        ("100", None, RateLimit(100, None, None)),
        (None, "0;w=60", RateLimit(None, 0, 60)),
        ("junk", "x;w=y", RateLimit(None, None, None)),
        (None, None, None),
    ],
)
def test_rate_limit_headers(
    limit: str | None, remaining: str | None, expected: RateLimit | None
) -> None:
    assert RateLimit.from_headers(limit, remaining) == expected
