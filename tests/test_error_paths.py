"""Error and edge paths of the core modules, exercised for real (files on disk, tar archives,
loopback servers), each asserting the behaviour a user sees: files.read_bounded, hosts,
mirrors, settings (daemon.json, insecure entries, certs.d) and layout (corrupt archives,
odd index.json)."""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from imginspect import layout as layout_module
from imginspect.errors import (
    AuthError,
    ConfigError,
    MalformedDocumentError,
    NotFoundError,
    RegistryError,
    UsageError,
)
from imginspect.files import read_bounded
from imginspect.hosts import HostResolver
from imginspect.layout import LayoutSource
from imginspect.mirrors import MirrorChain
from imginspect.registry import RegistryClient
from imginspect.settings import Mirror, RegistrySettings
from imginspect.tags import MAX_PATTERN, sort_by_version, tag_digests, tag_filter, version_key
from imginspect.transport import HttpTransport

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "multiarch"


# ------------------------------------------------------------------------------ files


def test_read_bounded_refuses_a_directory(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError):
        read_bounded(tmp_path, 10)


def test_read_bounded_refuses_a_fifo_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(OSError) as caught:
        read_bounded(fifo, 10)
    assert caught.value.errno == errno.EINVAL


def test_read_bounded_refuses_a_file_over_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "big"
    path.write_bytes(b"x" * 11)
    with pytest.raises(OSError) as caught:
        read_bounded(path, 10)
    assert caught.value.errno == errno.EFBIG
    assert read_bounded(path, 11) == b"x" * 11


def test_read_bounded_stops_at_the_limit_when_the_size_lies() -> None:
    # /proc files report size 0 but have content: the read loop itself enforces the bound.
    proc = Path("/proc/self/status")
    assert proc.stat().st_size == 0
    with pytest.raises(OSError) as caught:
        read_bounded(proc, 16)
    assert caught.value.errno == errno.EFBIG
    assert read_bounded(proc, 1 << 20).startswith(b"Name:")


def test_read_bounded_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_bytes(b"")
    assert read_bounded(path, 0) == b""


# ------------------------------------------------------------------------------ hosts


def test_host_resolver_explain_with_insecure_flag() -> None:
    resolver = HostResolver(insecure=True)
    (line,) = resolver.explain("registry.example.com")
    assert line.startswith("tls: insecure (https without verification, then http)")
    assert "--insecure" in line
    assert resolver.is_insecure("registry.example.com")


def test_host_resolver_explain_without_insecure_flag() -> None:
    resolver = HostResolver()
    lines = resolver.explain("registry.example.com")
    assert lines[0].startswith("tls: verified against")
    assert not resolver.is_insecure("registry.example.com")
    assert resolver.is_insecure("127.0.0.1:5000")


def test_host_resolver_config_is_resolved_once() -> None:
    resolver = HostResolver(insecure=True)
    first = resolver.config("registry.example.com")
    assert first.insecure and first.insecure_reason is not None
    assert resolver.config("registry.example.com") is first


# ------------------------------------------------------------------------------ settings


def _settings(tmp_path: Path, document: object, **kwargs: object) -> RegistrySettings:
    path = tmp_path / "daemon.json"
    path.write_text(json.dumps(document))
    return RegistrySettings(certs_dirs=(), daemon_config=path, environ={}, **kwargs)  # type: ignore[arg-type]


def test_daemon_json_insecure_registries_not_a_list(tmp_path: Path) -> None:
    settings = _settings(tmp_path, {"insecure-registries": "myregistry:5000"})
    with pytest.raises(ConfigError, match="insecure-registries must be a list of strings"):
        settings.is_insecure("myregistry:5000")


def test_daemon_json_registry_mirrors_not_strings(tmp_path: Path) -> None:
    settings = _settings(tmp_path, {"registry-mirrors": [1, 2]})
    with pytest.raises(ConfigError, match="registry-mirrors must be a list of strings"):
        _ = settings.mirrors


