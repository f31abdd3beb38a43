"""Shared fixtures: real registries (started lazily, once per session and xdist worker) and the
test image corpus pushed into them. See ``tests/support/`` for the helpers themselves."""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# The helpers are imported as ``tests.support.*`` everywhere; make that work under a bare
# ``pytest`` as well as ``python -m pytest`` (which puts the working directory on sys.path).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.badserver import BadServer, loopback_alias_available
from tests.support.corpus import PushedImage, push_corpus
from tests.support.registry import (
    Registry,
    start_basic_registry,
    start_plain_registry,
    start_tls_registry,
    start_token_registry,
)
from tests.support.tokenserver import TokenServer
from tests.support.tools import require_tool

# Property tests run on shared, loaded CI machines: a slow example is not a failure.
settings.register_profile("imginspect", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("imginspect")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--regenerate-goldens",
        action="store_true",
        default=False,
        help="rewrite tests/golden/*.json from the CLI's output (only output that equals the "
        "independent model in tests/expected.py is written)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "needs_tool(*names): the test runs these programs (see require_tool)"
    )


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # ``@pytest.mark.needs_tool("skopeo")`` (on a test, a class or a module's ``pytestmark``)
    # goes through require_tool before the test's fixtures start anything.
    for marker in item.iter_markers("needs_tool"):
        for name in marker.args:
            require_tool(name)


#: Registry variants, in the order the ``any_registry``/``any_corpus`` fixtures run them.
REGISTRY_VARIANTS = ("plain", "tls", "basic", "token")

#: Repositories the ``registry_token`` token server refuses to anonymous clients: ``private``
#: and everything below it (``private/...``).
TOKEN_PRIVATE_REPOSITORIES = ("private",)


@pytest.fixture(scope="session")
def registry_plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """Plain HTTP registry, no auth."""
    require_tool("docker-registry")
    registry = start_plain_registry(tmp_path_factory.mktemp("registry-plain"))
    yield registry
    registry.stop()


@pytest.fixture(scope="session")
def registry_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """HTTPS registry (trustme CA at ``registry.ca_path``), no auth."""
    require_tool("docker-registry")
    registry = start_tls_registry(tmp_path_factory.mktemp("registry-tls"))
    yield registry
    registry.stop()


@pytest.fixture(scope="session")
def registry_basic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """HTTPS registry with htpasswd Basic auth (``registry.username``/``registry.password``)."""
    require_tool("docker-registry")
    registry = start_basic_registry(tmp_path_factory.mktemp("registry-basic"))
    yield registry
    registry.stop()


@pytest.fixture(scope="session")
def registry_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """Plain HTTP registry with token auth (``registry.token_server``); repositories under
    :data:`TOKEN_PRIVATE_REPOSITORIES` are closed to anonymous clients."""
    require_tool("docker-registry")
    registry = start_token_registry(
        tmp_path_factory.mktemp("registry-token"), private=TOKEN_PRIVATE_REPOSITORIES
    )
    yield registry
    registry.stop()


@pytest.fixture(scope="session")
def token_server(registry_token: Registry) -> TokenServer:
    """The token server of ``registry_token``."""
    assert registry_token.token_server is not None
    return registry_token.token_server


@pytest.fixture(scope="session")
def corpus_plain(registry_plain: Registry) -> dict[str, PushedImage]:
    return push_corpus(registry_plain)


@pytest.fixture(scope="session")
def corpus_tls(registry_tls: Registry) -> dict[str, PushedImage]:
    return push_corpus(registry_tls)


@pytest.fixture(scope="session")
def corpus_basic(registry_basic: Registry) -> dict[str, PushedImage]:
    return push_corpus(registry_basic)


@pytest.fixture(scope="session")
def corpus_token(registry_token: Registry) -> dict[str, PushedImage]:
    return push_corpus(registry_token)


@pytest.fixture(params=REGISTRY_VARIANTS)
def any_registry(request: pytest.FixtureRequest) -> Registry:
    """Each registry variant in turn (the test runs once per variant)."""
    registry: Registry = request.getfixturevalue(f"registry_{request.param}")
    return registry


@pytest.fixture(params=REGISTRY_VARIANTS)
def any_corpus(request: pytest.FixtureRequest) -> tuple[Registry, dict[str, PushedImage]]:
    """``(registry, corpus)`` for each registry variant in turn."""
    registry: Registry = request.getfixturevalue(f"registry_{request.param}")
    corpus: dict[str, PushedImage] = request.getfixturevalue(f"corpus_{request.param}")
    return registry, corpus


@pytest.fixture
def blackholed_port() -> Iterator[int]:
    """A port on 127.0.0.1 whose connects hang: its listener's accept queue is full, so the
    kernel drops further SYNs (as a firewall dropping packets does)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))  # under way (EINPROGRESS), or queued
        fillers.append(filler)
    time.sleep(0.1)
    try:
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


@pytest.fixture(scope="module")
def peer() -> Iterator[BadServer]:
    """A second "host" for cross-host tests (redirect targets, other realms): a BadServer on
    another loopback address of the same machine."""
    if not loopback_alias_available("127.0.0.2"):
        pytest.skip("cannot bind 127.0.0.2 on this system")
    with BadServer("127.0.0.2", scenarios=[]) as server:
        yield server
    assert server.errors == [], "\n".join(server.errors)
