#!/usr/bin/env python3
"""imginspect benchmark: one command, real registries on loopback, side-by-side numbers.

    python bench/run.py                      # full run (about 3 minutes on 2 cores)
    python bench/run.py --quick              # 1-2 minutes: fewer repeats, extrapolates skopeo
    python bench/run.py --quick --latency-ms 20   # through a proxy adding 20 ms per round trip

Starts the CNCF distribution registry twice (plain HTTP, and token auth with the tests' token
server), pushes the test corpus plus 100 repositories x 10 tags for batches, optionally starts a
private dockerd, then times, for 1, 100 and 1000 references:

* imginspect --json with a cold cache (fresh IMGINSPECT_CACHE_DIR), with --no-cache, and warm;
  batches as ONE process (``imginspect --json -f refs.txt``);
* ``skopeo inspect --raw --tls-verify=false docker://REF``, one process per reference (batches:
  a ``sh`` while-read loop, as a user would write it);
* dockerd's ``GET /v1.41/distribution/REF/json`` over its unix socket, one call per reference;
* baselines: a minimal httpx script doing one GET of the manifest (the issue's start-up
  reference) and the same GET with the standard library only (the Python floor).

For each: median and min..max wall time over the repeats, the child's CPU time (user+sys),
registry requests per reference (from the registry's access log), token-server requests per
reference, round trips through the latency proxy, and peak RSS (``os.wait4`` rusage). Then the
issue's targets, met or not, with the numbers. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path[:0] = [str(REPO_ROOT), str(BENCH_DIR)]

from latency_proxy import LatencyProxy  # noqa: E402

from tests.support.corpus import (  # noqa: E402
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    PushedBlob,
    PushedImage,
    Pusher,
    dumps,
    gzip_stored,
    push_corpus,
    sha256_digest,
    tar_bytes,
)
from tests.support.registry import (  # noqa: E402
    TEST_PASSWORD,
    TEST_USERNAME,
    Registry,
    start_registry,
)
from tests.support.tokenserver import TokenServer  # noqa: E402

CASES = ("single", "batch", "image-config", "big-cache", "per-image", "importtime")
HTTPX_CLIENT = "import httpx; httpx.Client()"  # the issue's start-up floor
BATCH_PREFIX = "bench"
BATCH_REPOS = 100
BATCH_TAGS = 10
SINGLE_KEYS = {"oci-index": "corpus/oci-index:v1", "schema2": "corpus/schema2:v1"}
CORPUS_REPO_TAGS = {
    "oci-index": "corpus/oci-index:v1",
    "buildkit": "corpus/buildkit:v1",
    "windows": "corpus/windows:v1",
    "schema2": "corpus/schema2:v1",
    "oci-single": "corpus/oci-single:v1",
    "artifact": "corpus/artifact:v1",
    "noplatform": "corpus/noplatform:v1",
    "nested": "corpus/nested:v1",
    "big-index": "corpus/big-index:v1",
    "deep": "corpus/a/b/c/d/e/deep-path/image:v1",
}


def log(message: str) -> None:
    """Progress goes to stderr; results to stdout."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Interrupted(BaseException):
    """SIGTERM/SIGHUP/--max-minutes: unwind like Ctrl-C so every finally block runs."""


# -- child processes ------------------------------------------------------------------------------


@dataclass
class ProcResult:
    wall: float
    cpu: float  # user + sys of the child and everything it waited for
    maxrss_kb: int
    code: int
    stdout: bytes
    stderr: str
    timed_out: bool = False


class Spawner:
    """Client of bench/spawner.py, the small launcher every measured command runs under (so
    peak RSS is the tool's own, not this process's; see spawner.py)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.proc = subprocess.Popen(
            [sys.executable, "-S", "-I", str(BENCH_DIR / "spawner.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self._n = 0

    def run(self, argv: Sequence[str], env: dict[str, str], timeout: float) -> ProcResult:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._n += 1
        out = self.workdir / f"run-{self._n}.out"
        err = self.workdir / f"run-{self._n}.err"
        request = {
            "argv": list(argv),
            "env": env,
            "stdout": str(out),
            "stderr": str(err),
            "timeout": timeout,
        }
        self.proc.stdin.write(json.dumps(request).encode() + b"\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("bench/spawner.py exited")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(reply["error"])
        try:
            stdout, stderr = out.read_bytes(), err.read_text(errors="replace")
        finally:
            out.unlink(missing_ok=True)
            err.unlink(missing_ok=True)
        return ProcResult(
            wall=reply["wall"],
            cpu=reply["cpu"],
            maxrss_kb=reply["maxrss_kb"],
            code=reply["status"],
            stdout=stdout,
            stderr=stderr,
            timed_out=reply["timed_out"],
        )

    def close(self) -> None:
        """Closing its stdin makes the launcher kill a running child's group and exit."""
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


SPAWNER: Spawner | None = None


def run_process(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    timeout: float = 120.0,
) -> ProcResult:
    """Run argv under the launcher; stdout/stderr captured; wall from spawn to reap."""
    assert SPAWNER is not None
    return SPAWNER.run(argv, dict(os.environ if env is None else env), timeout)


def command_output(argv: Sequence[str]) -> str:
    try:
        done = subprocess.run(list(argv), capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc})"
    text = (done.stdout or done.stderr).decode(errors="replace").strip()
    return text.splitlines()[0] if text else f"exit {done.returncode}"


# -- measurements ---------------------------------------------------------------------------------


@dataclass
class Row:
    scenario: str
    target: str  # "plain" or "token"
    refs: int
    label: str
    group: str = ""  # which tool: imginspect, skopeo, dockerd, baseline
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    rss_kb: list[int] = field(default_factory=list)
    registry_requests: list[int] = field(default_factory=list)
    token_requests: list[int] = field(default_factory=list)
    round_trips: list[int] = field(default_factory=list)
    connections: list[int] = field(default_factory=list)  # new TCP connections via the proxy
    methods: list[str] = field(default_factory=list)  # request lines of the last run (singles)
    counted_refs: int = 0  # references the counts are for (probe size when extrapolated)
    extrapolated_from: int | None = None
    rss_is_daemon: bool = False
    cpu_is_daemon: bool = False
    note: str = ""
    failure: str | None = None

    @property
    def median(self) -> float | None:
        return statistics.median(self.walls) if self.walls else None

    def per_ref(self, values: list[int]) -> float | None:
        if not values or not self.counted_refs:
            return None
        return statistics.mean(values) / self.counted_refs


@dataclass
class Target:
    """One registry as the clients see it (directly, or through latency proxies)."""

    name: str
    registry: Registry
    host: str  # host:port in references
    proxies: list[LatencyProxy]
    token_server: TokenServer | None
    refs_files: dict[int, Path] = field(default_factory=dict)

    def ref(self, repo_tag: str) -> str:
        return f"{self.host}/{repo_tag}"


class Counter:
    """Registry requests, token requests and proxy round trips around one measured run."""

    def __init__(self, target: Target) -> None:
        self.target = target

    def __enter__(self) -> Counter:
        t = self.target
        self.reg_mark = t.registry.mark()
        self.tok_mark = t.token_server.mark() if t.token_server else 0
        self.proxy_marks = [p.stats() for p in t.proxies]
        return self

    def __exit__(self, *exc: object) -> None:
        t = self.target
        if exc[0] is not None:
            return
        entries = t.registry.requests_since(self.reg_mark)
        self.registry_requests = len(entries)
        self.lines = [f"{e.method} {e.status}" for e in entries]
        self.token_requests = (
            len(t.token_server.requests_since(self.tok_mark)) if t.token_server else 0
        )
        deltas = [p.stats().minus(m) for p, m in zip(t.proxies, self.proxy_marks, strict=True)]
        self.round_trips = sum(d.round_trips for d in deltas)
        self.connections = sum(d.connections for d in deltas)

    def record(self, row: Row) -> None:
        row.registry_requests.append(self.registry_requests)
        row.token_requests.append(self.token_requests)
        if self.target.proxies:
            row.round_trips.append(self.round_trips)
            row.connections.append(self.connections)
        row.methods = self.lines


