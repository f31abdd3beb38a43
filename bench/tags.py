#!/usr/bin/env python3
"""Tag listing benchmark: `imginspect tags` against `skopeo list-tags`, same run, same
registry, requests counted.

    python bench/tags.py                 # about a minute on 2 cores

Starts the CNCF distribution registry (plain HTTP, loopback), pushes one image under 10000
tags and another under 500, then times (median of --repeats, wall clock including process
start-up) and counts registry requests for:

* listing 10k tags: on the registry itself (Debian's distribution 2.8 ignores ``n`` and sends
  the whole list in one response), and paged 1000 at a time through a distribution-3-style
  paging front (``n``, ``last``, ``Link: rel="next"``), for imginspect and skopeo;
* ``imginspect tags --digests`` on 500 tags (one HEAD per tag, 8 concurrent), against a
  ``skopeo inspect --format {{.Digest}}`` loop over 50 of them, extrapolated to 500.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(REPO_ROOT))

from tests.support.corpus import Pusher, _Builder  # noqa: E402
from tests.support.registry import Registry, start_plain_registry  # noqa: E402
from tests.support.supplychain import referrers_proxy  # noqa: E402


def push_tags(registry: Registry, repo: str, count: int) -> None:
    image = _Builder("bench").image(repo, repo, platform="linux/amd64", layer_sizes=(64,))
    with registry.client() as client:
        pusher = Pusher(client)
        for blob in image.blobs():
            pusher.push_blob(repo, blob)

        def put(n: int) -> None:
            response = client.put(
                f"/v2/{repo}/manifests/t{n:05d}",
                content=image.raw,
                headers={"Content-Type": image.media_type},
            )
            assert response.status_code == 201, response.text

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(put, range(count)))


def timed(argv: list[str], repeats: int) -> tuple[float, str]:
    times, out = [], ""
    for _ in range(repeats):
        started = time.monotonic()
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        times.append(time.monotonic() - started)
        if proc.returncode != 0:
            raise SystemExit(f"{argv[:3]} failed ({proc.returncode}): {proc.stderr[-500:]}")
        out = proc.stdout
    return statistics.median(times), out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    skopeo = shutil.which("skopeo")
    imginspect = [sys.executable, "-m", "imginspect"]
    workdir = Path(tempfile.mkdtemp(prefix="imginspect-bench-tags-"))
    registry = start_plain_registry(workdir / "registry")
    rows: list[tuple[str, float, int, int]] = []
    try:
        started = time.monotonic()
        push_tags(registry, "bench/tags10k", 10_000)
        push_tags(registry, "bench/tags500", 500)
        print(f"pushed 10500 tags in {time.monotonic() - started:.0f}s", file=sys.stderr)
        host = registry.host
        with referrers_proxy(registry) as paging:

            def measure(name: str, argv: list[str], through_proxy: bool) -> str:
                mark, before = registry.mark(), len(paging.requests)
                seconds, out = timed(argv, args.repeats)
                if through_proxy:
                    requests = (len(paging.requests) - before) // args.repeats
                else:
                    requests = len(registry.requests_since(mark)) // args.repeats
                lines = len(out.splitlines())
                rows.append((name, seconds, requests, lines))
                return out

            for label, target, proxy in (
                ("registry (one response)", host, False),
                ("paged n=1000", paging.host, True),
            ):
                measure(
                    f"imginspect tags, 10k, {label}",
                    [*imginspect, "tags", "--no-cache", f"{target}/bench/tags10k"],
                    proxy,
                )
                if skopeo:
                    measure(
                        f"skopeo list-tags, 10k, {label}",
                        [
                            skopeo,
                            "list-tags",
                            "--tls-verify=false",
                            f"docker://{target}/bench/tags10k",
                        ],
                        proxy,
                    )
            measure(
                "imginspect tags --digests, 500",
                [*imginspect, "tags", "--no-cache", "--digests", f"{host}/bench/tags500"],
                False,
            )
            if skopeo:
                loop = (
                    f"for n in $(seq -f %05g 0 49); do {skopeo} inspect --tls-verify=false "
                    f"--format '{{{{.Digest}}}}' docker://{host}/bench/tags500:t$n; done"
                )
                mark = registry.mark()
                seconds, _ = timed(["sh", "-c", loop], 1)
                requests = len(registry.requests_since(mark))
                rows.append(
                    ("skopeo inspect loop, 50 (x10 = 500)", seconds * 10, requests * 10, 500)
                )
    finally:
        registry.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"{'case':48} {'median s':>9} {'requests':>9} {'lines':>6}")
    for name, seconds, requests, lines in rows:
        print(f"{name:48} {seconds:9.2f} {requests:9d} {lines:6d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
