"""The floor: GETs of manifests with nothing but the standard library (http.client).

What any Python CLI pays at least. One reference: interpreter start-up plus one GET, the same
request as ``baseline_httpx.py``:
``python bench/baseline_stdlib.py http://127.0.0.1:5000/v2/REPO/manifests/TAG``.

Many: ``python bench/baseline_stdlib.py -f URLS.txt`` GETs every URL of the file (one a line)
with 8 threads, one keep-alive connection each, hashes each body (sha256) and writes one line
per URL in order: the least a batch of manifest GETs costs in Python.

``-f URLS.txt --httpcore``: the same with httpcore (httpx's connection layer, the stack
imginspect is built on) instead of http.client: one ``httpcore.HTTPConnection`` per thread,
no pool, nothing else: the least a batch costs on that stack.
"""

import hashlib
import http.client
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import SplitResult, urlsplit

ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
HEADERS = {"Accept": ACCEPT}


def get(conn: http.client.HTTPConnection, path: str) -> bytes:
    conn.request("GET", path, headers=HEADERS)
    response = conn.getresponse()
    body = response.read()
    if response.status != 200:
        sys.exit(f"HTTP {response.status} for {path}")
    return body


if sys.argv[1] != "-f":
    url = urlsplit(sys.argv[1])
    sys.stdout.buffer.write(get(http.client.HTTPConnection(url.netloc, timeout=30), url.path))
    sys.exit(0)

with open(sys.argv[2], encoding="utf-8") as f:
    urls = [urlsplit(line.strip()) for line in f if line.strip()]
local = threading.local()

if sys.argv[3:] == ["--httpcore"]:
    import httpcore

    def get_core(url: SplitResult) -> bytes:
        conn = getattr(local, "conn", None)
        if conn is None:
            origin = httpcore.Origin(b"http", (url.hostname or "").encode(), url.port or 80)
            conn = local.conn = httpcore.HTTPConnection(origin)
        response = conn.request(
            "GET",
            f"http://{url.netloc}{url.path}",
            headers=[(b"Host", url.netloc.encode()), (b"Accept", ACCEPT.encode())],
        )
        if response.status != 200:
            sys.exit(f"HTTP {response.status} for {url.path}")
        return response.content

    def one_core(url: SplitResult) -> str:
        body = get_core(url)
        return f"{url.path} sha256:{hashlib.sha256(body).hexdigest()} {len(body)}\n"

    with ThreadPoolExecutor(max_workers=8) as pool:
        sys.stdout.writelines(pool.map(one_core, urls))
    sys.exit(0)


def one(url: SplitResult) -> str:
    conn = getattr(local, "conn", None)
    if conn is None:
        conn = local.conn = http.client.HTTPConnection(url.netloc, timeout=30)
    body = get(conn, url.path)
    return f"{url.path} sha256:{hashlib.sha256(body).hexdigest()} {len(body)}\n"


with ThreadPoolExecutor(max_workers=8) as pool:
    sys.stdout.writelines(pool.map(one, urls))
