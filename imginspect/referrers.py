"""Supply-chain evidence attached to an image: referrers, cosign tags, BuildKit attestations.

For each subject (an index, and each image platform of it) this finds, without reading any
layer or signature payload:

* OCI 1.1 referrers: ``GET /v2/<name>/referrers/<digest>`` (``artifactType`` filtered by the
  registry when it says so in ``OCI-Filters-Applied``, else here), or on registries without
  the API (404) the referrers tag schema, an index tagged ``sha256-<hex>``;
* cosign's legacy tags ``sha256-<hex>.sig`` / ``.att`` / ``.sbom``;
* BuildKit attestation manifests inside the index (``vnd.docker.reference.type:
  attestation-manifest``): each manifest is read (not its layers) for the
  ``in-toto.io/predicate-type`` annotations of its layers.

Each piece of evidence gets kinds (:data:`KINDS`) from its artifact type, predicate types
and cosign tag suffix; :func:`check_evidence` is the CI verdict (exit 7) for
``--require-evidence``. Presence only: nothing here verifies a signature or an attestation.

No click, rich or httpx: requests go through :class:`~imginspect.sources.Source` objects.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import field
from typing import TYPE_CHECKING

from imginspect import platforms
from imginspect._record import Record, record
from imginspect.digest import compute_digest
from imginspect.errors import (
    ImginspectError,
    MalformedDocumentError,
    MissingPlatformError,
    NotFoundError,
    UnsupportedManifestError,
    UsageError,
)
from imginspect.manifest import ChildKind, Descriptor, ImageManifest, Index, decode_document
from imginspect.mediatypes import OCI_INDEX

if TYPE_CHECKING:
    from imginspect.inspector import Inspector
    from imginspect.manifest import Platform
    from imginspect.result import InspectResult
    from imginspect.sources import ReferrersPage, Source
    from imginspect.target import Target

SBOM = "sbom"
PROVENANCE = "provenance"
SIGNATURE = "signature"
ATTESTATION = "attestation"  # an in-toto attestation of another predicate type
OTHER = "other"
#: the kinds ``--require-evidence`` accepts
KINDS = (SBOM, PROVENANCE, SIGNATURE, ATTESTATION)

# how a piece of evidence was found
FOUND_API = "referrers API"
FOUND_TAG_SCHEMA = "referrers tag schema"
FOUND_COSIGN_TAG = "cosign tag"
FOUND_BUILDKIT = "attestation manifest"

PREDICATE_ANNOTATION = "in-toto.io/predicate-type"
#: cosign writes the predicate type of an ``.att`` layer (a DSSE envelope) here
COSIGN_PREDICATE_ANNOTATION = "predicateType"
SIGSTORE_BUNDLE_PREDICATE = "dev.sigstore.bundle.predicateType"
CREATED_ANNOTATION = "org.opencontainers.image.created"

SIGNATURE_TYPES = frozenset(
    {
        "application/vnd.dev.cosign.artifact.sig.v1+json",
        "application/vnd.dev.cosign.simplesigning.v1+json",
        "application/vnd.cncf.notary.signature",
        "application/vnd.dev.sigstore.bundle.v0.3+json",
        "application/vnd.dev.sigstore.bundle+json;version=0.3",
    }
)
SBOM_TYPES = frozenset(
    {
        "application/spdx+json",
        "text/spdx",
        "application/vnd.cyclonedx+json",
        "application/vnd.cyclonedx+xml",
        "application/vnd.cyclonedx",
        "application/vnd.syft+json",
        "application/vnd.dev.cosign.artifact.sbom.v1+json",
    }
)
#: artifact types whose manifest is read to learn its predicate types
IN_TOTO_TYPES = frozenset(
    {
        "application/vnd.in-toto+json",
        "application/vnd.dsse.envelope.v1+json",
        "application/vnd.dev.cosign.artifact.att.v1+json",
    }
)
SBOM_PREDICATES = ("https://spdx.dev/Document", "https://cyclonedx.org/bom")
PROVENANCE_PREDICATES = ("https://slsa.dev/provenance/",)
COSIGN_SUFFIXES = {".sig": SIGNATURE, ".att": ATTESTATION, ".sbom": SBOM}
#: referrer manifests read for their predicate types, per subject at most
MAX_MANIFESTS_READ = 64
#: referrers listed per subject at most (after filtering)
MAX_REFERRERS = 1000


def predicate_kind(predicate_type: str) -> str:
    """``sbom`` (SPDX, CycloneDX), ``provenance`` (SLSA v0.1/v0.2/v1) or ``attestation``."""
    if predicate_type.startswith(SBOM_PREDICATES):
        return SBOM
    if predicate_type.startswith(PROVENANCE_PREDICATES):
        return PROVENANCE
    return ATTESTATION


def classify(
    artifact_type: str | None,
    predicate_types: Sequence[str] = (),
    *,
    cosign_suffix: str | None = None,
) -> tuple[str, ...]:
    """The evidence kinds of a referrer, from its artifact type, its predicate types (when
    known) and, for a cosign legacy tag, the tag's suffix. Pure."""
    kinds: list[str] = [predicate_kind(p) for p in predicate_types]
    if cosign_suffix is not None and not kinds:
        kinds.append(COSIGN_SUFFIXES[cosign_suffix])
    if artifact_type in SIGNATURE_TYPES and not predicate_types:
        kinds.append(SIGNATURE)
    elif artifact_type in SBOM_TYPES:
        kinds.append(SBOM)
    elif artifact_type in IN_TOTO_TYPES and not kinds:
        kinds.append(ATTESTATION)
    return tuple(dict.fromkeys(kinds)) or (OTHER,)


