"""Docker Hub's pull quota (RateLimit-* headers) reaches the extended JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from imginspect.result import RateLimit
from tests.support.badserver import (
    GOOD_IMAGE,
    OCI_MANIFEST,
    BadServer,
    Reply,
    Request,
    Scenario,
    manifest_reply,
    sha256_digest,
)
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
        # digits that are not ASCII ("²" passes str.isdigit()), or too many for int()
        ("\u00b2;w=\u00b2", "\u0663", RateLimit(None, None, None)),
        ("1" * 5000, "7;w=" + "9" * 5000, RateLimit(None, 7, None)),
        (None, None, None),
    ],
)
def test_rate_limit_headers(
    limit: str | None, remaining: str | None, expected: RateLimit | None
) -> None:
    assert RateLimit.from_headers(limit, remaining) == expected


def test_hostile_number_headers_are_ignored_not_a_crash() -> None:
    """Header values a server controls, with digits int() refuses ("²" passes str.isdigit(),
    and past 4300 digits int() raises): RateLimit-* on a GET, Content-Length on the HEAD of
    --digest (whose framing never reads it). Before, each crashed the run with a
    ValueError traceback."""
    hostile = [
        ("RateLimit-Limit", "\u00b2;w=\u00b2"),
        ("RateLimit-Remaining", "9" * 5000),
    ]
    with BadServer("127.0.0.1") as srv:
        srv.add(
            Scenario(
                "hostile",
                image=GOOD_IMAGE,
                manifest=manifest_reply(GOOD_IMAGE.manifest, headers=hostile),
            )
        )
        result = run_imginspect("--format", "extended-json", srv.ref("hostile"))
        assert result.code == 0, result.stderr
        assert json.loads(result.stdout)["rateLimit"] == {
            "limit": None,
            "remaining": None,
            "window": None,
        }
        for name, length in (("hostile-head-sup", "\u00b2"), ("hostile-head-long", "9" * 5000)):

            def manifest(request: Request, length: str = length) -> Reply:
                if request.method != "HEAD":
                    return manifest_reply(GOOD_IMAGE.manifest)
                headers = (
                    ("Content-Type", OCI_MANIFEST),
                    ("Docker-Content-Digest", sha256_digest(GOOD_IMAGE.manifest)),
                    ("Content-Length", length),
                )
                return Reply(200, headers, b"", framing="raw")

            srv.add(Scenario(name, image=GOOD_IMAGE, manifest=manifest))
            digest = run_imginspect("--digest", srv.ref(name))
            assert digest.code == 0, digest.stderr
            assert digest.text.strip() == sha256_digest(GOOD_IMAGE.manifest)
            assert [r.method for r in srv.requests_for(name, "manifests")] == ["HEAD"]