class Bench:
    def __init__(
        self, args: argparse.Namespace, workdir: Path, stack: contextlib.ExitStack
    ) -> None:
        self.args = args
        self.workdir = workdir
        self.stack = stack
        self.rows: list[Row] = []
        self.python = sys.executable  # runs the baselines: the same interpreter and httpx
        self.install_note = "as is (--install current)"
        if args.imginspect:
            self.imginspect = shlex.split(args.imginspect)
            self.install_note = f"--imginspect {args.imginspect}"
        elif args.install == "venv":
            self.python, self.imginspect, self.install_note = regular_install(workdir)
        else:
            self.imginspect = imginspect_command(None)
        self.skopeo = shutil.which("skopeo") if not args.no_skopeo else None
        self.dockerd: Any = None
        self.dockerd_note = ""
        self._dirs = 0

    # -- helpers ------------------------------------------------------------------------------

    def fresh_dir(self, what: str) -> Path:
        self._dirs += 1
        path = self.workdir / "caches" / f"{what}-{self._dirs}"
        path.mkdir(parents=True)
        return path

    def env(self, cache_dir: Path | None) -> dict[str, str]:
        """The environment of every measured command: no IMGINSPECT_* settings from the
        caller, no PYTHONUNBUFFERED, the given cache directory, and (unless
        --as-is-bytecode) bytecode caching on, into a private prefix, so Python programs run
        with their .pyc files as after a regular ``pip install`` even where
        PYTHONDONTWRITEBYTECODE is set."""
        env = dict(os.environ)
        for key in list(env):
            # PYTHONUNBUFFERED (set in some CI and container images) would make every result
            # line its own write: measured as users run it, without.
            if key.startswith("IMGINSPECT_") or key in (
                "PYTHONPATH",
                "PYTHONPYCACHEPREFIX",
                "PYTHONUNBUFFERED",
            ):
                del env[key]
        if not self.args.as_is_bytecode:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            if self.args.install != "venv" or self.args.imginspect:
                # Not a regular install: its .pyc files may be missing or stale.
                env["PYTHONPYCACHEPREFIX"] = str(self.workdir / "pycache")
        if cache_dir is not None:
            env["IMGINSPECT_CACHE_DIR"] = str(cache_dir)
        return env

    def row(self, scenario: str, target: Target, refs: int, label: str, group: str) -> Row:
        row = Row(scenario, target.name, refs, label, group=group, counted_refs=refs)
        self.rows.append(row)
        return row

    def run_measured(
        self,
        row: Row,
        target: Target,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        expect_lines: int | None = None,
        timeout: float = 120.0,
    ) -> ProcResult | None:
        if row.failure:
            return None
        if env is None:
            env = self.env(None)
        with Counter(target) as counter:
            result = run_process(argv, env=env, timeout=timeout)
        problem = None
        if result.timed_out:
            problem = f"timed out after {timeout:g}s"
        elif result.code != 0:
            problem = f"exit {result.code}: {result.stderr.strip()[-300:]}"
        elif expect_lines is not None and result.stdout.count(b"\n") != expect_lines:
            lines = result.stdout.count(b"\n")
            problem = f"{lines} output lines, expected {expect_lines}"
        elif "FAIL " in result.stderr:
            problem = result.stderr.strip()[-300:]
        if problem:
            row.failure = problem
            log(f"FAILED {row.label} ({row.refs} refs): {problem}")
            return None
        row.walls.append(result.wall)
        row.cpus.append(result.cpu)
        row.rss_kb.append(result.maxrss_kb)
        counter.record(row)
        return result

    # -- scenario set-up ------------------------------------------------------------------------

    def start_targets(self, latency_ms: float) -> list[Target]:
        """Plain and token registries (fresh per scenario), proxies when latency_ms > 0."""
        scen = self.workdir / f"latency-{latency_ms:g}"
        targets: list[Target] = []

        def proxy(port: int) -> LatencyProxy:
            p = LatencyProxy(
                "127.0.0.1", port, latency_ms=latency_ms, max_seconds=self.args.max_minutes * 60
            ).start()
            self.stack.callback(p.stop)
            return p

        plain = start_registry(scen / "plain", name="plain")
        self.stack.callback(plain.stop)
        plain_proxies = [proxy(plain.port)] if latency_ms > 0 else []
        host = plain_proxies[0].host if plain_proxies else plain.host
        targets.append(Target("plain", plain, host, plain_proxies, None))

        if not self.args.no_token:
            server = _TokenServer(
                scen / "token" / "token", users={TEST_USERNAME: TEST_PASSWORD}, expires_in=3600
            )
            server.start()
            self.stack.callback(server.stop)
            token_proxies = []
            if latency_ms > 0:
                token_proxy = proxy(server.port)
                server.realm_url = f"http://{token_proxy.host}/token"
                token_proxies.append(token_proxy)
            token = start_registry(scen / "token", name="token", token_server=server)
            self.stack.callback(token.stop)
            if latency_ms > 0:
                registry_proxy = proxy(token.port)
                token_proxies.insert(0, registry_proxy)
                host = registry_proxy.host
            else:
                host = token.host
            targets.append(Target("token", token, host, token_proxies, server))
        return targets

    def push(self, targets: list[Target]) -> None:
        sizes = [n for n in self.args.sizes if n > 1]
        for target in targets:
            started = time.monotonic()
            push_corpus(target.registry)
            batches = bool(sizes or self.args.big_cache) and (
                target.name == "plain" or self.args.token_batches
            )
            if batches:
                push_batch_corpus(target.registry)
            for n in sizes:
                path = self.workdir / f"refs-{target.name}-{target.host.replace(':', '_')}-{n}.txt"
                path.write_text("".join(f"{target.ref(r)}\n" for r in batch_refs(n)))
                target.refs_files[n] = path
            log(
                f"pushed corpus{' + batch corpus' if batches else ''} to {target.name} "
                f"registry in {time.monotonic() - started:.1f}s"
            )

    def maybe_start_dockerd(self) -> None:
        if self.args.no_dockerd:
            self.dockerd_note = "skipped (--no-dockerd)"
            return
        from tests.support.dockerd import DockerdError, dockerd_available, start_dockerd

        if not dockerd_available():
            self.dockerd_note = "unavailable (needs root and dockerd/containerd binaries)"
            return
        try:
            started = time.monotonic()
            self.dockerd = start_dockerd(timeout=60)
            self.stack.callback(self.dockerd.stop)
            log(f"dockerd up in {time.monotonic() - started:.1f}s")
        except (DockerdError, OSError) as exc:
            self.dockerd_note = f"failed to start: {str(exc).splitlines()[0]}"

    # -- single references ----------------------------------------------------------------------

    def singles(self, scenario: str, target: Target) -> None:
        for key in self.args.single:
            self._single(scenario, target, key)

    def _single(self, scenario: str, target: Target, key: str) -> None:
        repeat = self.args.repeat
        repo_tag = SINGLE_KEYS[key]
        ref = target.ref(repo_tag)
        repo, _, tag = repo_tag.rpartition(":")
        url = f"http://{target.host}/v2/{repo}/manifests/{tag}"
        what = f"{key} by tag"
        img = self.imginspect
        rows: list[tuple[Row, Callable[[Row], object]]] = []

        def add(label: str, group: str, fn: Callable[[Row], object]) -> None:
            rows.append((self.row(scenario, target, 1, f"{label}  [{what}]", group), fn))

        if target.token_server is None:
            add(
                "baseline: httpx, one GET",
                "baseline",
                lambda r: self.run_measured(
                    r, target, [self.python, str(BENCH_DIR / "baseline_httpx.py"), url]
                ),
            )
            add(
                "floor: python -c 'import httpx; httpx.Client()'",
                "httpx-client",
                lambda r: self.run_measured(r, target, [self.python, "-c", HTTPX_CLIENT]),
            )
            add(
                "floor: stdlib http.client GET",
                "floor",
                lambda r: self.run_measured(
                    r, target, [self.python, str(BENCH_DIR / "baseline_stdlib.py"), url]
                ),
            )
        add(
            "imginspect --json, cold cache",
            "imginspect-cold",
            lambda r: self.run_measured(
                r, target, [*img, "--json", ref], env=self.env(self.fresh_dir("cold"))
            ),
        )
        add(
            "imginspect --json --no-cache",
            "imginspect-nocache",
            lambda r: self.run_measured(
                r, target, [*img, "--json", "--no-cache", ref], env=self.env(None)
            ),
        )
        warm_dir = self.fresh_dir("warm")
        warm_env = self.env(warm_dir)
        add(
            "imginspect --json, warm cache",
            "imginspect-warm",
            lambda r: self.run_measured(r, target, [*img, "--json", ref], env=warm_env),
        )
        add(
            "imginspect --digest, cold cache",
            "imginspect-digest-cold",
            lambda r: self.run_measured(
                r, target, [*img, "--digest", ref], env=self.env(self.fresh_dir("dcold"))
            ),
        )
        add(
            "imginspect --digest, warm cache",
            "imginspect-digest-warm",
            lambda r: self.run_measured(r, target, [*img, "--digest", ref], env=warm_env),
        )
        if self.skopeo:
            add(
                "skopeo inspect --raw",
                "skopeo",
                lambda r: self.run_measured(r, target, skopeo_argv(self.skopeo, ref)),
            )
        if self.dockerd is not None:
            add(
                "dockerd GET /distribution", "dockerd", lambda r: self.dockerd_run(r, target, [ref])
            )

        # Warm the warm cache (not measured), then interleave the tools repeat by repeat so
        # that drift in machine load hits them all alike.
        run_process([*img, "--json", ref], env=warm_env, timeout=60)
        for i in range(repeat):
            log(f"{scenario} {target.name}: single {key}, repeat {i + 1}/{repeat}")
            for row, fn in rows:
                fn(row)

    # -- dockerd ---------------------------------------------------------------------------------

    def dockerd_run(self, row: Row, target: Target, refs: Sequence[str]) -> None:
        if row.failure:
            return
        d = self.dockerd
        cpu_before = _proc_cpu(d.process.pid)
        with Counter(target) as counter:
            started = time.perf_counter()
            for ref in refs:
                status, body = d.distribution_inspect(ref)
                if status != 200:
                    row.failure = f"HTTP {status}: {body[:200]!r}"
                    log(f"FAILED {row.label}: {row.failure}")
                    return
            wall = time.perf_counter() - started
        row.walls.append(wall)
        row.cpus.append(_proc_cpu(d.process.pid) - cpu_before)
        row.rss_kb.append(_proc_hwm_kb(d.process.pid))
        row.rss_is_daemon = row.cpu_is_daemon = True
        counter.record(row)

    # -- batches -------------------------------------------------------------------------------

    def big_cache(self, scenario: str, target: Target, entries: int) -> None:
        """imginspect cold with a cache that already holds ``entries`` manifests (dummy
        content files, as a long-lived user cache would): does a write cost O(cache size)?"""
        cache = self.fresh_dir("big")
        content = cache / "content" / "sha256"
        content.mkdir(parents=True)
        log(f"{scenario} {target.name}: filling a cache with {entries} entries")
        for i in range(entries):
            data = f"imginspect bench dummy cache entry {i}\n".encode()
            (content / hashlib.sha256(data).hexdigest()).write_bytes(data)
        env = self.env(cache)
        img = self.imginspect
        label = f"imginspect --json, cold, cache of {entries} entries"
        single = self.row(scenario, target, 1, label, "imginspect-bigcache")
        for i in range(self.args.repeat):
            # A tag not seen before each time: cold for that reference.
            ref = target.ref(f"{BATCH_PREFIX}/app{i:03d}:t{BATCH_TAGS - 1}")
            self.run_measured(single, target, [*img, "--json", ref], env=env)
        if 100 in target.refs_files:
            batch = self.row(scenario, target, 100, label + ", -f", "imginspect-bigcache")
            log(f"{scenario} {target.name}: 100 refs with a cache of {entries} entries")
            self.run_measured(
                batch,
                target,
                [*img, "--json", "-f", str(target.refs_files[100])],
                env=env,
                expect_lines=100,
                timeout=600,
            )

    def batches(self, scenario: str, target: Target) -> None:
        args = self.args
        img = self.imginspect
        for n in [s for s in args.sizes if s > 1]:
            refs_file = target.refs_files[n]
            conc = ["--concurrency", str(args.concurrency)] if args.concurrency else []
            if n > BATCH_REPOS * BATCH_TAGS:
                if not target.proxies:  # peak RSS: loopback is enough
                    self.huge_batch(scenario, target, n, conc)
                continue
            floor = core_floor = None
            if target.token_server is None:
                floor = self.row(
                    scenario, target, n, "floor: stdlib http.client, 8 threads", "floor"
                )
                core_floor = self.row(
                    scenario, target, n, "floor: httpcore (httpx's engine), 8 threads", "floor-core"
                )
                urls_file = refs_file.with_suffix(".urls")
                urls_file.write_text(
                    "".join(
                        f"http://{target.host}/v2/{r.replace(':', '/manifests/')}\n"
                        for r in batch_refs(n)
                    )
                )
            cold = self.row(
                scenario, target, n, "imginspect --json -f, cold cache", "imginspect-cold"
            )
            warm = self.row(
                scenario, target, n, "imginspect --json -f, warm cache", "imginspect-warm"
            )
            nocache = self.row(
                scenario, target, n, "imginspect --json -f --no-cache", "imginspect-nocache"
            )
            timeout = 60 + n * 0.5
            warm_dir: Path | None = None
            for i in range(args.batch_repeat):
                log(f"{scenario} {target.name}: imginspect {n} refs, {i + 1}/{args.batch_repeat}")
                cold_dir = self.fresh_dir(f"bcold{n}")
                self.run_measured(
                    cold,
                    target,
                    [*img, "--json", *conc, "-f", str(refs_file)],
                    env=self.env(cold_dir),
                    expect_lines=n,
                    timeout=timeout,
                )
                if warm_dir is None:
                    warm_dir = cold_dir  # warmed by that cold run
                if floor is not None:
                    self.run_measured(
                        floor,
                        target,
                        [self.python, str(BENCH_DIR / "baseline_stdlib.py"), "-f", str(urls_file)],
                        expect_lines=n,
                        timeout=timeout,
                    )
                if core_floor is not None:
                    self.run_measured(
                        core_floor,
                        target,
                        [
                            self.python,
                            str(BENCH_DIR / "baseline_stdlib.py"),
                            "-f",
                            str(urls_file),
                            "--httpcore",
                        ],
                        expect_lines=n,
                        timeout=timeout,
                    )
                self.run_measured(
                    nocache,
                    target,
                    [*img, "--json", "--no-cache", *conc, "-f", str(refs_file)],
                    expect_lines=n,
                    timeout=timeout,
                )
                self.run_measured(
                    warm,
                    target,
                    [*img, "--json", *conc, "-f", str(refs_file)],
                    env=self.env(warm_dir),
                    expect_lines=n,
                    timeout=timeout,
                )
            if self.skopeo:
                self.loop_row(
                    scenario,
                    target,
                    n,
                    "skopeo inspect --raw, sh loop",
                    "skopeo",
                    refs_file,
                    lambda r, t, path, k: self.skopeo_loop(r, t, path, k),
                )
            if self.dockerd is not None:
                self.loop_row(
                    scenario,
                    target,
                    n,
                    "dockerd GET /distribution, loop",
                    "dockerd",
                    refs_file,
                    lambda r, t, path, k: self.dockerd_run(r, t, path.read_text().split()[:k]),
                )

    def huge_batch(self, scenario: str, target: Target, n: int, conc: list[str]) -> None:
        """Peak RSS for a batch larger than the batch corpus: its 1000 references over and
        over (repeats are inspected again, results are written for every line)."""
        row = self.row(
            scenario, target, n, "imginspect --json -f --no-cache (1000 refs repeated)", "huge"
        )
        log(f"{scenario} {target.name}: imginspect {n} refs (peak RSS)")
        self.run_measured(
            row,
            target,
            [*self.imginspect, "--json", "--no-cache", *conc, "-f", str(target.refs_files[n])],
            expect_lines=n,
            timeout=60 + n * 0.2,
        )

    def image_config(self, scenario: str, target: Target) -> None:
        """``--image-config`` of the 6-platform index (issue 13): imginspect cold and warm, one
        process, against ``skopeo inspect`` (which reads the config too) once per platform."""
        repo_tag = SINGLE_KEYS["oci-index"]
        ref = target.ref(repo_tag)
        img = [*self.imginspect, "--image-config", "--format", "extended-json-v2", ref]
        platforms = index_platforms(target, repo_tag)
        what = f"[oci-index, {len(platforms)} platforms]"
        cold = self.row(scenario, target, 1, f"imginspect --image-config, cold {what}", "ic-cold")
        warm = self.row(scenario, target, 1, f"imginspect --image-config, warm {what}", "ic-warm")
        rows: list[tuple[Row, Callable[[Row], object]]] = [
            (cold, lambda r: self.run_measured(r, target, img, env=self.env(self.fresh_dir("ic")))),
        ]
        warm_env = self.env(self.fresh_dir("icwarm"))
        run_process(img, env=warm_env, timeout=60)
        rows.append((warm, lambda r: self.run_measured(r, target, img, env=warm_env)))
        if self.skopeo:
            calls = []
            for plat in platforms:
                opts = [f"--override-os={plat['os']}", f"--override-arch={plat['architecture']}"]
                if plat.get("variant"):
                    opts.append(f"--override-variant={plat['variant']}")
                calls.append(
                    shlex.join(
                        [self.skopeo, "inspect", *opts, "--tls-verify=false", f"docker://{ref}"]
                    )
                )
            script = " && ".join(calls)
            sk = self.row(
                scenario, target, 1, f"skopeo inspect --override-*, per platform {what}", "ic-sk"
            )
            rows.append((sk, lambda r: self.run_measured(r, target, ["sh", "-c", script])))
        for i in range(self.args.repeat):
            log(f"{scenario} {target.name}: --image-config, repeat {i + 1}/{self.args.repeat}")
            for row, fn in rows:
                fn(row)

    def skopeo_loop(self, row: Row, target: Target, refs_file: Path, count: int) -> None:
        script = (
            f"head -n {count} {shlex.quote(str(refs_file))} | while IFS= read -r ref; do "
            f"{shlex.quote(self.skopeo or 'skopeo')} inspect --raw --tls-verify=false "
            '"docker://$ref" || echo "FAIL $ref" >&2; done'
        )
        self.run_measured(
            row, target, ["sh", "-c", script], expect_lines=None, timeout=60 + count * 2.0
        )

    def loop_row(
        self,
        scenario: str,
        target: Target,
        n: int,
        label: str,
        group: str,
        refs_file: Path,
        run: Callable[[Row, Target, Path, int], None],
    ) -> None:
        """One process (or call) per reference, sequentially. Bounded by --loop-budget: fewer
        repeats, or time the first 100 references and extrapolate linearly (flagged)."""
        budget = self.args.loop_budget
        row = self.row(scenario, target, n, label, group)
        row.note = "one process per reference" if group == "skopeo" else "one call per reference"
        estimate = self._per_ref_estimate(scenario, target.name, group)
        repeats = self.args.batch_repeat
        probe = n
        if estimate is not None:
            if estimate * n > budget and n > 100:
                probe = 100
            repeats = max(1, min(repeats, int(budget // max(estimate * probe, 1e-9))))
        for i in range(repeats):
            log(f"{scenario} {target.name}: {label} {probe} refs, repeat {i + 1}/{repeats}")
            run(row, target, refs_file, probe)
        if probe != n and row.walls:
            scale = n / probe
            row.walls = [w * scale for w in row.walls]
            row.cpus = [c * scale for c in row.cpus]
            row.extrapolated_from = probe
            row.counted_refs = probe

    def _per_ref_estimate(self, scenario: str, target: str, group: str) -> float | None:
        best = None
        for row in self.rows:
            same = (row.scenario, row.target, row.group) == (scenario, target, group)
            if same and row.median and row.extrapolated_from is None:
                best = row.median / row.refs
        return best

    # -- per-image request counts -----------------------------------------------------------

    def per_image(self, scenario: str, target: Target) -> list[tuple[str, dict[str, str]]]:
        """Requests each client makes for every corpus image (one run each)."""
        return [
            (key, self._per_image_one(scenario, target, repo_tag))
            for key, repo_tag in CORPUS_REPO_TAGS.items()
        ]

    def _per_image_one(self, scenario: str, target: Target, repo_tag: str) -> dict[str, str]:
        img = self.imginspect
        ref = target.ref(repo_tag)
        cells: dict[str, str] = {}
        cache = self.fresh_dir("pi")
        env = self.env(cache)
        runs: list[tuple[str, Callable[[Row], Any]]] = [
            (
                "imginspect cold",
                lambda r: self.run_measured(r, target, [*img, "--json", ref], env=env),
            ),
            (
                "imginspect warm",
                lambda r: self.run_measured(r, target, [*img, "--json", ref], env=env),
            ),
            (
                "--digest warm",
                lambda r: self.run_measured(r, target, [*img, "--digest", ref], env=env),
            ),
        ]
        if self.skopeo:
            runs.append(
                (
                    "skopeo --raw",
                    lambda r: self.run_measured(r, target, skopeo_argv(self.skopeo, ref)),
                )
            )
        if self.dockerd is not None:
            runs.append(("dockerd", lambda r: self.dockerd_run(r, target, [ref])))
        for name, fn in runs:
            row = Row(scenario, target.name, 1, name, counted_refs=1)
            fn(row)
            if row.failure:
                cells[name] = "FAILED"
            else:
                tok = f"+{row.token_requests[0]}t" if target.token_server else ""
                cells[name] = f"{row.registry_requests[0]}{tok} " + _methods(row.methods)
        return cells


class _TokenServer(TokenServer):
    """The tests' token server, with a realm that can point at a latency proxy."""

    realm_url: str | None = None

    @property
    def realm(self) -> str:
        return self.realm_url or super().realm


def index_platforms(target: Target, repo_tag: str) -> list[dict[str, str]]:
    """The platforms of an index, read from the registry (not through the proxy)."""
    import urllib.request

    repo, _, tag = repo_tag.rpartition(":")
    request = urllib.request.Request(
        f"http://{target.registry.host}/v2/{repo}/manifests/{tag}",
        headers={"Accept": "application/vnd.oci.image.index.v1+json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        index = json.loads(response.read())
    return [
        m["platform"]
        for m in index.get("manifests", [])
        if m.get("platform", {}).get("os") not in (None, "unknown")
    ]


def _methods(lines: list[str]) -> str:
    """``['GET 401', 'GET 200']`` -> ``(GET401,GET)``: the shape of a request sequence."""
    short = [m.split()[0] + ("" if m.endswith(" 200") else m.split()[1]) for m in lines]
    return "(" + ",".join(short) + ")" if short else ""


def _proc_cpu(pid: int) -> float:
    """utime + stime (+ waited-for children) of a live process, in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))
    return ticks / os.sysconf("SC_CLK_TCK")


def _proc_hwm_kb(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"^VmHWM:\s+(\d+) kB", text, re.M)
    return int(match.group(1)) if match else 0


def skopeo_argv(skopeo: str | None, ref: str) -> list[str]:
    return [skopeo or "skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"]


def regular_install(workdir: Path) -> tuple[str, list[str], str]:
    """A venv of the benchmark's own with ``pip install .`` (a wheel built from the checkout,
    not editable; pip byte-compiles every module, as for users who install the wheel). Its
    python runs the baselines too, so they import the same httpx. Offline, the dependencies
    come from the running interpreter's site-packages (a .pth file; still byte-compiled)."""
    venv = workdir / "venv"
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    python = venv / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    how = "pip install . (dependencies from the package index)"
    done = subprocess.run(
        [*pip, str(REPO_ROOT)], capture_output=True, env=env, check=False, timeout=600
    )
    if done.returncode != 0:
        import sysconfig

        site = Path(sysconfig.get_paths()["purelib"])
        venv_site = next((venv / "lib").glob("python3*/site-packages"))
        (venv_site / "_bench_deps.pth").write_text(f"{site}\n")
        done = subprocess.run(
            [*pip, "--no-deps", "--no-build-isolation", str(REPO_ROOT)],
            capture_output=True,
            env=env,
            check=False,
            timeout=600,
        )
        how = f"pip install --no-deps . (offline: dependencies from {site})"
    if done.returncode != 0:
        raise SystemExit(f"pip install . failed:\n{done.stderr.decode(errors='replace')}")
    script = venv / "bin" / "imginspect"
    found = subprocess.run(
        [str(python), "-c", "import imginspect, sys; sys.stdout.write(imginspect.__file__)"],
        capture_output=True,
        check=True,
        cwd="/",
    ).stdout.decode()
    pyc = list(Path(found).parent.glob("__pycache__/*.pyc"))
    log(f"regular install in {time.monotonic() - started:.0f}s: {found} ({len(pyc)} .pyc)")
    note = f"{how} into {venv}; imginspect from {Path(found).parent} ({len(pyc)} .pyc files)"
    return str(python), [str(script)], note


def imginspect_command(override: str | None) -> list[str]:
    """The console script next to this interpreter (what `pip install` puts on PATH), never a
    version-manager shim (pyenv's bash shim alone costs tens of milliseconds)."""
    if override:
        return shlex.split(override)
    script = Path(sys.executable).with_name("imginspect")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "imginspect"]


# -- the batch corpus ----------------------------------------------------------------------


def batch_refs(n: int) -> list[str]:
    """100 references: one tag of each of the 100 repositories; 1000: every repository x tag;
    more: those 1000 repeated."""
    if n <= BATCH_REPOS:
        return [f"{BATCH_PREFIX}/app{r:03d}:t0" for r in range(n)]
    refs = [
        f"{BATCH_PREFIX}/app{r:03d}:t{t}" for r in range(BATCH_REPOS) for t in range(BATCH_TAGS)
    ]
    return (refs * (n // len(refs) + 1))[:n]


def _descriptor(media_type: str, digest: str, size: int) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest, "size": size}


def build_batch_corpus() -> list[PushedImage]:
    """Per repository: a distinct 2-platform OCI index (linux/amd64, linux/arm64; ~600 bytes)
    tagged t0..t9, its two image manifests, their configs and one shared 1-file layer."""
    tar = tar_bytes([("hello.txt", b"hello from the imginspect benchmark\n")])
    layer = PushedBlob.of(OCI_LAYER, gzip_stored(tar))
    diff_id = sha256_digest(tar)
    images = []
    for r in range(BATCH_REPOS):
        repo = f"{BATCH_PREFIX}/app{r:03d}"
        children = []
        for arch in ("amd64", "arm64"):
            config_doc = {
                "architecture": arch,
                "os": "linux",
                "config": {"Labels": {"org.example.bench.repo": repo}},
                "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            }
            config = PushedBlob.of(OCI_CONFIG, dumps(config_doc, "compact"))
            doc = {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": _descriptor(OCI_CONFIG, config.digest, config.size),
                "layers": [_descriptor(OCI_LAYER, layer.digest, layer.size)],
            }
            raw = dumps(doc, "compact")
            children.append(
                PushedImage(
                    key=f"{repo}/{arch}",
                    repo=repo,
                    tag="",
                    digest=sha256_digest(raw),
                    media_type=OCI_MANIFEST,
                    size=len(raw),
                    raw=raw,
                    document=doc,
                    config=config,
                    layers=[layer],
                    children=[],
                    config_platform={"architecture": arch, "os": "linux"},
                    compressed_size=config.size + layer.size,
                )
            )
        index_doc = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    **_descriptor(OCI_MANIFEST, c.digest, c.size),
                    "platform": {"architecture": c.key.rsplit("/", 1)[1], "os": "linux"},
                }
                for c in children
            ],
            "annotations": {"org.opencontainers.image.title": repo},
        }
        raw = dumps(index_doc, "compact")
        tags = [f"t{t}" for t in range(BATCH_TAGS)]
        images.append(
            PushedImage(
                key=repo,
                repo=repo,
                tag=tags[0],
                digest=sha256_digest(raw),
                media_type=OCI_INDEX,
                size=len(raw),
                raw=raw,
                document=index_doc,
                config=None,
                layers=[],
                children=children,
                config_platform=None,
                compressed_size=None,
                tags=tags,
            )
        )
    return images


def push_batch_corpus(registry: Registry) -> None:
    images = build_batch_corpus()
    with registry.client(authenticated=True) as client:
        pusher = Pusher(client, parallel=1)
        with ThreadPoolExecutor(8, thread_name_prefix="bench-push") as pool:
            for future in [pool.submit(pusher.push, image) for image in images]:
                future.result()


# -- output ---------------------------------------------------------------------------------------


def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.2f} s"


def fmt_per_ref(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    ms = seconds * 1000
    return f"{ms:.1f} ms" if ms < 100 else f"{ms:.0f} ms"


def fmt_count(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if abs(value - round(value)) < 0.005 else f"{value:.2f}"


def print_table(rows: list[Row], *, latency: bool) -> None:
    header = ["refs", "what", "median", "min..max", "per ref", "cpu", "reg req/ref", "tok req/ref"]
    if latency:
        header += ["conn/ref", "RTT/ref"]
    header += ["peak RSS", "n"]
    lines = [header]
    notes: list[str] = []
    for row in rows:
        if row.failure:
            lines.append(
                [str(row.refs), row.label, "FAILED", row.failure[:60]] + [""] * (len(header) - 4)
            )
            continue
        if not row.walls:
            continue
        med = row.median
        mark = "~" if row.extrapolated_from else ""
        spread = f"{fmt_time(min(row.walls))}..{fmt_time(max(row.walls))}"
        if row.cpu_is_daemon:  # /proc tick resolution (10 ms): meaningless for one call
            cpu = fmt_time(statistics.median(row.cpus)) + "(d)" if row.refs >= 100 else "-"
        else:
            cpu = fmt_time(statistics.median(row.cpus))
        rss = f"{max(row.rss_kb) / 1024:.0f} MB" + ("(d)" if row.rss_is_daemon else "")
        cells = [
            str(row.refs),
            row.label + (f" ~from {row.extrapolated_from}" if row.extrapolated_from else ""),
            mark + fmt_time(med),
            spread,
            mark + fmt_per_ref(med / row.refs if med is not None else None) if row.refs > 1 else "",
            cpu,
            fmt_count(row.per_ref(row.registry_requests)),
            fmt_count(row.per_ref(row.token_requests)) if row.target == "token" else "-",
        ]
        if latency:
            cells.append(fmt_count(row.per_ref(row.connections)))
            cells.append(fmt_count(row.per_ref(row.round_trips)))
        cells += [rss, str(len(row.walls))]
        lines.append(cells)
        if row.extrapolated_from and "~" not in "".join(notes):
            notes.append(
                f"~ extrapolated linearly from the first {row.extrapolated_from} references "
                "(--loop-budget); counts are per reference of that probe"
            )
        if latency and "RTT/ref" not in "".join(notes):
            notes.append(
                "conn/ref: new TCP connections through the proxies; RTT/ref: added round trips "
                "= connections + request/response exchanges (each costs the added latency)"
            )
        if row.rss_is_daemon and "(d)" not in "".join(notes):
            notes.append(
                "(d) dockerd is a long-running daemon: cpu is its CPU time spent on the calls, "
                "peak RSS its VmHWM since start; wall excludes any client start-up"
            )
    widths = [max(len(line[i]) for line in lines if i < len(line)) for i in range(len(header))]
    right = set(range(len(header))) - {1}
    for n, line in enumerate(lines):
        out = []
        for i, cell in enumerate(line):
            out.append(cell.rjust(widths[i]) if i in right and i != 1 else cell.ljust(widths[i]))
        print("  ".join(out).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
    for note in notes:
        print("  " + note)


def machine_description(bench: Bench) -> list[str]:
    cpu_model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError):
        match = re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())
        if match:
            mem = f"{int(match.group(1)) / 1024 / 1024:.1f} GiB"
    git = command_output(["git", "-C", str(REPO_ROOT), "log", "-1", "--format=%h %s"])
    dirty = (
        subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--", "imginspect"],
            capture_output=True,
            check=False,
        )
        .stdout.decode()
        .strip()
    )
    httpx_version = command_output([bench.python, "-c", "import httpx; print(httpx.__version__)"])
    floor = run_process(["true"], timeout=10).maxrss_kb / 1024
    dockerd = "skipped" if bench.args.no_dockerd else command_output(["dockerd", "--version"])
    dont_write = os.environ.get("PYTHONDONTWRITEBYTECODE")
    if bench.args.as_is_bytecode:
        bytecode = f"as is (PYTHONDONTWRITEBYTECODE={dont_write or 'unset'}; --as-is-bytecode)"
    else:
        how = (
            "the regular install's own .pyc files"
            if bench.args.install == "venv" and not bench.args.imginspect
            else "PYTHONPYCACHEPREFIX in the work directory"
        )
        bytecode = (
            f".pyc files used as after pip install ({how}"
            + (
                f"; the caller's PYTHONDONTWRITEBYTECODE={dont_write} is dropped"
                if dont_write
                else ""
            )
            + "; --as-is-bytecode to keep it)"
        )
    return [
        f"date         {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        f"machine      {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {cpu_model}, "
        f"{mem} RAM, {platform.system()} {platform.release()}",
        f"load         {Path('/proc/loadavg').read_text().split()[:3]} (1/5/15 min) at start",
        f"python       {platform.python_version()} ({bench.python})",
        f"install      {bench.install_note}",
        f"imginspect   {command_output([*bench.imginspect, '--version'])} "
        f"(run as: {' '.join(bench.imginspect)})",
        f"source       {git}{' + uncommitted changes in imginspect/' if dirty else ''}",
        f"httpx        {httpx_version}",
        f"skopeo       {command_output(['skopeo', '--version']) if bench.skopeo else 'skipped'}",
        f"registry     {command_output(['docker-registry', '--version'])}",
        f"dockerd      {dockerd}",
        f"bytecode     {bytecode}",
        f"RSS floor    {floor:.1f} MB: peak RSS of `true` under bench/spawner.py "
        "(anything smaller reads as this)",
    ]


def evaluate_targets(bench: Bench, scenario: str, latency_ms: float) -> list[str]:
    out = []
    rows = [r for r in bench.rows if r.scenario == scenario and not r.failure and r.walls]

    def find(target: str, refs: int, group: str, key: str | None = None) -> Row | None:
        for r in rows:
            same = (r.target, r.refs, r.group) == (target, refs, group)
            if same and (key is None or f"[{key} by tag]" in r.label):
                return r
        return None

    def verdict(ok: bool) -> str:
        return "[MET]    " if ok else "[NOT MET]"

    where = "loopback" if latency_ms == 0 else f"through the {latency_ms:g} ms proxy"
    # 1. start-up
    cold = find("plain", 1, "imginspect-cold", "oci-index")
    base = find("plain", 1, "baseline", "oci-index")
    if cold and base and cold.median and base.median:
        ratio = cold.median / base.median
        cpu_ratio = statistics.median(cold.cpus) / max(statistics.median(base.cpus), 1e-9)
        out.append(
            f"{verdict(ratio <= 1.3)} start-up ({where}): cold single --json "
            f"{fmt_time(cold.median)} vs httpx one-GET baseline {fmt_time(base.median)} = "
            f"{ratio:.2f}x (target <= 1.3x; CPU {fmt_time(statistics.median(cold.cpus))} vs "
            f"{fmt_time(statistics.median(base.cpus))} = {cpu_ratio:.2f}x)"
        )
    else:
        out.append("[n/a]     start-up: needs the plain registry's oci-index single rows")
    # 2. batch
    big = max([n for n in bench.args.sizes if 1 < n <= BATCH_REPOS * BATCH_TAGS], default=None)
    if big:
        mine = find("plain", big, "imginspect-cold")
        warm = find("plain", big, "imginspect-warm")
        theirs = find("plain", big, "skopeo")
        if mine and theirs and mine.median and theirs.median:
            speedup = theirs.median / mine.median
            rss = max(mine.rss_kb + (warm.rss_kb if warm else [])) / 1024
            extra = (
                f" (skopeo extrapolated from {theirs.extrapolated_from} refs)"
                if theirs.extrapolated_from
                else ""
            )
            warm_text = (
                f"; warm {fmt_time(warm.median)} = {theirs.median / warm.median:.1f}x"
                if warm and warm.median
                else ""
            )
            out.append(
                f"{verdict(speedup >= 10 and rss < 100)} batch ({where}): {big} refs, "
                f"imginspect cold {fmt_time(mine.median)} vs skopeo loop "
                f"{fmt_time(theirs.median)}{extra} = "
                f"{speedup:.1f}x faster (target >= 10x){warm_text}; peak RSS {rss:.0f} MB "
                f"(target < 100 MB)"
            )
            if big != 1000:
                out.append(
                    f"          (the target is for 1000 references; this run's largest: {big})"
                )
        else:
            out.append(
                "[n/a]     batch: needs imginspect and skopeo batch rows on the plain registry"
            )
    # 3. token request counts
    if not bench.args.no_token:

        def one_head(reg: int, tok: int, methods: list[str]) -> bool:
            return reg == 1 and tok == 0 and methods == ["HEAD 200"]

        def cold_ok(reg: int, tok: int, methods: list[str]) -> bool:
            return reg <= 2 and tok <= 1

        checks = [
            ("imginspect-cold", "cold --json, index by tag", cold_ok, "<= 2 registry + 1 token"),
            ("imginspect-warm", "warm --json, index by tag", one_head, "exactly 1 HEAD"),
            ("imginspect-digest-warm", "warm --digest, by tag", one_head, "exactly 1 HEAD"),
        ]
        for group, what, ok, target_text in checks:
            row = find("token", 1, group, "oci-index")
            if row is None:
                continue
            reg, tok = max(row.registry_requests), max(row.token_requests)
            out.append(
                f"{verdict(ok(reg, tok, row.methods))} token registry, {what}: {reg} registry "
                f"request(s) {_methods(row.methods)} + {tok} token request(s) "
                f"(target {target_text})"
            )
    return out


def issue15_ratios(bench: Bench, scenario: str, latency_ms: float) -> list[str]:
    """The goals of issue 15, each as a ratio of two rows measured in this run."""
    rows = [r for r in bench.rows if r.scenario == scenario and not r.failure and r.walls]

    def find(target: str, refs: int, group: str, key: str | None = "oci-index") -> Row | None:
        for r in rows:
            if (r.target, r.refs, r.group) == (target, refs, group) and (
                refs != 1 or key is None or f"[{key} " in r.label
            ):
                return r
        return None

    def cpu(row: Row) -> float:
        return statistics.median(row.cpus)

    out: list[str] = []

    def line(ok: bool | None, text: str) -> None:
        mark = "[n/a]    " if ok is None else "[MET]    " if ok else "[NOT MET]"
        out.append(f"{mark} {text}")

    def ratio(
        what: str, mine: Row | None, theirs: Row | None, goal: float, *, at_most: bool
    ) -> None:
        if not (mine and theirs and mine.median and theirs.median):
            line(None, f"{what}: rows missing in this run")
            return
        r = mine.median / theirs.median
        ok = r <= goal if at_most else 1 / r >= goal
        shown = f"{r:.2f}x" if at_most else f"{1 / r:.1f}x faster"
        goal_text = f"<= {goal:g}x" if at_most else f">= {goal:g}x faster"
        extra = f" (~from {theirs.extrapolated_from})" if theirs.extrapolated_from else ""
        line(
            ok,
            f"{what}: {fmt_time(mine.median)} vs {fmt_time(theirs.median)}{extra} = {shown} "
            f"(goal {goal_text}; CPU {fmt_time(cpu(mine))} vs {fmt_time(cpu(theirs))})",
        )

    if latency_ms == 0:
        ratio(
            "start-up: cold single --json vs `import httpx; httpx.Client()`",
            find("plain", 1, "imginspect-cold"),
            find("plain", 1, "httpx-client"),
            1.0,
            at_most=True,
        )
        b1000 = find("plain", 1000, "imginspect-nocache", None)
        b100 = find("plain", 100, "imginspect-nocache", None)
        if b1000:
            per_ref = cpu(b1000) / 1000
            marginal = (cpu(b1000) - cpu(b100)) / 900 if b100 else None
            line(
                (marginal if marginal is not None else per_ref) <= 0.0005,
                f"batch CPU per reference (--no-cache, 1000 refs): {per_ref * 1000:.2f} ms "
                "including start-up"
                + (f", {marginal * 1000:.2f} ms marginal ((1000 - 100) refs)" if marginal else "")
                + " (goal <= 0.5 ms)",
            )
            core1000 = find("plain", 1000, "floor-core", None)
            core100 = find("plain", 100, "floor-core", None)
            if core1000 and core100:
                out.append(
                    "          context: httpcore alone (httpx's engine, 8 threads, GET + sha256): "
                    f"{cpu(core1000):.2f} s CPU for 1000 refs, "
                    f"{(cpu(core1000) - cpu(core100)) / 900 * 1000:.2f} ms marginal per reference"
                )
        for group in ("imginspect-nocache", "imginspect-cold", "imginspect-warm"):
            ratio(
                f"1000 refs ({group.removeprefix('imginspect-')}) vs the stdlib floor",
                find("plain", 1000, group, None),
                find("plain", 1000, "floor", None),
                1.5,
                at_most=True,
            )
        ratio(
            "100 refs (cold) vs the skopeo loop",
            find("plain", 100, "imginspect-cold", None),
            find("plain", 100, "skopeo", None),
            10,
            at_most=False,
        )
        floor100, skopeo100 = find("plain", 100, "floor", None), find("plain", 100, "skopeo", None)
        if floor100 and skopeo100 and floor100.median and skopeo100.median:
            # What the goal above asks of any Python client: a process start, one batch.
            out.append(
                f"          context: the stdlib floor for 100 refs is "
                f"{skopeo100.median / floor100.median:.1f}x faster than the skopeo loop "
                f"({fmt_time(floor100.median)} vs {fmt_time(skopeo100.median)})"
            )
        huge = next((r for r in rows if r.group == "huge" and r.target == "plain"), None)
        if huge:
            rss = max(huge.rss_kb) / 1024
            line(rss < 100, f"peak RSS, {huge.refs} refs: {rss:.0f} MB (goal < 100 MB)")
        else:
            line(None, "peak RSS for 10000 refs: not measured (--sizes)")
    else:
        ratio(
            f"+{latency_ms:g} ms: warm single --json vs skopeo inspect --raw",
            find("plain", 1, "imginspect-warm"),
            find("plain", 1, "skopeo"),
            1.5,
            at_most=True,
        )
        ratio(
            f"+{latency_ms:g} ms: cold single --json, token registry, vs skopeo inspect --raw",
            find("token", 1, "imginspect-cold"),
            find("token", 1, "skopeo"),
            1.0,
            at_most=True,
        )
        ratio(
            f"+{latency_ms:g} ms: 1000 refs (cold) vs the skopeo loop",
            find("plain", 1000, "imginspect-cold", None),
            find("plain", 1000, "skopeo", None),
            30,
            at_most=False,
        )
    ic_cold = find("plain", 1, "ic-cold", None)
    ic_warm = find("plain", 1, "ic-warm", None)
    ic_sk = find("plain", 1, "ic-sk", None)
    if ic_cold and ic_sk and ic_cold.median and ic_sk.median:
        out.append(
            f"          --image-config, 6 platforms: cold {fmt_time(ic_cold.median)} "
            f"({max(ic_cold.registry_requests)} requests), warm "
            f"{fmt_time(ic_warm.median if ic_warm else None)} "
            f"({max(ic_warm.registry_requests) if ic_warm else '?'} requests), skopeo per "
            f"platform {fmt_time(ic_sk.median)} ({max(ic_sk.registry_requests)} requests): "
            f"{ic_sk.median / ic_cold.median:.1f}x faster cold"
        )
    return out


def importtime_breakdown(bench: Bench, target: Target, runs: int = 3) -> list[str]:
    """Where a cold single inspect spends its import time (``python -X importtime``), grouped
    by top-level package; per module the minimum self time over ``runs`` runs (less noise)."""
    out = []
    ref = target.ref(SINGLE_KEYS["oci-index"])
    repo, _, tag = SINGLE_KEYS["oci-index"].rpartition(":")
    url = f"http://{target.host}/v2/{repo}/manifests/{tag}"
    img = bench.imginspect
    prefix = [bench.python, "-X", "importtime"]
    cmd = [*prefix, *img[1:]] if img[0] == bench.python else [*prefix, img[0]]
    cases = (
        ("imginspect --json --no-cache (cold single)", [*cmd, "--json", "--no-cache", ref]),
        ("baseline_httpx.py", [*prefix, str(BENCH_DIR / "baseline_httpx.py"), url]),
    )
    for label, argv in cases:
        best: dict[str, int] = {}
        walls = []
        for _ in range(runs):
            result = run_process(argv, env=bench.env(None), timeout=60)
            walls.append(result.wall)
            for line in result.stderr.splitlines():
                match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|\s*(\S+)", line)
                if match:
                    name, self_us = match.group(3), int(match.group(1))
                    best[name] = min(best.get(name, self_us), self_us)
        groups: dict[str, int] = {}
        for name, us in best.items():
            groups[name.split(".")[0]] = groups.get(name.split(".")[0], 0) + us
        total = sum(best.values())
        top = sorted(groups.items(), key=lambda kv: -kv[1])[:12]
        out.append(
            f"{label}: wall {fmt_time(min(walls))} (best of {runs}, with -X importtime), imports "
            f"{total / 1000:.0f} ms, {len(best)} modules in {len(groups)} top-level packages; "
            "largest (ms, self):"
        )
        out.append("    " + ", ".join(f"{name} {us / 1000:.1f}" for name, us in top))
        own = sorted(
            ((n, us) for n, us in best.items() if n.startswith("imginspect.")),
            key=lambda kv: -kv[1],
        )
        if own:
            out.append(
                f"    imginspect's own {len(own)} modules: "
                + ", ".join(f"{n.removeprefix('imginspect.')} {us / 1000:.1f}" for n, us in own)
            )
    return out


# -- main ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark imginspect against skopeo, dockerd and a minimal httpx script on "
        "local registries. Results on stdout, progress on stderr.",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="fewer repeats, 15 s loop budget, no per-image table or big cache (1-2 minutes)",
    )
    p.add_argument(
        "--sizes",
        default="1,100,1000,10000",
        help="numbers of references (default 1,100,1000,10000; above 1000 only peak RSS, "
        "the 1000 references repeated)",
    )
    p.add_argument(
        "--repeat", type=int, help="repeats of single-reference runs (default 5, quick 3)"
    )
    p.add_argument("--batch-repeat", type=int, help="repeats of batch runs (default 3, quick 1)")
    p.add_argument(
        "--latency-ms",
        default="0,40",
        help="comma list of added round-trip latencies, one scenario each; 0 = direct loopback "
        "(default 0,40)",
    )
    p.add_argument(
        "--single", default="oci-index,schema2", help=f"single refs: {','.join(SINGLE_KEYS)}"
    )
    p.add_argument(
        "--concurrency", type=int, help="imginspect --concurrency for batches (default: its own)"
    )
    p.add_argument(
        "--loop-budget",
        type=float,
        help="seconds per skopeo/dockerd batch row before cutting repeats or extrapolating from "
        "100 refs (default 90, quick 15)",
    )
    p.add_argument("--no-token", action="store_true", help="skip the token-auth registry")
    p.add_argument("--token-batches", action="store_true", help="batches on the token registry too")
    p.add_argument("--no-dockerd", action="store_true", help="skip dockerd")
    p.add_argument("--no-skopeo", action="store_true", help="skip skopeo")
    p.add_argument(
        "--tags",
        action="store_true",
        help="also run bench/tags.py: 10k tags listed (paged) and --digests on 500 tags, "
        "requests counted, against skopeo list-tags",
    )
    p.add_argument("--no-per-image", action="store_true", help="skip the per-image request table")
    p.add_argument(
        "--big-cache",
        type=int,
        metavar="N",
        help="also time cold inspects with a cache already holding N entries (default 10000, "
        "quick 0 = skip)",
    )
    p.add_argument(
        "--cases",
        default=",".join(CASES),
        help=f"what to run, comma list (default all): {', '.join(CASES)}",
    )
    p.add_argument(
        "--install",
        choices=("venv", "current"),
        default="venv",
        help="venv (default): measure a regular `pip install .` into a venv of the benchmark's "
        "own, with its .pyc files; current: the imginspect console script next to this python "
        "(e.g. an editable install)",
    )
    p.add_argument("--imginspect", help="command to run imginspect (default: the console script)")
    p.add_argument(
        "--as-is-bytecode",
        action="store_true",
        help="keep PYTHONDONTWRITEBYTECODE as set (default: let measured Python programs use "
        ".pyc files, cached in the work directory)",
    )
    p.add_argument(
        "--max-minutes", type=float, default=20.0, help="abort after this long (default 20)"
    )
    p.add_argument("--save", type=Path, help="also write every measurement as JSON here")
    p.add_argument("--keep", action="store_true", help="keep the work directory (registry logs)")
    args = p.parse_args(argv)
    args.sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    args.latencies = [float(s) for s in args.latency_ms.split(",") if s.strip()]
    args.single = [s for s in args.single.split(",") if s]
    args.cases = [c for c in args.cases.split(",") if c]
    for case in args.cases:
        if case not in CASES:
            p.error(f"--cases: unknown {case!r} (choose from {', '.join(CASES)})")
    if "batch" not in args.cases:
        args.sizes = [n for n in args.sizes if n == 1]
    if "single" not in args.cases:
        args.sizes = [n for n in args.sizes if n != 1]
    for key in args.single:
        if key not in SINGLE_KEYS:
            p.error(f"--single: unknown {key!r} (choose from {', '.join(SINGLE_KEYS)})")
    if "oci-index" not in args.single:
        args.single.insert(0, "oci-index")  # the start-up target is measured on it
    if args.repeat is None:
        args.repeat = 3 if args.quick else 5
    if args.batch_repeat is None:
        args.batch_repeat = 1 if args.quick else 3
    if args.loop_budget is None:
        args.loop_budget = 15.0 if args.quick else 90.0
    if args.big_cache is None:
        args.big_cache = 0 if args.quick else 10000
    if args.quick:
        args.no_per_image = True
    return args


@contextlib.contextmanager
def signals_unwind(max_minutes: float) -> Iterator[None]:
    def raise_interrupted(signum: int, frame: object) -> None:
        raise Interrupted(signal.Signals(signum).name)

    previous = {
        s: signal.signal(s, raise_interrupted)
        for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGALRM)
    }
    signal.alarm(max(1, int(max_minutes * 60)))
    try:
        yield
    finally:
        signal.alarm(0)
        for s, handler in previous.items():
            signal.signal(s, handler)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="imginspect-bench-"))
    code = 0
    with contextlib.ExitStack() as stack:
        if not args.keep:
            stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        global SPAWNER
        SPAWNER = Spawner(workdir)
        stack.callback(SPAWNER.close)
        bench = Bench(args, workdir, stack)
        try:
            with signals_unwind(args.max_minutes):
                run(bench)
        except KeyboardInterrupt:
            log("interrupted (Ctrl-C): stopping registries, proxies and dockerd")
            code = 130
        except Interrupted as exc:
            log(f"stopped by {exc} (SIGALRM = --max-minutes): cleaning up")
            code = 124 if str(exc) == "SIGALRM" else 143
        finally:
            SPAWNER.close()  # kills a running measured command first
            if args.save:
                args.save.write_text(
                    json.dumps(
                        {
                            "args": {k: str(v) for k, v in vars(args).items()},
                            "rows": [asdict(r) for r in bench.rows],
                        },
                        indent=1,
                    )
                )
            if args.keep:
                log(f"work directory kept: {workdir}")
    log(f"done in {time.monotonic() - started:.0f}s")
    return code


