"""The floor: one GET of the manifest with nothing but the standard library (http.client).

What any Python CLI pays at least: interpreter start-up plus one request. Same request as
``baseline_httpx.py``: ``python bench/baseline_stdlib.py http://127.0.0.1:5000/v2/REPO/manifests/TAG``.
"""

import http.client
import sys
from urllib.parse import urlsplit

ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)

url = urlsplit(sys.argv[1])
conn = http.client.HTTPConnection(url.netloc, timeout=30)
conn.request("GET", url.path, headers={"Accept": ACCEPT})
response = conn.getresponse()
body = response.read()
if response.status != 200:
    sys.exit(f"HTTP {response.status}")
sys.stdout.buffer.write(body)