@record
class Evidence(Record):
    """One referrer, cosign tag or attestation manifest of a subject."""

    found_by: str
    media_type: str
    digest: str
    size: int
    artifact_type: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    predicate_types: tuple[str, ...] = ()
    #: the cosign legacy tag it was found under
    tag: str | None = None
    kinds: tuple[str, ...] = (OTHER,)

    @property
    def created(self) -> str | None:
        return self.annotations.get(CREATED_ANNOTATION)


@record
class SubjectEvidence(Record):
    """What refers to one subject: the index itself (``platform`` None) or one image."""

    digest: str
    platform: Platform | None
    evidence: tuple[Evidence, ...]
    #: how referrers were listed: the referrers API, or the tag schema (API absent)
    method: str

    @property
    def label(self) -> str:
        return "index" if self.platform is None else platforms.format_platform(self.platform)

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(k for e in self.evidence for k in e.kinds)


@record
class SupplyChainReport(Record):
    """The evidence of a target and, for an index, of each image platform."""

    result: InspectResult
    subjects: tuple[SubjectEvidence, ...]

    def kinds_for(self, subject: SubjectEvidence) -> frozenset[str]:
        """The kinds covering ``subject``: its own, plus the index's (evidence about an index,
        such as a signature of it, covers every image of it)."""
        kinds = set(subject.kinds)
        for other in self.subjects:
            if other.platform is None and other is not subject:
                kinds |= other.kinds
        return frozenset(kinds)

    def images(self) -> tuple[SubjectEvidence, ...]:
        """The subjects the requirements apply to: each image platform (or the single image)."""
        images = tuple(s for s in self.subjects if s.platform is not None)
        return images or self.subjects


def parse_required(text: str) -> tuple[str, ...]:
    """``--require-evidence sbom,provenance,signature``: the kinds, validated."""
    kinds = tuple(dict.fromkeys(k.strip().lower() for k in text.split(",") if k.strip()))
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise UsageError(
            f"unknown evidence kind {', '.join(unknown) or repr(text)}",
            hint=f"--require-evidence takes a comma-separated list of: {', '.join(KINDS)}",
        )
    return kinds


class MissingEvidenceError(MissingPlatformError):
    """``--require-evidence``: a platform lacks a required kind of evidence (exit 7)."""

    code = "missing-evidence"


def check_evidence(
    report: SupplyChainReport, required: Iterable[str], *, given: str | None = None
) -> MissingEvidenceError | None:
    """The verdict (exit 7) naming each platform's missing kinds; None when all are there."""
    wanted = tuple(required)
    problems = []
    for subject in report.images():
        have = report.kinds_for(subject)
        missing = [k for k in wanted if k not in have]
        if missing:
            label = subject.label if subject.platform is not None else "image"
            problems.append(f"{label} has no {', '.join(missing)}")
    if not problems:
        return None
    name = given if given is not None else str(report.result.reference)
    return MissingEvidenceError(
        f"{name}: {'; '.join(problems)}",
        hint="presence only is checked; verify signatures with cosign or notation",
    )