def run(bench: Bench) -> None:
    args = bench.args
    print("imginspect benchmark (bench/run.py " + " ".join(sys.argv[1:]) + ")")
    print()
    for line in machine_description(bench):
        print("  " + line)
    print(
        f"  settings     sizes {','.join(map(str, args.sizes))}; single-ref repeats {args.repeat}, "
        f"batch repeats {args.batch_repeat}; loop budget {args.loop_budget:g}s; imginspect "
        f"concurrency {args.concurrency or 'default'}; latencies "
        f"{','.join(f'{x:g}' for x in args.latencies)} ms"
    )
    print(flush=True)
    if args.tags:  # its own registry and table (bench/tags.py), first
        subprocess.run([sys.executable, str(BENCH_DIR / "tags.py")], check=False)
        print(flush=True)

    # Load the binaries into the page cache: the first run is not measured.
    run_process([*bench.imginspect, "--version"], env=bench.env(None), timeout=60)
    if bench.skopeo:
        run_process([bench.skopeo, "--version"], timeout=60)

    bench.maybe_start_dockerd()
    if bench.dockerd_note:
        print(f"  dockerd: {bench.dockerd_note}")

    for latency_ms in args.latencies:
        scenario = "loopback" if latency_ms == 0 else f"+{latency_ms:g} ms RTT"
        log(f"scenario {scenario}: starting registries")
        targets = bench.start_targets(latency_ms)
        bench.push(targets)
        # Unmeasured runs of every code path against these registries first (page cache,
        # .pyc files, registry warm-up).
        for target in targets:
            ref = target.ref(SINGLE_KEYS["oci-index"])
            other = target.ref(SINGLE_KEYS["schema2"])
            repo, _, tag = SINGLE_KEYS["oci-index"].rpartition(":")
            url = f"http://{target.host}/v2/{repo}/manifests/{tag}"
            env = bench.env(bench.fresh_dir("warmup"))
            for argv in (
                [*bench.imginspect, "--json", "--no-cache", ref],
                [*bench.imginspect, "--json", ref, other],
                [*bench.imginspect, "--json", ref],
                [*bench.imginspect, "--digest", ref],
                [bench.python, str(BENCH_DIR / "baseline_httpx.py"), url],
                [bench.python, str(BENCH_DIR / "baseline_stdlib.py"), url],
                [bench.python, "-c", HTTPX_CLIENT],
            ):
                run_process(argv, env=env, timeout=60)
            if bench.skopeo:
                run_process(skopeo_argv(bench.skopeo, ref), timeout=60)
            if bench.dockerd is not None:
                with contextlib.suppress(Exception):
                    bench.dockerd.distribution_inspect(ref)
        for target in targets:
            if 1 in args.sizes:
                bench.singles(scenario, target)
            if target.name == "plain" or args.token_batches:
                bench.batches(scenario, target)
                if args.big_cache and "big-cache" in args.cases:
                    bench.big_cache(scenario, target, args.big_cache)
        per_image = None
        token_target = next((t for t in targets if t.name == "token"), None)
        if not args.no_per_image and "per-image" in args.cases and token_target is not None:
            log(f"{scenario}: per-image request counts")
            per_image = bench.per_image(scenario, token_target)

        title = (
            "loopback, no added latency"
            if latency_ms == 0
            else f"through a loopback proxy adding {latency_ms:g} ms per round trip "
            f"(+{latency_ms:g} ms per new connection)"
        )
        for target in targets:
            rows = [r for r in bench.rows if r.scenario == scenario and r.target == target.name]
            if not rows:
                continue
            kind = (
                "plain HTTP, no auth"
                if target.name == "plain"
                else "token auth (Bearer, anonymous pull)"
            )
            print(f"== {scenario}: {target.name} registry ({kind}), {title} ==")
            print_table(rows, latency=latency_ms > 0)
            print()
        if "image-config" in args.cases:
            bench.image_config(scenario, targets[0])
            print(f"== {scenario}: --image-config of a 6-platform index, plain registry ==")
            print_table(
                [r for r in bench.rows if r.scenario == scenario and r.group.startswith("ic-")],
                latency=latency_ms > 0,
            )
            print()
        if per_image:
            print(
                f"== {scenario}: requests per inspect for each corpus image, token registry "
                "(registry requests + token requests, then the sequence; bare method = 200) =="
            )
            names = list(per_image[0][1])
            table = [["image", *names]] + [
                [k, *(c.get(n, "") for n in names)] for k, c in per_image
            ]
            widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
            for n, r in enumerate(table):
                print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
                if n == 0:
                    print("  ".join("-" * w for w in widths))
            print()
        print(f'== targets (issue "Speed"), {scenario} ==')
        for line in evaluate_targets(bench, scenario, latency_ms):
            print(line)
        print(flush=True)
        print(f'== ratios (issue 15 "Speed, second round"), {scenario} ==')
        for line in issue15_ratios(bench, scenario, latency_ms):
            print(line)
        print(flush=True)
        if latency_ms == args.latencies[0] and "importtime" in args.cases:
            plain = next(t for t in targets if t.name == "plain")
            print(f"== start-up breakdown ({scenario}, python -X importtime) ==")
            for line in importtime_breakdown(bench, plain):
                print(line)
            print(flush=True)
        # Stop this scenario's registries and proxies before the next one.
        for target in targets:
            for p in target.proxies:
                p.stop()
            target.registry.stop()
            if target.token_server is not None:
                target.token_server.stop()
    print(f"  load at end: {Path('/proc/loadavg').read_text().split()[:3]} (1/5/15 min)")


if __name__ == "__main__":
    sys.exit(main())
