"""The start-up baseline: the least a Python tool built on httpx can do to inspect an image.

Imports httpx and sends one GET of the manifest with the Accept list of the four manifest
types, then writes the body to stdout. No auth, no retries, no digest check, no cache:
``python bench/baseline_httpx.py http://127.0.0.1:5000/v2/REPO/manifests/TAG``.
"""

import sys

import httpx

ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)

response = httpx.get(sys.argv[1], headers={"Accept": ACCEPT}, timeout=30)
response.raise_for_status()
sys.stdout.buffer.write(response.content)