def test_daemon_json_not_an_object(tmp_path: Path) -> None:
    settings = _settings(tmp_path, ["insecure-registries"])
    with pytest.raises(ConfigError, match="is not a JSON object"):
        _ = settings.mirrors
    # the error sticks: asked again, the same error
    with pytest.raises(ConfigError, match="is not a JSON object"):
        settings.is_insecure("example.com")


def test_default_daemon_json_problems_only_warn(tmp_path: Path) -> None:
    docker = tmp_path / "docker"
    docker.mkdir()
    (docker / "daemon.json").write_text(
        json.dumps(
            {
                "registry-mirrors": [
                    "ftp://mirror.example",
                    "https://m.example",
                    "https://m.example/",
                ],
                "insecure-registries": ["a://b", "10.0.0.0/8", "not a cidr/8", " ", "http://x:1/"],
            }
        )
    )
    warnings: list[str] = []
    settings = RegistrySettings(
        certs_dirs=(), environ={"XDG_CONFIG_HOME": str(tmp_path)}, warn=warnings.append
    )
    # a duplicate mirror (with and without the trailing slash) is kept once
    assert settings.mirrors == (Mirror("https://m.example/"),)
    assert settings.daemon_config_path == docker / "daemon.json"
    assert any("invalid registry mirror" in w and "ftp" in w for w in warnings)
    assert any("must not contain '://'" in w for w in warnings)
    assert any("neither host[:port] nor a CIDR" in w for w in warnings)
    assert any("is not valid" in w for w in warnings)
    assert all(w.endswith("; ignoring it") for w in warnings)
    # the valid entries still apply: a CIDR and an http:// prefixed host
    assert settings.is_insecure("10.1.2.3:5000")
    assert settings.is_insecure("x:1")
    assert settings.insecure_reason("10.1.2.3") == (
        f"in an insecure-registries CIDR range ({docker / 'daemon.json'})"
    )
    assert not settings.is_insecure("11.0.0.1")


def test_default_daemon_json_that_cannot_be_read_warns(tmp_path: Path) -> None:
    (tmp_path / "docker" / "daemon.json").mkdir(parents=True)  # a directory, not a file
    warnings: list[str] = []
    settings = RegistrySettings(
        certs_dirs=(), environ={"XDG_CONFIG_HOME": str(tmp_path)}, warn=warnings.append
    )
    assert settings.mirrors == ()
    assert len(warnings) == 1 and "cannot read daemon config" in warnings[0]


def test_insecure_cidr_https_prefix_and_v6(tmp_path: Path) -> None:
    settings = RegistrySettings(
        certs_dirs=(),
        environ={},
        read_daemon_config=False,
        insecure_registries=["https://Registry.Example:443", "fd00::/8", "192.0.2.0/24"],
    )
    assert settings.insecure_reason("registry.example:443") == (
        "listed in insecure-registries (settings)"
    )
    assert settings.is_insecure("[fd00::1]:5000")
    # an IPv6 address never matches an IPv4 network (and vice versa)
    assert not settings.is_insecure("[fe80::1]")
    assert settings.is_insecure("192.0.2.7")
    # a name is resolved to match CIDR entries; an unresolvable one matches nothing
    assert not settings.is_insecure("no-such-host.invalid")
    assert not settings.is_insecure("no-such-host.invalid")  # cached


def test_insecure_entry_explicit_problem_raises() -> None:
    settings = RegistrySettings(
        certs_dirs=(), environ={}, read_daemon_config=False, insecure_registries=["a b"]
    )
    with pytest.raises(ConfigError, match="insecure registry 'a b' is not valid"):
        settings.is_insecure("example.com")


def test_explain_host_with_certs_dir_client_certificate(tmp_path: Path) -> None:
    host = "registry.example:5000"
    directory = tmp_path / host
    directory.mkdir()
    (directory / "client.cert").write_text("not used by explain")
    (directory / "client.key").write_text("not used by explain")
    settings = RegistrySettings(certs_dirs=[tmp_path], environ={}, read_daemon_config=False)
    (line,) = settings.explain_host(host)
    assert "no extra CA" in line
    assert "client certificate client.cert" in line
    assert str(directory) in line


