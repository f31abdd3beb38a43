"""Tests for imginspect.reference: Docker's reference grammar and normalization.

Most table rows come from the test tables of github.com/distribution/reference
(normalize_test.go, reference_test.go, regexp_test.go), re-expressed through
ParseNormalizedNamed + TagNameOnly, which is what ``docker pull`` applies. When a docker CLI is
installed, every table input is also checked against it (``docker pull`` parses the reference
before it tries to reach a daemon, and no daemon is reachable at the address we give it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from imginspect.errors import InvalidReferenceError, UsageError
from imginspect.reference import (
    DEFAULT_DOMAIN,
    DOCKER_HUB_API_HOST,
    LEGACY_DEFAULT_DOMAIN,
    OFFICIAL_REPO_PREFIX,
    Reference,
    is_loopback_host,
    parse_reference,
)

HEX64 = "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
SHA256 = f"sha256:{HEX64}"
SHA256_B = "sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa"
SHA384 = "sha384:" + "e" * 96
SHA512 = "sha512:" + "f" * 128
IMAGE_ID = "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a"
LONG_PATH = "a/" * 127 + "a"  # 255 characters: the longest path Docker accepts
TAG128 = "t" * 128


def _id(text: str) -> str:
    return text if len(text) <= 50 else f"{text[:40]}...({len(text)})"


# input, domain, path, tag, digest, canonical str()
VALID = [
    # --- the cases the tool's users type most ---
    ("ubuntu", "docker.io", "library/ubuntu", "latest", None, "docker.io/library/ubuntu:latest"),
    (
        "ubuntu:24.04",
        "docker.io",
        "library/ubuntu",
        "24.04",
        None,
        "docker.io/library/ubuntu:24.04",
    ),
    (
        "library/ubuntu",
        "docker.io",
        "library/ubuntu",
        "latest",
        None,
        "docker.io/library/ubuntu:latest",
    ),
    (
        "docker.io/ubuntu",
        "docker.io",
        "library/ubuntu",
        "latest",
        None,
        "docker.io/library/ubuntu:latest",
    ),
    (
        "index.docker.io/ubuntu",
        "docker.io",
        "library/ubuntu",
        "latest",
        None,
        "docker.io/library/ubuntu:latest",
    ),
    # registry-1.docker.io is a domain like any other: no canonicalization, no library/.
    (
        "registry-1.docker.io/ubuntu",
        "registry-1.docker.io",
        "ubuntu",
        "latest",
        None,
        "registry-1.docker.io/ubuntu:latest",
    ),
    ("localhost/foo", "localhost", "foo", "latest", None, "localhost/foo:latest"),
    ("localhost:5000/foo:bar", "localhost:5000", "foo", "bar", None, "localhost:5000/foo:bar"),
    (
        f"127.0.0.1:5000/a/b/c@{SHA256}",
        "127.0.0.1:5000",
        "a/b/c",
        None,
        SHA256,
        f"127.0.0.1:5000/a/b/c@{SHA256}",
    ),
    ("[::1]:5000/foo", "[::1]:5000", "foo", "latest", None, "[::1]:5000/foo:latest"),
    # A single segment is never a registry: "foo:5000" is image foo, tag 5000.
    ("foo:5000", "docker.io", "library/foo", "5000", None, "docker.io/library/foo:5000"),
    (
        "localhost",
        "docker.io",
        "library/localhost",
        "latest",
        None,
        "docker.io/library/localhost:latest",
    ),
    (
        "localhost:5000",
        "docker.io",
        "library/localhost",
        "5000",
        None,
        "docker.io/library/localhost:5000",
    ),
    # name:tag@digest keeps both.
    (
        f"busybox:latest@{SHA256_B}",
        "docker.io",
        "library/busybox",
        "latest",
        SHA256_B,
        f"docker.io/library/busybox:latest@{SHA256_B}",
    ),
    (f"foo/bar@{SHA256}", "docker.io", "foo/bar", None, SHA256, f"docker.io/foo/bar@{SHA256}"),
    (
        f"ubuntu@{SHA512}",
        "docker.io",
        "library/ubuntu",
        None,
        SHA512,
        f"docker.io/library/ubuntu@{SHA512}",
    ),
    (
        f"ubuntu@{SHA384}",
        "docker.io",
        "library/ubuntu",
        None,
        SHA384,
        f"docker.io/library/ubuntu@{SHA384}",
    ),
    # Tags: 128 characters is the maximum; any case; may start with '_' or a digit.
    (
        f"ubuntu:{TAG128}",
        "docker.io",
        "library/ubuntu",
        TAG128,
        None,
        f"docker.io/library/ubuntu:{TAG128}",
    ),
    ("ubuntu:_x", "docker.io", "library/ubuntu", "_x", None, "docker.io/library/ubuntu:_x"),
    # Only the path counts towards the 255-character limit (distribution/reference#9).
    (LONG_PATH, "docker.io", LONG_PATH, "latest", None, f"docker.io/{LONG_PATH}:latest"),
    (
        f"docker.io/{LONG_PATH}",
        "docker.io",
        LONG_PATH,
        "latest",
        None,
        f"docker.io/{LONG_PATH}:latest",
    ),
    # --- normalize_test.go: TestValidateReferenceName (valid) ---
    (
        "docker/docker",
        "docker.io",
        "docker/docker",
        "latest",
        None,
        "docker.io/docker/docker:latest",
    ),
    (
        "library/debian",
        "docker.io",
        "library/debian",
        "latest",
        None,
        "docker.io/library/debian:latest",
    ),
    ("debian", "docker.io", "library/debian", "latest", None, "docker.io/library/debian:latest"),
    (
        "docker.io/docker/docker",
        "docker.io",
        "docker/docker",
        "latest",
        None,
        "docker.io/docker/docker:latest",
    ),
    (
        "docker.io/library/debian",
        "docker.io",
        "library/debian",
        "latest",
        None,
        "docker.io/library/debian:latest",
    ),
    (
        "index.docker.io/docker/docker",
        "docker.io",
        "docker/docker",
        "latest",
        None,
        "docker.io/docker/docker:latest",
    ),
    (
        "index.docker.io/library/debian",
        "docker.io",
        "library/debian",
        "latest",
        None,
        "docker.io/library/debian:latest",
    ),
    (
        "127.0.0.1:5000/docker/docker",
        "127.0.0.1:5000",
        "docker/docker",
        "latest",
        None,
        "127.0.0.1:5000/docker/docker:latest",
    ),
    (
        "127.0.0.1:5000/library/debian",
        "127.0.0.1:5000",
        "library/debian",
        "latest",
        None,
        "127.0.0.1:5000/library/debian:latest",
    ),
    # Other registries have no library/ namespace to add.
    (
        "127.0.0.1:5000/debian",
        "127.0.0.1:5000",
        "debian",
        "latest",
        None,
        "127.0.0.1:5000/debian:latest",
    ),
    (
        "192.168.0.1",
        "docker.io",
        "library/192.168.0.1",
        "latest",
        None,
        "docker.io/library/192.168.0.1:latest",
    ),
    (
        "192.168.0.1:80",
        "docker.io",
        "library/192.168.0.1",
        "80",
        None,
        "docker.io/library/192.168.0.1:80",
    ),
    (
        "192.168.0.1:8/debian",
        "192.168.0.1:8",
        "debian",
        "latest",
        None,
        "192.168.0.1:8/debian:latest",
    ),
    (
        "192.168.0.2:25000/debian",
        "192.168.0.2:25000",
        "debian",
        "latest",
        None,
        "192.168.0.2:25000/debian:latest",
    ),
    # 64 characters but not hexadecimal: a name, not an image ID.
    (
        "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
        "docker.io",
        "library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
        "latest",
        None,
        "docker.io/library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev:latest",
    ),
    (
        "[fc00::1]:5000/docker",
        "[fc00::1]:5000",
        "docker",
        "latest",
        None,
        "[fc00::1]:5000/docker:latest",
    ),
    (
        "[fc00::1]:5000/docker/docker",
        "[fc00::1]:5000",
        "docker/docker",
        "latest",
        None,
        "[fc00::1]:5000/docker/docker:latest",
    ),
    (
        "[fc00:1:2:3:4:5:6:7]:5000/library/debian",
        "[fc00:1:2:3:4:5:6:7]:5000",
        "library/debian",
        "latest",
        None,
        "[fc00:1:2:3:4:5:6:7]:5000/library/debian:latest",
    ),
    # With a domain in front, a 64-hex name is unambiguous.
    (
        f"docker.io/{IMAGE_ID}",
        "docker.io",
        f"library/{IMAGE_ID}",
        "latest",
        None,
        f"docker.io/library/{IMAGE_ID}:latest",
    ),
    # An uppercase first segment is taken for a domain (path components are lowercase).
    ("Docker/docker", "Docker", "docker", "latest", None, "Docker/docker:latest"),
    ("DOCKER/docker", "DOCKER", "docker", "latest", None, "DOCKER/docker:latest"),
    ("Asdf.com/foo/bar", "Asdf.com", "foo/bar", "latest", None, "Asdf.com/foo/bar:latest"),
    # --- normalize_test.go: TestValidateRemoteName (valid) ---
    (
        "docker-rules/docker",
        "docker.io",
        "docker-rules/docker",
        "latest",
        None,
        "docker.io/docker-rules/docker:latest",
    ),
    (
        "docker---rules/docker",
        "docker.io",
        "docker---rules/docker",
        "latest",
        None,
        "docker.io/docker---rules/docker:latest",
    ),
    ("doc/docker", "docker.io", "doc/docker", "latest", None, "docker.io/doc/docker:latest"),
    ("d/docker", "docker.io", "d/docker", "latest", None, "docker.io/d/docker:latest"),
    ("jess/t", "docker.io", "jess/t", "latest", None, "docker.io/jess/t:latest"),
    (
        "dock__er/docker",
        "docker.io",
        "dock__er/docker",
        "latest",
        None,
        "docker.io/dock__er/docker:latest",
    ),
    # --- normalize_test.go: TestNormalizedSplitHostname ---
    ("test.com/foo", "test.com", "foo", "latest", None, "test.com/foo:latest"),
    ("test_com/foo", "docker.io", "test_com/foo", "latest", None, "docker.io/test_com/foo:latest"),
    (
        "docker/migrator",
        "docker.io",
        "docker/migrator",
        "latest",
        None,
        "docker.io/docker/migrator:latest",
    ),
    ("test.com:8080/foo", "test.com:8080", "foo", "latest", None, "test.com:8080/foo:latest"),
    ("test-com:8080/foo", "test-com:8080", "foo", "latest", None, "test-com:8080/foo:latest"),
    ("xn--n3h.com/foo", "xn--n3h.com", "foo", "latest", None, "xn--n3h.com/foo:latest"),
    (
        "xn--n3h.com:18080/foo",
        "xn--n3h.com:18080",
        "foo",
        "latest",
        None,
        "xn--n3h.com:18080/foo:latest",
    ),
    ("docker.io/foo", "docker.io", "library/foo", "latest", None, "docker.io/library/foo:latest"),
    (
        "docker.io/library/foo/bar",
        "docker.io",
        "library/foo/bar",
        "latest",
        None,
        "docker.io/library/foo/bar:latest",
    ),
    # --- normalize_test.go: TestParseAnyReference (the named cases) ---
    (
        "redis:latest",
        "docker.io",
        "library/redis",
        "latest",
        None,
        "docker.io/library/redis:latest",
    ),
    (
        "dmcgowan/myapp@sha256:dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c",
        "docker.io",
        "dmcgowan/myapp",
        None,
        "sha256:dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c",
        "docker.io/dmcgowan/myapp@sha256:dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c",
    ),
    # 63 hex digits: not an image ID, so a name.
    (
        "dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9",
        "docker.io",
        "library/dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9",
        "latest",
        None,
        "docker.io/library/dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9:latest",
    ),
    ("dbcc1", "docker.io", "library/dbcc1", "latest", None, "docker.io/library/dbcc1:latest"),
    # --- reference_test.go: TestReferenceParse (valid), normalized ---
    (
        "test_com",
        "docker.io",
        "library/test_com",
        "latest",
        None,
        "docker.io/library/test_com:latest",
    ),
    (
        "test.com:tag",
        "docker.io",
        "library/test.com",
        "tag",
        None,
        "docker.io/library/test.com:tag",
    ),
    (
        "test.com:5000",
        "docker.io",
        "library/test.com",
        "5000",
        None,
        "docker.io/library/test.com:5000",
    ),
    ("test.com/repo:tag", "test.com", "repo", "tag", None, "test.com/repo:tag"),
    ("test:5000/repo", "test:5000", "repo", "latest", None, "test:5000/repo:latest"),
    ("test:5000/repo:tag", "test:5000", "repo", "tag", None, "test:5000/repo:tag"),
    (f"test:5000/repo@{SHA256}", "test:5000", "repo", None, SHA256, f"test:5000/repo@{SHA256}"),
    (
        f"test:5000/repo:tag@{SHA256}",
        "test:5000",
        "repo",
        "tag",
        SHA256,
        f"test:5000/repo:tag@{SHA256}",
    ),
    (
        "lowercase:Uppercase",
        "docker.io",
        "library/lowercase",
        "Uppercase",
        None,
        "docker.io/library/lowercase:Uppercase",
    ),
    (
        f"{LONG_PATH}:tag-puts-this-over-max",
        "docker.io",
        LONG_PATH,
        "tag-puts-this-over-max",
        None,
        f"docker.io/{LONG_PATH}:tag-puts-this-over-max",
    ),
    (
        "sub-dom1.foo.com/bar/baz/quux",
        "sub-dom1.foo.com",
        "bar/baz/quux",
        "latest",
        None,
        "sub-dom1.foo.com/bar/baz/quux:latest",
    ),
    (
        "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
        "sub-dom1.foo.com",
        "bar/baz/quux",
        "some-long-tag",
        None,
        "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
    ),
    (
        "b.gcr.io/test.example.com/my-app:test.example.com",
        "b.gcr.io",
        "test.example.com/my-app",
        "test.example.com",
        None,
        "b.gcr.io/test.example.com/my-app:test.example.com",
    ),
    (
        "xn--n3h.com/myimage:xn--n3h.com",
        "xn--n3h.com",
        "myimage",
        "xn--n3h.com",
        None,
        "xn--n3h.com/myimage:xn--n3h.com",
    ),
    (
        f"xn--7o8h.com/myimage:xn--7o8h.com@{SHA512}",
        "xn--7o8h.com",
        "myimage",
        "xn--7o8h.com",
        SHA512,
        f"xn--7o8h.com/myimage:xn--7o8h.com@{SHA512}",
    ),
    (
        "foo_bar.com:8080",
        "docker.io",
        "library/foo_bar.com",
        "8080",
        None,
        "docker.io/library/foo_bar.com:8080",
    ),
    (
        "foo/foo_bar.com:8080",
        "docker.io",
        "foo/foo_bar.com",
        "8080",
        None,
        "docker.io/foo/foo_bar.com:8080",
    ),
    (
        "192.168.1.1:tag",
        "docker.io",
        "library/192.168.1.1",
        "tag",
        None,
        "docker.io/library/192.168.1.1:tag",
    ),
    ("192.168.1.1/repo", "192.168.1.1", "repo", "latest", None, "192.168.1.1/repo:latest"),
    (
        "192.168.1.1:5000/repo:5050",
        "192.168.1.1:5000",
        "repo",
        "5050",
        None,
        "192.168.1.1:5000/repo:5050",
    ),
    ("[2001:db8::1]/repo", "[2001:db8::1]", "repo", "latest", None, "[2001:db8::1]/repo:latest"),
    (
        "[2001:db8:1:2:3:4:5:6]/repo:tag",
        "[2001:db8:1:2:3:4:5:6]",
        "repo",
        "tag",
        None,
        "[2001:db8:1:2:3:4:5:6]/repo:tag",
    ),
    (
        "[2001:db8::1]:5000/repo:tag",
        "[2001:db8::1]:5000",
        "repo",
        "tag",
        None,
        "[2001:db8::1]:5000/repo:tag",
    ),
    (
        f"[2001:db8::1]:5000/repo:tag@{SHA256}",
        "[2001:db8::1]:5000",
        "repo",
        "tag",
        SHA256,
        f"[2001:db8::1]:5000/repo:tag@{SHA256}",
    ),
    (
        "[2001:db8::]:5000/repo",
        "[2001:db8::]:5000",
        "repo",
        "latest",
        None,
        "[2001:db8::]:5000/repo:latest",
    ),
    # --- regexp_test.go: names and domains the grammar accepts ---
    (
        "registry.io/foo/project--id.module--name.ver---sion--name",
        "registry.io",
        "foo/project--id.module--name.ver---sion--name",
        "latest",
        None,
        "registry.io/foo/project--id.module--name.ver---sion--name:latest",
    ),
    (
        "example.com/some_separator__underscore/myimage",
        "example.com",
        "some_separator__underscore/myimage",
        "latest",
        None,
        "example.com/some_separator__underscore/myimage:latest",
    ),
    ("aa-a/a", "docker.io", "aa-a/a", "latest", None, "docker.io/aa-a/a:latest"),
    ("0101.com/x", "0101.com", "x", "latest", None, "0101.com/x:latest"),
    # Ports are not range-checked, and bracketed "IPv6" is only [hex and colons].
    (
        "192.168.1.1:750050/x",
        "192.168.1.1:750050",
        "x",
        "latest",
        None,
        "192.168.1.1:750050/x:latest",
    ),
    (
        "[fd00123123123]:75050/x",
        "[fd00123123123]:75050",
        "x",
        "latest",
        None,
        "[fd00123123123]:75050/x:latest",
    ),
    (
        f"localhost:8080@{SHA256}",
        "docker.io",
        "library/localhost",
        "8080",
        SHA256,
        f"docker.io/library/localhost:8080@{SHA256}",
    ),
    # docker.io followed by a dotted component: a Hub namespace, not a second host.
    ("docker.io/foo.bar/x", "docker.io", "foo.bar/x", "latest", None, "docker.io/foo.bar/x:latest"),
]

# input, a substring the error message must contain
INVALID = [
    # --- the brief's and the tool's own cases ---
    ("Ubuntu", "repository name (library/Ubuntu) must be lowercase"),
    ("docker.io/library/Ubuntu", "repository name (library/Ubuntu) must be lowercase"),
    (IMAGE_ID, f"invalid repository name ({IMAGE_ID}), cannot specify 64-byte hexadecimal strings"),
    (f"sha256:{IMAGE_ID}", "is a digest, not an image name"),
    (SHA512, "is a digest, not an image name"),
    ("", "empty image reference"),
    (" ", "contains whitespace"),
    (" ubuntu", "contains whitespace"),
    ("ubuntu ", "contains whitespace"),
    ("ubuntu\n", "contains whitespace"),
    ("ubuntu:", "missing tag after ':'"),
    ("ubuntu@", "missing digest after '@'"),
    ("ubuntu:latest@", "missing digest after '@'"),
    ("https://registry-1.docker.io/library/ubuntu", "is not a URL"),
    (f"ubuntu:{TAG128}x", "tag is 129 characters long, the maximum is 128"),
    ("ubuntu:-x", 'invalid tag "-x"'),
    ("ubuntu:.x", 'invalid tag ".x"'),
    ("ubuntu:a~b", 'invalid tag "a~b"'),
    (f"ubuntu@sha256:{HEX64[:63]}", "invalid checksum digest length"),
    (f"ubuntu@sha256:{HEX64}f", "invalid checksum digest length"),
    (f"ubuntu@sha512:{HEX64}", "invalid checksum digest length"),
    (f"ubuntu@sha256:{HEX64.upper()}", "hex must be lowercase"),
    (f"ubuntu@md5:{HEX64[:32]}", 'unsupported digest algorithm "md5"'),
    (f"ubuntu@SHA256:{HEX64}", 'unsupported digest algorithm "SHA256"'),
    ("ubuntu@sha256:abc", 'malformed digest "sha256:abc"'),
    (f"ubuntu@sha256:{'g' * 64}", "malformed digest"),
    ("ubuntu@latest", 'malformed digest "latest"'),
    (f"ubuntu@{HEX64}", "malformed digest"),
    # The path may not exceed 255 characters, wherever the registry is.
    ("a/" * 128 + "a", "repository name must not be more than 255 characters"),
    ("example.com/" + "a" * 256, "repository name must not be more than 255 characters"),
    (
        "this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_"
        "this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_"
        "this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_"
        "this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255/docker",
        "repository name must not be more than 255 characters",
    ),
    # Docker accepts this with an *empty* domain, which no registry request can use.
    ("foo_bar.com/x", '"foo_bar.com" is not a valid registry host'),
    # An uppercase first segment is a domain, but this one is no valid host.
    ("Foo_bar/x", "repository name must be lowercase"),
    # --- reference_test.go: TestReferenceParse (invalid) ---
    (":justtag", "missing repository name"),
    (f"@{SHA256}", "missing repository name"),
    ("repo@sha256:" + "f" * 34, "invalid checksum digest length"),
    (f"validname@invaliddigest:{HEX64}", 'unsupported digest algorithm "invaliddigest"'),
    ("Uppercase:tag", "repository name (library/Uppercase) must be lowercase"),
    (
        "test:5000/Uppercase/lowercase:tag",
        "repository name (Uppercase/lowercase) must be lowercase",
    ),
    ("a/" * 128 + "a:tag", "repository name must not be more than 255 characters"),
    ("aa/asdf$$^/aa", 'invalid repository name component "asdf$$^"'),
    ("[2001:db8::1]", "invalid reference format"),
    ("[2001:db8::1]:5000", "invalid reference format"),
    ("[2001:db8::1]:tag", "invalid reference format"),
    ("[fe80::1%eth0]:5000/repo", 'invalid registry host "[fe80::1%eth0]:5000"'),
    ("[fe80::1%@invalidzone]:5000/repo", "invalid reference format"),
    # --- normalize_test.go: TestValidateReferenceName (invalid) ---
    ("https://github.com/docker/docker", "is not a URL"),
    ("docker/Docker", "repository name (docker/Docker) must be lowercase"),
    ("-docker", 'invalid repository name component "-docker"'),
    ("-docker/docker", 'invalid repository name component "-docker"'),
    ("-docker.io/docker/docker", 'invalid registry host "-docker.io"'),
    ("docker///docker", "empty repository name component"),
    ("docker.io/docker/Docker", "repository name (docker/Docker) must be lowercase"),
    ("docker.io/docker///docker", "empty repository name component"),
    ("[fc00::1]", "invalid reference format"),
    ("[fc00::1]:5000", "invalid reference format"),
    ("fc00::1:5000/debian", 'invalid registry host "fc00::1:5000"'),
    ("[fe80::1%eth0]:5000/debian", "invalid registry host"),
    ("[2001:db8:3:4::192.0.2.33]:5000/debian", "invalid registry host"),
    # --- normalize_test.go: TestValidateRemoteName (invalid) ---
    ("docker-/docker", 'invalid repository name component "docker-"'),
    ("-docker-/docker", 'invalid repository name component "-docker-"'),
    ("____/____", 'invalid repository name component "____"'),
    ("_docker/_docker", 'invalid repository name component "_docker"'),
    ("dock..er/docker", "invalid registry host"),
    ("dock_.er/docker", "invalid registry host"),
    ("dock-.er/docker", "invalid registry host"),
    ("docker/", "empty repository name component"),
    # --- regexp_test.go: rejected names and domains ---
    ("test.com:http/bar", 'invalid registry host "test.com:http"'),
    ("example.com/__underscore/myimage", 'invalid repository name component "__underscore"'),
    ("example.com/..dots/myimage", 'invalid repository name component "..dots"'),
    ("example.com/nodouble..dots/myimage", 'invalid repository name component "nodouble..dots"'),
    ("foo.com/a-/a/a", 'invalid repository name component "a-"'),
    ("foo/-bar", 'invalid repository name component "-bar"'),
    ("bad_hostname.com:8080/myapp:tag", 'invalid registry host "bad_hostname.com:8080"'),
    ("do__cker:8080/docker", 'invalid registry host "do__cker:8080"'),
    ("registry.com:8080/myapp@2bad", 'malformed digest "2bad"'),
    ("deislabs:8080:8080/porter-hello:latest", "invalid registry host"),
    # Non-ASCII is never part of a reference.
    ("ubuntü", "invalid reference format"),
    ("ubuntu:tåg", 'invalid tag "tåg"'),
]


@pytest.mark.parametrize(
    ("text", "domain", "path", "tag", "digest", "canonical"),
    [pytest.param(*row, id=_id(row[0])) for row in VALID],
)
def test_parse_valid(
    text: str, domain: str, path: str, tag: str | None, digest: str | None, canonical: str
) -> None:
    ref = parse_reference(text)
    assert (ref.domain, ref.path, ref.tag, ref.digest) == (domain, path, tag, digest)
    assert str(ref) == canonical
    assert ref.name == f"{domain}/{path}"
    # The canonical form is a fixed point.
    assert parse_reference(canonical) == ref


@pytest.mark.parametrize(
    ("text", "message"), [pytest.param(*row, id=_id(row[0])) for row in INVALID]
)
def test_parse_invalid(text: str, message: str) -> None:
    with pytest.raises(InvalidReferenceError) as caught:
        parse_reference(text)
    error = caught.value
    assert message in error.message
    assert isinstance(error, UsageError)  # exit code 2: a bad command line
    # The message names what it refuses: the input itself or, for Docker's lowercase message,
    # the offending repository name.
    lowercase = re.search(r"repository name \((.*)\) must be lowercase", error.message)
    if lowercase:
        assert lowercase.group(1).removeprefix(OFFICIAL_REPO_PREFIX) in text
    else:
        assert text in error.message or json.dumps(text, ensure_ascii=False) in error.message


def test_table_sizes() -> None:
    # The brief asks for at least 80 table-driven cases; keep the tables honest.
    assert len(VALID) + len(INVALID) >= 80
    assert len({row[0] for row in VALID}) == len(VALID)
    assert len({row[0] for row in INVALID}) == len(INVALID)


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("Ubuntu", 'did you mean "ubuntu"?'),
        ("ghcr.io/Owner/Image:V1", 'did you mean "ghcr.io/owner/image:V1"?'),
        # "MyOrg" is a "host" only by its case: the suggestion lowercases it too.
        ("MyOrg/App", 'did you mean "myorg/app"?'),
        (f"Foo@{SHA256}", f'did you mean "foo@{SHA256}"?'),
        (IMAGE_ID, f"NAME@sha256:{IMAGE_ID}"),
        (f"sha256:{IMAGE_ID}", f"NAME@sha256:{IMAGE_ID}"),
        ("https://ghcr.io/owner/image", "ghcr.io/owner/image"),
        (f"ubuntu@sha256:{HEX64.upper()}", f"use sha256:{HEX64}"),
    ],
)
def test_error_hints(text: str, hint: str) -> None:
    with pytest.raises(InvalidReferenceError) as caught:
        parse_reference(text)
    assert caught.value.hint is not None
    assert hint in caught.value.hint


def test_tag_and_digest_resolve_by_digest() -> None:
    ref = parse_reference(f"ubuntu:24.04@{SHA256}")
    assert ref.tag == "24.04"
    assert ref.digest == SHA256
    assert ref.target == SHA256
    assert parse_reference("ubuntu:24.04").target == "24.04"
    assert parse_reference("ubuntu").target == "latest"
    assert parse_reference(f"ubuntu@{SHA256}").target == SHA256


def test_properties() -> None:
    hub = parse_reference("ubuntu")
    assert hub.name == "docker.io/library/ubuntu"
    assert hub.api_host == DOCKER_HUB_API_HOST == "registry-1.docker.io"
    assert hub.is_docker_hub
    assert parse_reference("index.docker.io/foo/bar").is_docker_hub
    other = parse_reference("registry-1.docker.io/library/ubuntu")
    assert not other.is_docker_hub
    assert other.api_host == "registry-1.docker.io"
    local = parse_reference("[::1]:5000/foo")
    assert local.api_host == "[::1]:5000"
    assert not local.is_docker_hub
    assert (DEFAULT_DOMAIN, LEGACY_DEFAULT_DOMAIN, OFFICIAL_REPO_PREFIX) == (
        "docker.io",
        "index.docker.io",
        "library/",
    )


def test_reference_is_frozen_and_hashable() -> None:
    ref = parse_reference("ubuntu")
    with pytest.raises(FrozenInstanceError):
        ref.tag = "other"  # type: ignore[misc]
    assert {ref, parse_reference("docker.io/library/ubuntu:latest")} == {ref}


def test_with_digest() -> None:
    ref = parse_reference("ghcr.io/owner/image:v1")
    pinned = ref.with_digest(SHA256)
    assert pinned == Reference("ghcr.io", "owner/image", "v1", SHA256)
    assert str(pinned) == f"ghcr.io/owner/image:v1@{SHA256}"
    assert pinned.target == SHA256
    assert ref.digest is None  # the original is unchanged
    assert pinned.with_digest(SHA512).digest == SHA512
    for bad in ("sha256:abc", f"md5:{HEX64[:32]}", f"sha256:{HEX64.upper()}", "", HEX64):
        with pytest.raises(InvalidReferenceError):
            ref.with_digest(bad)


# normalize_test.go TestParseRepositoryInfo: every spelling of a repository has the same
# familiar name, canonical name, domain and path.
REPOSITORY_INFO = [
    # familiar, canonical name, domain, path, other spellings
    ("fooo/bar", "docker.io/fooo/bar", "docker.io", "fooo/bar", ["index.docker.io/fooo/bar"]),
    ("ubuntu", "docker.io/library/ubuntu", "docker.io", "library/ubuntu", ["library/ubuntu"]),
    ("nonlibrary/ubuntu", "docker.io/nonlibrary/ubuntu", "docker.io", "nonlibrary/ubuntu", []),
    ("other/library", "docker.io/other/library", "docker.io", "other/library", []),
    (
        "127.0.0.1:8000/private/moonbase",
        "127.0.0.1:8000/private/moonbase",
        "127.0.0.1:8000",
        "private/moonbase",
        [],
    ),
    (
        "127.0.0.1:8000/privatebase",
        "127.0.0.1:8000/privatebase",
        "127.0.0.1:8000",
        "privatebase",
        [],
    ),
    (
        "example.com/private/moonbase",
        "example.com/private/moonbase",
        "example.com",
        "private/moonbase",
        [],
    ),
    (
        "example.com:8000/privatebasee",
        "example.com:8000/privatebasee",
        "example.com:8000",
        "privatebasee",
        [],
    ),
    (
        "ubuntu-12.04-base",
        "docker.io/library/ubuntu-12.04-base",
        "docker.io",
        "library/ubuntu-12.04-base",
        ["index.docker.io/library/ubuntu-12.04-base"],
    ),
    ("foo", "docker.io/library/foo", "docker.io", "library/foo", ["docker.io/foo"]),
    # library/ is only dropped when a single component follows it.
    ("library/foo/bar", "docker.io/library/foo/bar", "docker.io", "library/foo/bar", []),
    ("store/foo/bar", "docker.io/store/foo/bar", "docker.io", "store/foo/bar", []),
    ("Foo/bar", "Foo/bar", "Foo", "bar", []),
    ("FOO/bar", "FOO/bar", "FOO", "bar", []),
    ("localhost:5000/x", "localhost:5000/x", "localhost:5000", "x", []),
    (
        "registry-1.docker.io/ubuntu",
        "registry-1.docker.io/ubuntu",
        "registry-1.docker.io",
        "ubuntu",
        [],
    ),
]


@pytest.mark.parametrize(
    ("familiar", "name", "domain", "path", "others"),
    [pytest.param(*row, id=row[0]) for row in REPOSITORY_INFO],
)
def test_familiar_name(familiar: str, name: str, domain: str, path: str, others: list[str]) -> None:
    for spelling in [familiar, name, *others]:
        ref = parse_reference(spelling)
        assert ref.familiar_name == familiar
        assert ref.name == name
        assert (ref.domain, ref.path) == (domain, path)


@pytest.mark.parametrize(
    ("text", "familiar"),
    [
        ("ubuntu", "ubuntu:latest"),
        ("docker.io/library/ubuntu:24.04", "ubuntu:24.04"),
        (f"busybox:latest@{SHA256_B}", f"busybox:latest@{SHA256_B}"),
        (f"docker.io/library/busybox@{SHA256_B}", f"busybox@{SHA256_B}"),
        ("index.docker.io/dmcgowan/myapp:1", "dmcgowan/myapp:1"),
        ("localhost:5000/foo:bar", "localhost:5000/foo:bar"),
        (f"[::1]:5000/a/b@{SHA256}", f"[::1]:5000/a/b@{SHA256}"),
        ("library/foo/bar:x", "library/foo/bar:x"),
    ],
)
def test_familiar_string(text: str, familiar: str) -> None:
    ref = parse_reference(text)
    assert ref.familiar_string() == familiar
    assert parse_reference(familiar) == ref


def test_familiar_string_is_ambiguous_like_dockers() -> None:
    # Docker's FamiliarString drops docker.io even when the next component then reads as a
    # registry host; we reproduce that rather than invent a different familiar form.
    ref = parse_reference("docker.io/foo.bar/x")
    assert ref.familiar_string() == "foo.bar/x:latest"
    assert parse_reference(ref.familiar_string()).domain == "foo.bar"


@pytest.mark.parametrize(
    ("domain", "loopback"),
    [
        ("localhost", True),
        ("localhost:5000", True),
        ("LocalHost:5000", True),
        ("127.0.0.1", True),
        ("127.0.0.1:5000", True),
        ("127.255.255.254:80", True),
        ("[::1]", True),
        ("[::1]:5000", True),
        ("[0:0:0:0:0:0:0:1]:5000", True),
        ("::1", True),
        ("[::ffff:127.0.0.1]:5000", True),
        ("[::ffff:7f00:1]", True),
        ("128.0.0.1:5000", False),
        ("10.0.0.1", False),
        ("0.0.0.0", False),
        ("[::]:5000", False),
        ("[::2]", False),
        ("[fd00123123123]:75050", False),
        ("docker.io", False),
        ("registry-1.docker.io", False),
        ("localhost.example.com:5000", False),
        ("mylocalhost", False),
        ("", False),
        ("[", False),
        ("[::1", False),
        (":", False),
    ],
)
def test_is_loopback_host(domain: str, loopback: bool) -> None:
    assert is_loopback_host(domain) is loopback


def test_is_loopback_host_of_parsed_references() -> None:
    assert is_loopback_host(parse_reference("localhost:5000/foo").domain)
    assert is_loopback_host(parse_reference("127.0.0.1:5000/a/b/c").domain)
    assert is_loopback_host(parse_reference("[::1]:5000/foo").domain)
    assert not is_loopback_host(parse_reference("localhost").domain)  # docker.io/library/localhost


# --- property tests -------------------------------------------------------------------------

_alnum = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=6)
_separator = st.sampled_from([".", "_", "__", "-", "--", "---"])
_path_component = st.builds(
    lambda head, rest: head + "".join(sep + part for sep, part in rest),
    _alnum,
    st.lists(st.tuples(_separator, _alnum), max_size=3),
)
_label = st.from_regex(r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,6}[a-zA-Z0-9])?", fullmatch=True)
_port = st.integers(min_value=0, max_value=99999).map(lambda p: f":{p}")
_optional_port = st.one_of(st.just(""), _port)
_ipv6 = st.ip_addresses(v=6).map(lambda a: a.compressed).filter(lambda s: "." not in s)
_domain = st.one_of(
    # A dotted name is always a domain.
    st.builds(
        lambda labels, port: ".".join(labels) + port,
        st.lists(_label, min_size=2, max_size=4),
        _optional_port,
    ),
    # A single label is a domain only with a port...
    st.builds(lambda label, port: label + port, _label, _port),
    # ... or when it has an uppercase letter.
    st.from_regex(r"[a-z0-9]{0,3}[A-Z][a-zA-Z0-9]{0,3}", fullmatch=True),
    st.builds(lambda port: "localhost" + port, _optional_port),
    st.builds(lambda a, port: f"{a}{port}", st.ip_addresses(v=4), _optional_port),
    st.builds(lambda a, port: f"[{a}]{port}", _ipv6, _optional_port),
    st.sampled_from(["docker.io", "index.docker.io", "registry-1.docker.io"]),
)
_tag = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", fullmatch=True)
_digest = st.sampled_from([("sha256", 64), ("sha384", 96), ("sha512", 128)]).flatmap(
    lambda alg: st.text("0123456789abcdef", min_size=alg[1], max_size=alg[1]).map(
        lambda hex_: f"{alg[0]}:{hex_}"
    )
)


@given(
    domain=st.none() | _domain,
    components=st.lists(_path_component, min_size=1, max_size=5),
    tag=st.none() | _tag,
    digest=st.none() | _digest,
)
@example(domain=None, components=["ubuntu"], tag=None, digest=None)
@example(domain="docker.io", components=["foo.bar", "x"], tag="v1", digest=None)
@example(domain="[::1]:5000", components=["a", "b", "c"], tag=None, digest=SHA256)
def test_round_trip(
    domain: str | None, components: list[str], tag: str | None, digest: str | None
) -> None:
    if domain is None and len(components) > 1:
        # Without a host in front, a first component that reads as a host becomes one.
        assume("." not in components[0] and components[0] != "localhost")
    path = "/".join(components)
    text = (f"{domain}/" if domain is not None else "") + path
    text += (f":{tag}" if tag is not None else "") + (f"@{digest}" if digest is not None else "")

    ref = parse_reference(text)

    expected_domain = DEFAULT_DOMAIN if domain in (None, LEGACY_DEFAULT_DOMAIN) else domain
    expected_path = path
    if expected_domain == DEFAULT_DOMAIN and len(components) == 1:
        expected_path = OFFICIAL_REPO_PREFIX + path
    expected_tag = "latest" if tag is None and digest is None else tag
    assert ref == Reference(expected_domain, expected_path, expected_tag, digest)
    assert parse_reference(str(ref)) == ref
    assert ref.target == (digest or expected_tag)
    if not (
        ref.is_docker_hub
        and ("." in ref.familiar_name.split("/")[0] or ref.familiar_name.startswith("localhost/"))
    ):
        # The familiar form round-trips too, except Docker's own ambiguity (see above).
        assert parse_reference(ref.familiar_string()) == ref


_reference_alphabet = st.sampled_from(
    [
        *"abcxyzABZ019._-/:@[]% \t\n\x00é",
        *("sha256:", "sha512:", "md5:", HEX64, "localhost", "docker.io", "index.docker.io", "::1"),
    ]
)


@given(st.one_of(st.text(), st.lists(_reference_alphabet, max_size=12).map("".join)))
@example("")
@example("a" * 64)
@example(f"sha256:{HEX64}")
@example("Foo_bar/x")
def test_only_invalid_reference_errors(text: str) -> None:
    try:
        ref = parse_reference(text)
    except InvalidReferenceError as error:
        assert error.message
        return
    # Whatever parses is canonical and stable.
    assert parse_reference(str(ref)) == ref
    assert ref.path == ref.path.lower()
    assert ref.tag is not None or ref.digest is not None


# --- differential test against the docker CLI -----------------------------------------------

# Inputs Docker's parser accepts and we refuse on purpose (see parse_reference's docstring).
_DELIBERATE_DIFFERENCES = {f"sha256:{IMAGE_ID}", SHA512, "foo_bar.com/x"}


def _docker_cli_version() -> tuple[int, ...] | None:
    docker = shutil.which("docker")
    if docker is None:
        return None
    try:
        out = subprocess.run(
            [docker, "version", "--format", "{{.Client.Version}}"],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock"},
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.match(r"(\d+)\.(\d+)", out.strip())
    return (int(match.group(1)), int(match.group(2))) if match else None


@pytest.fixture(scope="module")
def docker_pull_env(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], str]:
    version = _docker_cli_version()
    # Docker 27+ vendors distribution/reference v0.6, whose length rule we follow.
    if version is None or version < (27, 0):
        pytest.skip("needs a docker CLI, version 27 or later")
    config = tmp_path_factory.mktemp("docker-config")
    # A daemon address that cannot exist: a valid reference fails when connecting to it (and
    # the error names it), an invalid one fails earlier, while parsing. Nothing is pulled.
    socket = str(Path(config) / "no-such-daemon.sock")
    env = {**os.environ, "DOCKER_HOST": f"unix://{socket}", "DOCKER_CONFIG": str(config)}
    env.pop("DOCKER_CONTEXT", None)
    return env, socket


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(row[0], id=_id(row[0]))
        for row in VALID + INVALID
        if row[0] and not row[0].startswith("-")
    ],
)
def test_docker_cli_agrees(docker_pull_env: tuple[dict[str, str], str], text: str) -> None:
    env, socket = docker_pull_env
    result = subprocess.run(
        ["docker", "pull", "--quiet", text], capture_output=True, text=True, timeout=60, env=env
    )
    docker_accepts = socket in result.stdout + result.stderr
    try:
        parse_reference(text)
        we_accept = True
    except InvalidReferenceError:
        we_accept = False
    if text in _DELIBERATE_DIFFERENCES:
        assert docker_accepts and not we_accept
    else:
        assert we_accept == docker_accepts, result.stderr
