"""imginspect: inspect container images in a remote registry without pulling them.

The public API (``__all__``) is what the command line uses: :func:`inspect` for one image,
:class:`Inspector` to share connections and tokens across references,
:func:`inspect_one`/:func:`inspect_many` with an :class:`InspectRequest` for the CLI's
checks, platform selection, image configs (``image_config``: :class:`ImageDetails`,
:class:`ImageConfig`) and batches, :func:`batch_exit_code`, and :func:`render` in each
:class:`OutputMode` (a :class:`Template` for ``OutputMode.TEMPLATE``); tags
(:func:`iter_tags`), supply-chain evidence (:func:`supply_chain`) and :func:`compare`.

The package root stays import-light on purpose: the CLI's start-up time matters, so
nothing here imports httpx, click or rich; the names are loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from imginspect.errors import (
    AuthError,
    DigestDriftError,
    ExitCode,
    ImginspectError,
    InvalidReferenceError,
    MissingPlatformError,
    NetworkError,
    NotFoundError,
    PlatformNotFoundError,
    RateLimitedError,
    RegistryError,
    UsageError,
)

if TYPE_CHECKING:
    from imginspect.batch import (
        InspectRequest,
        Outcome,
        batch_exit_code,
        inspect_many,
        inspect_one,
    )
    from imginspect.checks import check_expected_digest, check_required, select_platform
    from imginspect.diff import ImageDiff, ImagesDifferError, compare
    from imginspect.imageconfig import (
        Healthcheck,
        HistoryEntry,
        ImageConfig,
        ImageDetails,
        LayerStep,
        decode_image_config,
    )
    from imginspect.inspector import Inspector
    from imginspect.output import OutputMode, TableStyle, render, template_data
    from imginspect.platforms import parse_platform
    from imginspect.referrers import (
        MissingEvidenceError,
        SupplyChainReport,
        check_evidence,
        supply_chain,
    )
    from imginspect.result import InspectResult
    from imginspect.tags import iter_tags, sort_by_version, tag_digests, tag_filter
    from imginspect.target import parse_target
    from imginspect.template import Template, TemplateError

__version__ = "0.1.0"

#: Public names loaded on first use, by module.
_LAZY = {
    "InspectRequest": "imginspect.batch",
    "Outcome": "imginspect.batch",
    "batch_exit_code": "imginspect.batch",
    "inspect_many": "imginspect.batch",
    "inspect_one": "imginspect.batch",
    "check_expected_digest": "imginspect.checks",
    "check_required": "imginspect.checks",
    "select_platform": "imginspect.checks",
    "Inspector": "imginspect.inspector",
    "Healthcheck": "imginspect.imageconfig",
    "HistoryEntry": "imginspect.imageconfig",
    "ImageConfig": "imginspect.imageconfig",
    "ImageDetails": "imginspect.imageconfig",
    "LayerStep": "imginspect.imageconfig",
    "decode_image_config": "imginspect.imageconfig",
    "Template": "imginspect.template",
    "TemplateError": "imginspect.template",
    "template_data": "imginspect.output",
    "ImageDiff": "imginspect.diff",
    "ImagesDifferError": "imginspect.diff",
    "compare": "imginspect.diff",
    "MissingEvidenceError": "imginspect.referrers",
    "SupplyChainReport": "imginspect.referrers",
    "check_evidence": "imginspect.referrers",
    "supply_chain": "imginspect.referrers",
    "iter_tags": "imginspect.tags",
    "sort_by_version": "imginspect.tags",
    "tag_digests": "imginspect.tags",
    "tag_filter": "imginspect.tags",
    "OutputMode": "imginspect.output",
    "TableStyle": "imginspect.output",
    "render": "imginspect.output",
    "parse_platform": "imginspect.platforms",
    "InspectResult": "imginspect.result",
    "parse_target": "imginspect.target",
}

__all__ = [
    "AuthError",
    "DigestDriftError",
    "ExitCode",
    "Healthcheck",
    "HistoryEntry",
    "ImageConfig",
    "ImageDetails",
    "ImageDiff",
    "ImagesDifferError",
    "ImginspectError",
    "InspectRequest",
    "InspectResult",
    "Inspector",
    "InvalidReferenceError",
    "LayerStep",
    "MissingEvidenceError",
    "MissingPlatformError",
    "NetworkError",
    "NotFoundError",
    "Outcome",
    "OutputMode",
    "PlatformNotFoundError",
    "RateLimitedError",
    "RegistryError",
    "SupplyChainReport",
    "TableStyle",
    "Template",
    "TemplateError",
    "UsageError",
    "__version__",
    "batch_exit_code",
    "check_evidence",
    "check_expected_digest",
    "check_required",
    "compare",
    "decode_image_config",
    "inspect",
    "inspect_many",
    "inspect_one",
    "iter_tags",
    "parse_platform",
    "parse_target",
    "render",
    "select_platform",
    "sort_by_version",
    "supply_chain",
    "tag_digests",
    "tag_filter",
    "template_data",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'imginspect' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def inspect(
    reference: str, *, platform: str | None = None, timeout: float | None = 60.0
) -> InspectResult:
    """Inspect one reference (``oci:DIR`` and ``oci-archive:FILE`` included) with the
    user's Docker/podman credentials and registry settings, as ``imginspect --json`` does;
    with ``platform`` (``os/arch[/variant]``), the image selected for it. Raises the typed
    :class:`ImginspectError` subclasses; use an :class:`Inspector` for many references."""
    from imginspect.batch import InspectRequest, inspect_one
    from imginspect.credentials import CredentialResolver
    from imginspect.hosts import HostResolver
    from imginspect.inspector import Inspector
    from imginspect.output import OutputMode
    from imginspect.platforms import parse_platform
    from imginspect.settings import RegistrySettings
    from imginspect.transport import remaining_time

    request = InspectRequest(
        mode=OutputMode.JSON,
        platform=None if platform is None else parse_platform(platform),
        timeout=timeout,
    )
    credentials = CredentialResolver(time_left=remaining_time)
    hosts = HostResolver(settings=RegistrySettings(), credentials=credentials.lookup)
    with Inspector(hosts) as inspector:
        outcome = inspect_one(inspector, reference, request)
    if outcome.error is not None:
        raise outcome.error
    assert outcome.result is not None
    return outcome.result