# --------------------------------------------------------------------------- discovery


def referrers_tag(digest: str) -> str:
    """The tag of the referrers tag schema: ``sha256-<hex>``, the algorithm cut to 32
    characters and the encoded part to 64 (distribution spec, "Referrers Tag Schema").

    The spec also replaces characters a tag cannot hold with ``-``: digests here are
    validated (registered algorithms, lowercase hex), which have none."""
    # Untruncated, a sha512 digest made a tag of 135 characters, more than a tag may have
    # (128): no registry holds it (distribution answers 404), and the index a spec client
    # (regclient) pushed under the truncated tag was never found.
    algorithm, _, encoded = digest.partition(":")
    return f"{algorithm[:32]}-{encoded[:64]}"


def _cosign_tag(digest: str, suffix: str) -> str:
    """cosign's legacy tag: ``<algorithm>-<hex><suffix>``, the digest whole (not cut as the
    referrers tag is)."""
    return digest.replace(":", "-", 1) + suffix


def _descriptors_of_index(
    raw: bytes, content_type: str | None, what: str
) -> tuple[Descriptor, ...]:
    document = decode_document(raw, content_type)
    if not isinstance(document, Index):
        raise MalformedDocumentError(f"{what} is not an image index")
    return document.manifests


def _predicates_of(manifest: ImageManifest) -> tuple[str, ...]:
    found: list[str] = []
    for layer in manifest.layers:
        annotations = layer.annotations or {}
        for key in (PREDICATE_ANNOTATION, COSIGN_PREDICATE_ANNOTATION):
            value = annotations.get(key)
            if value:
                found.append(value)
    return tuple(dict.fromkeys(found))


class _Reader:
    """Reads referrer manifests of one repository, at most :data:`MAX_MANIFESTS_READ`."""

    def __init__(self, source: Source, repository: str) -> None:
        self.source = source
        self.repository = repository
        self.budget = MAX_MANIFESTS_READ

    def predicates(self, digest: str) -> tuple[str, ...]:
        if self.budget <= 0:
            return ()
        self.budget -= 1
        fetched = self.source.get_manifest(self.repository, digest)
        document = decode_document(fetched.raw, fetched.content_type)
        return _predicates_of(document) if isinstance(document, ImageManifest) else ()


def _evidence(descriptor: Descriptor, found_by: str, reader: _Reader) -> Evidence:
    annotations = dict(descriptor.annotations or {})
    predicates: tuple[str, ...] = ()
    known = annotations.get(PREDICATE_ANNOTATION) or annotations.get(SIGSTORE_BUNDLE_PREDICATE)
    if known:
        predicates = (known,)
    elif descriptor.artifact_type in IN_TOTO_TYPES:
        predicates = reader.predicates(descriptor.digest)
    return Evidence(
        found_by=found_by,
        media_type=descriptor.media_type,
        digest=descriptor.digest,
        size=descriptor.size,
        artifact_type=descriptor.artifact_type,
        annotations=annotations,
        predicate_types=predicates,
        kinds=classify(descriptor.artifact_type, predicates),
    )