def test_explain_host_lists_hub_mirrors(tmp_path: Path) -> None:
    settings = _settings(tmp_path, {"registry-mirrors": ["https://mirror.example"]})
    lines = settings.explain_host("docker.io")
    assert lines[-1] == "mirror: https://mirror.example (tried first; then the registry itself)"
    assert settings.explain_host("quay.io") == settings.explain_host("quay.io")[:1]


# ------------------------------------------------------------------------------ mirrors


def _layout_copy(tmp_path: Path, name: str, tag: str) -> LayoutSource:
    root = tmp_path / name
    shutil.copytree(EXAMPLE, root)
    index = json.loads((root / "index.json").read_bytes())
    for entry in index["manifests"]:
        entry["annotations"] = {"org.opencontainers.image.ref.name": tag}
    (root / "index.json").write_text(json.dumps(index))
    return LayoutSource(str(root), archive=False)


def test_mirror_chain_tags_and_referrers_come_from_upstream(tmp_path: Path) -> None:
    upstream = _layout_copy(tmp_path, "upstream", "from-upstream")
    mirror = _layout_copy(tmp_path, "mirror", "from-mirror")
    logged: list[str] = []
    chain = MirrorChain(upstream, [("https://mirror.example/", mirror)], log=logged.append)
    try:
        # list_tags asks the first mirror that answers
        assert chain.list_tags("x", limit=10) == ["from-mirror"]
        # paging through all tags and referrers asks the registry itself
        assert list(chain.iter_tag_pages("x", page_size=5, limit=10)) == [["from-upstream"]]
        head = chain.head_manifest("x", "from-mirror")
        assert head is not None
        assert chain.get_referrers("x", head.digest) is None
        # a mirror that fails is skipped, with a log line
        missing = tmp_path / "missing"
        broken = MirrorChain(
            upstream,
            [("https://broken.example/", LayoutSource(str(missing), archive=False))],
            log=logged.append,
        )
        assert broken.list_tags("x", limit=10) == ["from-upstream"]
        assert logged and logged[-1].startswith("mirror https://broken.example/ failed (")
    finally:
        chain.close()


# ------------------------------------------------------------------------------ layout


def _tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _tar_of_example(path: Path, extra: list[tuple[str, bytes]] = ()) -> Path:  # type: ignore[assignment]
    files = [
        (p.relative_to(EXAMPLE).as_posix(), p.read_bytes())
        for p in sorted(EXAMPLE.rglob("*"))
        if p.is_file()
    ]
    return _tar(path, [*files, *extra])


def test_layout_sources_without_tag_listing_or_referrers(tmp_path: Path) -> None:
    with LayoutSource(str(EXAMPLE), archive=False) as source:
        tags = source.tags()
        assert source.list_tags("ignored", limit=0) == []
        assert source.list_tags("ignored", limit=100) == tags
        pages = list(source.iter_tag_pages("ignored", page_size=0, limit=100))
        assert [t for page in pages for t in page] == tags
        assert all(len(page) == 1 for page in pages)
        assert source.get_referrers("ignored", "sha256:" + "0" * 64) is None


