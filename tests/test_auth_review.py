"""Registry authentication as hostile and real-world servers exercise it (a review's findings).

Real servers on loopback (:class:`tests.support.badserver.BadServer`: 127.0.0.1, and
127.0.0.2 as "another host"), the library driven as the CLI drives it (one
:class:`~imginspect.inspector.Inspector` per run, a cache directory shared between runs).

* A bearer token the registry refused is never sent again: not by a later request of the
  run, not by the next run (it was "forgotten" into the cache with an expiry the cache
  refuses to store, so the refused token stayed there, valid).
* A token realm that redirects (a moved endpoint, a trailing slash) is followed for the
  token GET, as docker, containerd and go-containerregistry follow it; Basic credentials
  never follow it to another host. The identity-token POST is not followed: a 307 would
  send the refresh token in its body to wherever the realm points.
* A 401 from the host a registry redirected to (storage) is not answered with the
  registry's credentials, and its challenge is not cached as the registry's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from imginspect.auth import Credential
from imginspect.cache import Cache
from imginspect.errors import AuthError, ImginspectError
from imginspect.hosts import HostResolver
from imginspect.inspector import Inspector
from imginspect.reference import parse_reference
from tests.support.badserver import (
    GOOD_IMAGE,
    BadServer,
    Reply,
    Request,
    Scenario,
    json_reply,
    redirect,
    redirect_blobs_to,
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


# ------------------------------------------------------------------ a token realm that redirects


def _redirect_once(target_base: str | None = None) -> Callable[[Request], Reply]:
    """A token responder: redirects the first request (to ``target_base``'s ``/token``, or
    this server's) with the same query plus ``hop=1``; grants a token to the hop."""

    def respond(request: Request) -> Reply:
        if "hop" in request.query:
            return json_reply({"token": f"hopped-{request.scenario}", "expires_in": 300})
        query = request.target.partition("?")[2]
        return redirect(f"{target_base or request.base_url}/token?{query}&hop=1")

    return respond


def test_token_realm_that_redirects_is_followed(registry: BadServer) -> None:
    name = "review-realm-redirect"
    registry.add(Scenario(name, image=GOOD_IMAGE, auth="bearer", token=_redirect_once()))
    registry.clear()
    _inspect(registry.ref(name))
    registry.wait_idle()
    tokens = registry.requests_for(name, "token")
    assert [(r.status, "hop" in r.query) for r in tokens] == [(307, False), (200, True)]
    assert tokens[1].query["scope"] == [f"repository:{name}:pull"]
    assert _authorizations(registry, name, "manifests")[-1] == f"Bearer hopped-{name}"


def test_token_realm_redirect_to_another_host_drops_basic_credentials(
    registry: BadServer, peer: BadServer
) -> None:
    name = "review-realm-elsewhere"
    registry.add(Scenario(name, image=GOOD_IMAGE, auth="bearer", token=_redirect_once(peer.url)))
    peer.add(Scenario(name, image=GOOD_IMAGE, auth="bearer", token=_redirect_once()))
    registry.accept_tokens_from(peer)
    registry.clear()
    peer.clear()
    credential = Credential("alice", "realm-redirect-secret")
    _inspect(registry.ref(name), credential=credential)
    # The realm (loopback) gets the credentials; the host it redirects to does not.
    assert _authorizations(registry, name, "token") == [credential.basic_header()]
    assert _authorizations(peer, name, "token") == [None]
    assert _authorizations(registry, name, "manifests")[-1] == f"Bearer hopped-{name}"


def test_identity_token_post_is_not_sent_on_to_where_the_realm_redirects(
    registry: BadServer, peer: BadServer
) -> None:
    name = "review-post-redirect"
    # The realm names the scope in its query: the POST's own scope is in its body.
    realm = f'Bearer realm="{{url}}/token?scope=repository:{name}:pull",service="badserver"'
    registry.add(
        Scenario(
            name,
            image=GOOD_IMAGE,
            auth="bearer",
            challenges=(realm,),
            token=redirect(f"{peer.url}/token?scope=repository:{name}:pull"),
        )
    )
    peer.add(Scenario(name, image=GOOD_IMAGE, auth="bearer"))
    registry.clear()
    peer.clear()
    with pytest.raises(ImginspectError):
        _inspect(registry.ref(name), credential=Credential(identity_token="refresh-secret"))
    registry.wait_idle()
    assert [r.method for r in registry.requests_for(name, "token")] == ["POST"]
    peer.wait_idle()
    assert all(b"refresh-secret" not in r.body for r in peer.requests), peer.requests


# ------------------------------------------------------------------ a challenge from elsewhere


def test_challenge_from_a_redirect_target_gets_no_credentials(
    registry: BadServer, peer: BadServer, tmp_path: Path
) -> None:
    """The registry redirects a blob to storage on another host, which answers 401 with a
    Bearer challenge naming its own realm. That challenge is not the registry's: the
    registry's credentials must not go to that realm (the transport drops them from the
    redirect for the same reason), nor may it become the registry's challenge in the cache.
    docker keys challenges by the host that sent them (distribution's challenge manager),
    containerd by the last response's host. RegistryClient._request answers only a 401 from
    the registry's own host and port; this one is reported as the auth error it is."""
    name = "review-storage-challenge"
    registry.add(Scenario(name, image=GOOD_IMAGE, blob=redirect_blobs_to(peer.url)))
    peer.add(Scenario(name, image=GOOD_IMAGE, auth="bearer"))  # a realm on the peer
    registry.clear()
    peer.clear()
    credential = Credential("alice", "storage-challenge-secret")
    hosts = HostResolver(
        credentials=lambda host, repo: credential if host == registry.netloc else None
    )
    cache = Cache(tmp_path)
    with Inspector(hosts, cache=cache) as inspector, pytest.raises(AuthError):
        inspector.inspect(parse_reference(registry.ref(name)))
    peer.wait_idle()
    assert [r.authorization for r in peer.requests_for(name, "token")] == []
    assert all(r.authorization is None for r in peer.requests), [
        (r.kind, r.authorization) for r in peer.requests
    ]
    assert (cache.get_host(registry.netloc) or {}).get("challenge") is None