def discover(
    source: Source,
    repository: str,
    digest: str,
    *,
    artifact_type: str | None = None,
    cosign: bool = True,
) -> tuple[str, tuple[Evidence, ...]]:
    """``(method, evidence)`` of ``digest``: its referrers (API, else the tag schema), then
    its cosign legacy tags. ``artifact_type`` keeps only referrers of that type (cosign tags
    are kept when their kind's usual artifact type matches; with a filter they are skipped
    unless ``cosign`` is asked for explicitly by passing ``artifact_type=None``)."""
    reader = _Reader(source, repository)
    found: list[Evidence] = []
    pages = source.get_referrers(repository, digest, artifact_type=artifact_type)
    if pages and not _is_index(pages[0]):
        # A 200 that is no image index (a catch-all page, the login page a redirect ended
        # on: oras-go#633) says the API is not there, as a 404 does: go-containerregistry
        # and oras-go fall back to the tag schema. It failed the reference.
        pages = None
    descriptors: list[Descriptor] = []
    if pages is not None:
        method = FOUND_API
        for page in pages:
            entries = _descriptors_of_index(page.raw, page.content_type, f"referrers of {digest}")
            if artifact_type is not None and "artifactType" not in page.filters_applied:
                entries = tuple(d for d in entries if d.artifact_type == artifact_type)
            descriptors.extend(entries)
    else:
        method = FOUND_TAG_SCHEMA
        entries = _tag_schema_index(source, repository, digest)
        if artifact_type is not None:
            entries = tuple(d for d in entries if d.artifact_type == artifact_type)
        descriptors.extend(entries)
    # A referrer is one manifest: listed again (API pages that repeat themselves behind
    # Links that never do, read up to the source's bound; a tag-schema index two clients
    # appended to), it is still one piece of evidence, not one per listing.
    unique: dict[str, Descriptor] = {}
    for descriptor in descriptors:
        unique.setdefault(descriptor.digest, descriptor)
    found.extend(_evidence(d, method, reader) for d in list(unique.values())[:MAX_REFERRERS])
    if cosign and artifact_type is None:
        found.extend(_cosign_tags(source, repository, digest))
    return method, tuple(found)


def _is_index(page: ReferrersPage) -> bool:
    """Whether a referrers API answer is an image index: said so by its Content-Type (then
    a broken body is the registry's error to report), or by its body."""
    if (page.content_type or "").partition(";")[0].strip().lower() == OCI_INDEX:
        return True
    try:
        return isinstance(decode_document(page.raw, page.content_type), Index)
    except (MalformedDocumentError, UnsupportedManifestError):
        return False


def _tag_schema_index(source: Source, repository: str, digest: str) -> tuple[Descriptor, ...]:
    """The descriptors of the referrers tag-schema index of ``digest``; none when the tag
    is missing, or holds no image index, or holds the subject itself."""
    tag = referrers_tag(digest)
    try:
        fetched = source.get_manifest(repository, tag)
    except NotFoundError:
        return ()
    # The spec: when the tag "does not return a valid image index, the client SHOULD assume
    # there are no referrers" (this raised MalformedDocumentError, failing the reference).
    # GitLab's registry answers the tag sha256-<hex> with the manifest sha256:<hex>, the
    # subject itself (oras-go#1396): an index's own images were listed as its referrers,
    # and each image of it failed the run. A manifest cannot name itself as its subject.
    if compute_digest(fetched.raw, digest.partition(":")[0]) == digest:
        return ()
    try:
        return _descriptors_of_index(fetched.raw, fetched.content_type, f"referrers tag {tag}")
    except (MalformedDocumentError, UnsupportedManifestError):
        return ()


def _cosign_tags(source: Source, repository: str, digest: str) -> list[Evidence]:
    found = []
    for suffix in COSIGN_SUFFIXES:
        tag = _cosign_tag(digest, suffix)
        try:
            fetched = source.get_manifest(repository, tag)
        except NotFoundError:
            continue
        document = decode_document(fetched.raw, fetched.content_type)
        predicates = _predicates_of(document) if isinstance(document, ImageManifest) else ()
        found.append(
            Evidence(
                found_by=FOUND_COSIGN_TAG,
                media_type=document.media_type,
                digest=fetched.digest,
                size=fetched.size,
                artifact_type=document.artifact_type,
                annotations=dict(document.annotations or {}),
                predicate_types=predicates,
                tag=tag,
                kinds=classify(None, predicates, cosign_suffix=suffix),
            )
        )
    return found


def buildkit_attestations(
    source: Source, repository: str, result: InspectResult
) -> dict[str, list[Evidence]]:
    """The attestation manifests of an index, by the digest of the image each attests; each
    manifest is read (not its layers) for its predicate types."""
    found: dict[str, list[Evidence]] = {}
    for child in result.children:
        if child.kind is not ChildKind.ATTESTATION or child.subject_digest is None:
            continue
        descriptor = child.descriptor
        fetched = source.get_manifest(repository, descriptor.digest)
        document = decode_document(fetched.raw, fetched.content_type)
        predicates = _predicates_of(document) if isinstance(document, ImageManifest) else ()
        found.setdefault(child.subject_digest, []).append(
            Evidence(
                found_by=FOUND_BUILDKIT,
                media_type=descriptor.media_type,
                digest=descriptor.digest,
                size=descriptor.size,
                artifact_type=descriptor.artifact_type,
                annotations=dict(descriptor.annotations or {}),
                predicate_types=predicates,
                kinds=classify(None, predicates) if predicates else (ATTESTATION,),
            )
        )
    return found


