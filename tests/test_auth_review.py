"""Registry authentication as hostile and real-world servers exercise it (a review's findings).

Real servers on loopback (:class:`tests.support.badserver.BadServer`: 127.0.0.1, and
127.0.0.2 as "another host"), the library driven as the CLI drives it (one
:class:`~imginspect.inspector.Inspector` per run, a cache directory shared between runs).

* A bearer token the registry refused is never sent again: not by a later request of the
  run, not by the next run (it was "forgotten" into the cache with an expiry the cache
  refuses to store, so the refused token stayed there, valid).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from imginspect.auth import Credential
from imginspect.cache import Cache
from imginspect.errors import AuthError
from imginspect.hosts import HostResolver
from imginspect.inspector import Inspector
from imginspect.reference import parse_reference
from tests.support.badserver import (
    GOOD_IMAGE,
    BadServer,
    Scenario,
    registry_error,
)


@pytest.fixture(scope="module")
def registry() -> Iterator[BadServer]:
    with BadServer("127.0.0.1", scenarios=[]) as server:
        yield server
    assert server.errors == [], "\n".join(server.errors)


def _inspect(ref: str, *, cache: Cache | None = None, credential: Credential | None = None) -> None:
    hosts = HostResolver(credentials=(lambda host, repo: credential) if credential else None)
    with Inspector(hosts, cache=cache) as inspector:
        inspector.inspect(parse_reference(ref))


def _authorizations(server: BadServer, scenario: str, kind: str) -> list[str | None]:
    server.wait_idle()
    return [r.authorization for r in server.requests_for(scenario, kind)]


# ------------------------------------------------------------------ a refused token is dropped


def test_refused_token_is_not_sent_again_in_the_run_nor_the_next(
    registry: BadServer, tmp_path: Path
) -> None:
    name = "review-revoked"
    registry.add(Scenario(name, image=GOOD_IMAGE, auth="bearer"))
    ref = registry.ref(name)
    _inspect(ref, cache=Cache(tmp_path))  # a token, cached for its lifetime (300 s)
    [issued] = registry.issued_tokens(name)
    refused = f"Bearer {issued}"

    # The token is revoked, and the token server now refuses this client (or is down).
    registry.add(
        Scenario(
            name,
            image=GOOD_IMAGE,
            auth="bearer-refused",
            token=registry_error(401, "DENIED", "token service says no"),
        )
    )
    registry.clear()
    cache = Cache(tmp_path)
    hosts = HostResolver()
    with Inspector(hosts, cache=cache) as inspector:
        for _ in range(2):  # two references of one run (a batch)
            with pytest.raises(AuthError):
                inspector.inspect(parse_reference(ref))
    sent = _authorizations(registry, name, "manifests")
    # The cached token went out once, was refused, and was not sent again.
    assert sent.count(refused) == 1, sent

    registry.clear()
    with pytest.raises(AuthError):
        _inspect(ref, cache=Cache(tmp_path))  # the next run
    assert refused not in _authorizations(registry, name, "manifests")