def test_layout_archive_with_too_many_members(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = _tar_of_example(tmp_path / "a.tar")
    monkeypatch.setattr(layout_module, "MAX_ARCHIVE_MEMBERS", 2)
    with pytest.raises(MalformedDocumentError, match="has more than 2 members"):
        LayoutSource(str(archive), archive=True).tags()


def test_layout_archive_that_ends_midway(tmp_path: Path) -> None:
    archive = _tar_of_example(tmp_path / "a.tar")
    with tarfile.open(archive) as tar:
        second = tar.getmembers()[1]
    # the archive ends in the middle of its second member's data
    os.truncate(archive, second.offset_data + 1)
    with pytest.raises(MalformedDocumentError, match="is a corrupt tar archive: unexpected end"):
        LayoutSource(str(archive), archive=True).tags()


def test_layout_archive_with_a_truncated_member(tmp_path: Path) -> None:
    files = sorted(
        (p.relative_to(EXAMPLE).as_posix(), p.read_bytes())
        for p in EXAMPLE.rglob("*")
        if p.is_file()
    )
    blobs = [f for f in files if f[0].startswith("blobs/")]
    others = [f for f in files if not f[0].startswith("blobs/")]
    biggest = max(blobs, key=lambda f: len(f[1]))
    archive = _tar(tmp_path / "a.tar", [*others, *(b for b in blobs if b != biggest), biggest])
    with tarfile.open(archive) as tar:
        last = tar.getmembers()[-1]
    assert last.name == biggest[0] and last.size > 2
    _, algorithm, encoded = last.name.split("/")
    with LayoutSource(str(archive), archive=True) as source:
        assert source.tags()  # scanned whole
        # the archive shrinks while open: cut in the middle of its last member's data
        os.truncate(archive, last.offset_data + last.size // 2)
        with pytest.raises(
            MalformedDocumentError, match="from the archive: unexpected end of data"
        ):
            source.get_blob("x", f"{algorithm}:{encoded}", max_bytes=1 << 20, what="blob")


def test_layout_archive_that_is_not_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.tar"
    os.mkfifo(fifo)
    with pytest.raises(MalformedDocumentError, match="not a regular file"):
        LayoutSource(str(fifo), archive=True).tags()


def test_layout_location_that_cannot_be_stat(tmp_path: Path) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(MalformedDocumentError, match="cannot read"):
        LayoutSource(str(loop), archive=False).tags()


def test_layout_blob_that_cannot_be_stat(tmp_path: Path) -> None:
    root = tmp_path / "layout"
    shutil.copytree(EXAMPLE, root)
    index = json.loads((root / "index.json").read_bytes())
    digest = index["manifests"][0]["digest"]
    algorithm, _, encoded = digest.partition(":")
    blob = root / "blobs" / algorithm / encoded
    blob.unlink()
    blob.symlink_to(blob)  # ELOOP: neither missing nor readable
    with (
        LayoutSource(str(root), archive=False) as source,
        pytest.raises(MalformedDocumentError, match="cannot read manifest"),
    ):
        source.get_manifest("x", digest)


def test_layout_index_json_that_is_a_manifest(tmp_path: Path) -> None:
    root = tmp_path / "layout"
    shutil.copytree(EXAMPLE, root)
    index = json.loads((root / "index.json").read_bytes())
    top = json.loads(
        (root / "blobs" / "sha256" / index["manifests"][0]["digest"].split(":")[1]).read_bytes()
    )
    platform_digest = top["manifests"][0]["digest"]
    manifest = (root / "blobs" / "sha256" / platform_digest.split(":")[1]).read_bytes()
    (root / "index.json").write_bytes(manifest)
    with pytest.raises(MalformedDocumentError, match=r"index\.json is not an image index"):
        LayoutSource(str(root), archive=False).tags()


def test_layout_tags_skip_entries_without_names(tmp_path: Path) -> None:
    root = tmp_path / "layout"
    shutil.copytree(EXAMPLE, root)
    index = json.loads((root / "index.json").read_bytes())
    entry = index["manifests"][0]
    unnamed = {k: entry[k] for k in ("mediaType", "digest", "size")}
    named = dict(unnamed, annotations={"io.containerd.image.name": "example.com/app:v1"})
    index["manifests"] = [unnamed, named, named]
    (root / "index.json").write_text(json.dumps(index))
    with LayoutSource(str(root), archive=False) as source:
        assert source.tags() == ["example.com/app:v1"]
        assert source.get_manifest("x", "v1").digest == entry["digest"]


# ------------------------------------------------------------------------------ registry


class _ListingServer:
    """A loopback HTTP registry whose answers per path (query included) are set by a test:
    ``answers[path] = (status, headers, body)``; anything else is a 404 NAME_UNKNOWN."""

    def __init__(self) -> None:
        answers: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.answers = answers
        self.paths: list[str] = []
        paths = self.paths

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                paths.append(self.path)
                status, headers, body = answers.get(
                    self.path,
                    (404, {}, b'{"errors":[{"code":"NAME_UNKNOWN","message":"unknown"}]}'),
                )
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.host = f"127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def listing() -> Iterator[tuple[_ListingServer, RegistryClient]]:
    server = _ListingServer()
    with HttpTransport() as transport:
        yield server, RegistryClient(server.host, transport, insecure=True)
    server.close()


JSON = {"Content-Type": "application/json"}


def test_list_tags_malformed_and_empty(listing: tuple[_ListingServer, RegistryClient]) -> None:
    server, client = listing
    server.answers["/v2/notjson/tags/list?n=5"] = (200, JSON, b"<html>")
    server.answers["/v2/numbers/tags/list?n=5"] = (200, JSON, b'{"tags": [1, 2]}')
    server.answers["/v2/none/tags/list?n=5"] = (200, JSON, b'{"name": "none", "tags": null}')
    server.answers["/v2/many/tags/list?n=2"] = (200, JSON, b'{"tags": ["a", "b", "c"]}')
    for name in ("notjson", "numbers"):
        with pytest.raises(RegistryError, match=f"malformed tag list for {name}"):
            client.list_tags(name, limit=5)
    assert client.list_tags("none", limit=5) == []
    # a registry that ignores n: the client keeps its own bound
    assert client.list_tags("many", limit=2) == ["a", "b"]


def test_tag_pages_unsupported_and_refused(listing: tuple[_ListingServer, RegistryClient]) -> None:
    server, client = listing
    error = b'{"errors":[{"code":"UNSUPPORTED","message":"no listing here"}]}'
    server.answers["/v2/unsupported/tags/list?n=10"] = (405, JSON, error)
    server.answers["/v2/teapot/tags/list?n=10"] = (418, JSON, b"short and stout")
    server.answers["/v2/denied/tags/list?n=10"] = (
        403,
        JSON,
        b'{"errors":[{"code":"DENIED","message":"listing denied"}]}',
    )
    with pytest.raises(RegistryError) as caught:
        list(client.iter_tag_pages("unsupported", page_size=10, limit=10))
    assert caught.value.hint is not None and "does not support listing tags" in caught.value.hint
    with pytest.raises(RegistryError) as teapot:
        list(client.iter_tag_pages("teapot", page_size=10, limit=10))
    assert "does not support listing" not in (teapot.value.hint or "")
    with pytest.raises(AuthError) as denied:
        list(client.iter_tag_pages("denied", page_size=10, limit=10))
    assert denied.value.hint is not None and "refuses to list the tags" in denied.value.hint
    with pytest.raises(NotFoundError):
        list(client.iter_tag_pages("unknown", page_size=10, limit=10))


def test_tag_pages_links(listing: tuple[_ListingServer, RegistryClient]) -> None:
    server, client = listing
    base = "/v2/app/tags/list"
    server.answers[f"{base}?n=2"] = (
        200,
        {**JSON, "Link": f'<{base}?n=2&last=b>; rel="next"'},
        b'{"tags": ["a", "b"]}',
    )
    # an empty page that still links on: the listing ends there
    server.answers[f"{base}?n=2&last=b"] = (
        200,
        {**JSON, "Link": f'<{base}?n=2&last=c>; rel="next"'},
        b'{"tags": []}',
    )
    assert list(client.iter_tag_pages("app", page_size=2, limit=10)) == [["a", "b"]]

    # a link that repeats itself is a protocol error, not an endless loop
    loop = "/v2/loop/tags/list"
    server.answers[f"{loop}?n=2"] = (
        200,
        {**JSON, "Link": f'<{loop}?n=2&last=a>; rel="next"'},
        b'{"tags": ["a"]}',
    )
    server.answers[f"{loop}?n=2&last=a"] = (
        200,
        {**JSON, "Link": f'<{loop}?n=2>; rel="next"'},
        b'{"tags": ["b"]}',
    )
    with pytest.raises(RegistryError, match="Link that repeats itself"):
        list(client.iter_tag_pages("loop", page_size=2, limit=10))

    # links that are not "next", or a next without a query, end the listing; a next page
    # on another host or another path is not followed, and the listing says it is cut short
    for name, link, cut in (
        ("prev", '</v2/prev/tags/list?n=2&last=x>; rel="prev"', False),
        ("noquery", '</v2/noquery/tags/list>; rel="next"', False),
        ("away", '<https://elsewhere.example/v2/away/tags/list?n=2&last=x>; rel="next"', True),
        ("other", '</v2/somewhere/else?n=2&last=x>; rel="next"', True),
    ):
        server.answers[f"/v2/{name}/tags/list?n=2"] = (
            200,
            {**JSON, "Link": link},
            b'{"tags": ["x"]}',
        )
        pages: list[list[str]] = []
        if cut:
            with pytest.raises(RegistryError, match="elsewhere: not followed"):
                pages.extend(client.iter_tag_pages(name, page_size=2, limit=10))
        else:
            pages.extend(client.iter_tag_pages(name, page_size=2, limit=10))
        assert pages == [["x"]]
    assert not any("last=x" in p for p in server.paths)


def test_tag_pages_null_tags(listing: tuple[_ListingServer, RegistryClient]) -> None:
    server, client = listing
    server.answers["/v2/empty/tags/list?n=3"] = (200, JSON, b'{"name":"empty","tags":null}')
    server.answers["/v2/bad/tags/list?n=3"] = (200, JSON, b'{"tags":["not a tag!"]}')
    assert list(client.iter_tag_pages("empty", page_size=3, limit=3)) == []
    with pytest.raises(RegistryError, match="malformed tag list for bad"):
        list(client.iter_tag_pages("bad", page_size=3, limit=3))


def test_referrers_unsupported_and_errors(listing: tuple[_ListingServer, RegistryClient]) -> None:
    server, client = listing
    digest = "sha256:" + "a" * 64
    server.answers[f"/v2/old/referrers/{digest}"] = (405, {}, b"")
    server.answers[f"/v2/broken/referrers/{digest}"] = (500, {}, b"[1, 2]")
    assert client.get_referrers("old", digest) is None
    assert client.get_referrers("unknown", digest) is None
    with pytest.raises(RegistryError):
        client.get_referrers("broken", digest)
    with pytest.raises(RegistryError, match="not a digest"):
        client.get_referrers("old", "sha256:short")


# ------------------------------------------------------------------------------ tags


def test_tag_filter_refuses_an_oversized_regex() -> None:
    with pytest.raises(UsageError, match="--regex is longer than"):
        tag_filter(regex="a" * (MAX_PATTERN + 1))
    assert tag_filter(regex="a" * MAX_PATTERN)("a" * MAX_PATTERN)


def test_version_key_puts_other_tags_after_versions() -> None:
    assert version_key("latest") == (1, "latest")
    assert sort_by_version(["latest", "1.10", "1.2", "stable"]) == [
        "1.2",
        "1.10",
        "latest",
        "stable",
    ]


def test_tag_digests_with_a_full_window(tmp_path: Path) -> None:
    root = tmp_path / "layout"
    shutil.copytree(EXAMPLE, root)
    index = json.loads((root / "index.json").read_bytes())
    entry = index["manifests"][0]
    names = [f"t{i}" for i in range(7)]
    index["manifests"] = [
        dict(entry, annotations={"org.opencontainers.image.ref.name": n}) for n in names
    ]
    (root / "index.json").write_text(json.dumps(index))
    with LayoutSource(str(root), archive=False) as source:
        found = list(tag_digests(source, "x", names, workers=1))
    # in order, bounded window of 2 * workers in flight
    assert [f.tag for f in found] == names
    assert {f.digest for f in found} == {entry["digest"]}