def supply_chain(
    inspector: Inspector,
    target: Target,
    *,
    platform: Platform | None = None,
    artifact_type: str | None = None,
    workers: int = 4,
) -> SupplyChainReport:
    """The evidence of ``target`` and, for an index, of each image platform of it (only those
    matching ``platform`` when given), requests for the subjects made ``workers`` at a time."""
    result = inspector.inspect(target)
    source = inspector.source_for(target)
    repository = target.path
    subjects: list[tuple[str, Platform | None]] = [
        (result.descriptor.digest, None if result.is_index else result.config_platform)
    ]
    attestations: dict[str, list[Evidence]] = {}
    if result.is_index:
        for child in inspector.image_children(result):
            child_platform = child.descriptor.platform
            if child_platform is None:
                continue
            if platform is not None and not platforms.matches(platform, child_platform):
                continue
            subjects.append((child.descriptor.digest, child_platform))
        if artifact_type is None:
            attestations = buildkit_attestations(source, repository, result)
        if platform is not None and len(subjects) == 1:
            from imginspect.errors import PlatformNotFoundError

            raise PlatformNotFoundError(
                f"{target} has no {platforms.format_platform(platform)} image"
            )

    def one(subject: tuple[str, Platform | None]) -> SubjectEvidence:
        digest, subject_platform = subject
        method, evidence = discover(source, repository, digest, artifact_type=artifact_type)
        extra = tuple(attestations.get(digest, ()))
        return SubjectEvidence(digest, subject_platform, extra + evidence, method)

    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="imginspect-referrers") as pool:
        futures = [pool.submit(contextvars.copy_context().run, one, s) for s in subjects]
        done = tuple(f.result() for f in futures)
    return SupplyChainReport(result, done)


@record
class ReferrersQuery(Record):
    """What `imginspect referrers` reports for each reference, and the evidence it requires
    (None: no check)."""

    platform: Platform | None = None
    artifact_type: str | None = None
    require: tuple[str, ...] | None = None


@record
class ReferrersOutcome(Record):
    """What one reference of `imginspect referrers` gave: a report, and/or an error (an
    operational failure, 1-6, without a report; or the ``--require-evidence`` verdict, 7,
    with the report it judged)."""

    given: str
    report: SupplyChainReport | None = None
    error: ImginspectError | None = None

    @property
    def exit_code(self) -> int:
        return int(self.error.exit_code) if self.error else 0


def referrers_one(inspector: Inspector, given: str, query: ReferrersQuery) -> ReferrersOutcome:
    """:func:`supply_chain` of the target ``given`` (a reference or a layout) and the verdict
    of ``query.require``. Never raises ImginspectError: the failure is the outcome's."""
    from imginspect.target import parse_target

    try:
        report = supply_chain(
            inspector,
            parse_target(given),
            platform=query.platform,
            artifact_type=query.artifact_type,
        )
    except ImginspectError as error:
        return ReferrersOutcome(given, error=error)
    verdict = None
    if query.require is not None:
        verdict = check_evidence(report, query.require, given=given)
    return ReferrersOutcome(given, report, verdict)


def referrers_many(
    inspector: Inspector,
    references: Iterable[str],
    query: ReferrersQuery,
    *,
    concurrency: int = 4,
) -> Iterator[ReferrersOutcome]:
    """:func:`referrers_one` for each reference, ``concurrency`` at a time, yielded in input
    order as each is ready (``references`` read lazily; a bounded window held, as
    :func:`~imginspect.batch.inspect_many` does). The batch's exit code is
    :func:`~imginspect.batch.batch_exit_code` of the outcomes'."""
    from imginspect.batch import ordered_map

    def one(given: str) -> ReferrersOutcome:
        return contextvars.copy_context().run(referrers_one, inspector, given, query)

    return ordered_map(one, references, workers=concurrency)
