"""Inspecting references as the CLI does, as a library: one reference with its checks
(:func:`inspect_one`), many in order and concurrently (:func:`inspect_many`), and the exit
code of a batch (:func:`batch_exit_code`).

No click, no rich; httpx only through :mod:`imginspect.transport`, imported when a
reference is inspected.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Generic, TypeVar

from imginspect._record import Record, record
from imginspect.checks import check_expected_digest, check_required, select_platform
from imginspect.errors import AuthError, ExitCode, ImginspectError, UsageError
from imginspect.output import OutputMode

if TYPE_CHECKING:
    from imginspect.inspector import Inspector
    from imginspect.manifest import Child, Platform
    from imginspect.result import InspectResult
    from imginspect.template import Template

T = TypeVar("T")
R = TypeVar("R")

#: The exit codes of check verdicts (``--require``, ``--expect-digest``): the reference was
#: inspected, and found wanting. Every other non-zero code is an operational failure.
CHECK_VERDICTS = frozenset({int(ExitCode.MISSING_PLATFORM), int(ExitCode.DIGEST_DRIFT)})

#: The outputs that show image configs (``--image-config``).
IMAGE_CONFIG_MODES = frozenset({OutputMode.TABLE, OutputMode.EXTENDED_JSON_V2, OutputMode.TEMPLATE})


@record
class InspectRequest(Record):
    """What to do for each reference: what the output needs, and the checks."""

    mode: OutputMode = OutputMode.TABLE
    #: ``--platform``: report the image selected for this platform from an index
    platform: Platform | None = None
    #: ``--require``: these platforms must be present (verdict: exit 7)
    require: Sequence[Platform] = ()
    #: ``--require-only``: and no other
    require_only: bool = False
    #: ``--expect-digest`` (with ``platform``: the selected image's; verdict: exit 8)
    expect_digest: str | None = None
    #: ``--sizes``: compressed size and layer count per image (table and extended JSON)
    sizes: bool = False
    #: requests in flight for ``sizes``
    concurrency: int = 8
    #: seconds for everything one reference needs (None: no deadline)
    timeout: float | None = None
    #: called once per image whose size was fetched (a progress line)
    on_size: Callable[[], None] | None = None
    #: for an authentication failure: where credentials were looked for, if that helps
    credentials_hint: Callable[[str], str | None] | None = None
    #: ``--image-config``: each image's configuration, layers and history
    #: (:meth:`~imginspect.inspector.Inspector.image_details`, within ``timeout`` too);
    #: for the table, extended-json-v2 and templates
    image_config: bool = False
    #: ``--with-attestations``: with the image configs, the attestation manifests' too
    attestations: bool = False
    #: the template of :attr:`OutputMode.TEMPLATE` (``--format '{{...}}'``)
    template: Template | None = None

    def __post_init__(self) -> None:
        if self.require_only and not self.require:
            raise UsageError("--require-only needs --require")
        if (self.mode is OutputMode.TEMPLATE) != (self.template is not None):
            raise UsageError("a template goes with OutputMode.TEMPLATE, and only with it")
        if self.attestations and not self.image_details:
            raise UsageError("--with-attestations needs --image-config")
        if self.image_details and self.mode not in IMAGE_CONFIG_MODES:
            raise UsageError(
                "--image-config shows in the table, --format extended-json-v2 and templates",
                hint="--json, --compat docker, --digest, --raw and extended-json (v1) keep their "
                "documented shape",
            )
        if self.expect_digest is not None:
            from imginspect.digest import is_valid_digest

            if not is_valid_digest(self.expect_digest):
                raise UsageError(f"--expect-digest {self.expect_digest!r} is not a valid digest")
        if self.concurrency < 1:
            raise UsageError("the concurrency must be at least 1")

    @property
    def image_details(self) -> bool:
        """Whether image configs are read: ``image_config``, or a template that uses them."""
        if self.image_config:
            return True
        if self.template is None:
            return False
        from imginspect.output import TEMPLATE_CONFIG_FIELDS

        return bool(self.template.uses() & TEMPLATE_CONFIG_FIELDS)


@record
class Outcome(Record):
    """What one reference gave: an inspection, a digest, and/or an error.

    ``error`` is an operational failure (exit 1-6; then there is no result) or a check
    verdict (exit 7 or 8: the result and digest are there too, as the CLI prints them)."""

    given: str
    result: InspectResult | None = None
    digest: str | None = None
    error: ImginspectError | None = None
    #: the table: entries of nested indexes, by digest
    nested: Mapping[str, tuple[Child, ...]] | None = None

    @property
    def exit_code(self) -> int:
        return int(self.error.exit_code) if self.error else 0


def inspect_one(inspector: Inspector, given: str, request: InspectRequest) -> Outcome:
    """Inspect the target ``given`` (a reference, ``oci:DIR`` or ``oci-archive:FILE``)
    within ``request.timeout`` (image configs included), and apply the checks. Never
    raises ImginspectError: the failure is the outcome's ``error``."""
    from imginspect.transport import deadline

    try:
        with deadline(request.timeout):
            return _inspect(inspector, given, request)
    except ImginspectError as error:
        if (
            isinstance(error, AuthError)
            and error.credentials_may_help
            and request.credentials_hint is not None
        ):
            where = request.credentials_hint(given)
            if where is not None:
                error.hint = f"{error.hint}; {where}" if error.hint else where
        return Outcome(given, error=error)


def _inspect(inspector: Inspector, given: str, request: InspectRequest) -> Outcome:
    from imginspect.target import parse_target

    ref = parse_target(given)
    mode = request.mode
    compat_docker = mode is OutputMode.DOCKER
    needs_document = bool(request.require) or request.platform is not None
    if mode is OutputMode.DIGEST and not needs_document:
        digest = inspector.resolve_digest(ref)
        drift = check_expected_digest(digest, request.expect_digest, given)
        return Outcome(given, digest=digest, error=drift)
    result = inspector.inspect(
        ref,
        compat_docker=compat_docker,
        # a single image's platform lives in its config: --platform/--require need it
        read_config=mode.reads_config or needs_document,
    )
    images: list[Child] | None = None
    tree = None
    nested = None
    if result.is_index and (mode is OutputMode.TABLE or needs_document or request.sizes):
        # nested indexes: the table shows their entries; --require, --platform and --sizes
        # count their images (no request unless there are nested indexes)
        tree = inspector.index_tree(result)
        if mode is OutputMode.TABLE:
            nested = tree
    # A failed --require is a verdict on a successful inspection: the output still follows.
    verdict: ImginspectError | None = None
    if request.require:
        images = inspector.image_children(result, tree) if result.is_index else None
        verdict = check_required(
            result, images, request.require, only=request.require_only, given=given
        )
    if request.platform is not None:
        if images is None and result.is_index:
            images = inspector.image_children(result, tree)
        result = select_platform(
            inspector,
            result,
            request.platform,
            images,
            read_config=mode.reads_config,
            compat_docker=compat_docker,
        )
        nested = None
        images = None
    if request.sizes and mode not in (OutputMode.DIGEST, OutputMode.RAW, OutputMode.DOCKER):
        if images is None:
            images = inspector.image_children(result, tree) if result.is_index else []
        sizes = inspector.image_sizes(
            result, images, concurrency=request.concurrency, on_done=request.on_size
        )
        result = replace(result, sizes=sizes)
    if request.image_details:
        result = inspector.image_details(
            result,
            attestations=request.attestations,
            concurrency=request.concurrency,
            # the index's tree when it was read (a selected platform's image needs none)
            tree=tree if request.platform is None else None,
        )
    digest = result.descriptor.digest
    if verdict is None:
        verdict = check_expected_digest(digest, request.expect_digest, given)
    return Outcome(given, result=result, digest=digest, error=verdict, nested=nested)


def inspect_many(
    inspector: Inspector,
    references: Iterable[str],
    request: InspectRequest,
    *,
    concurrency: int = 8,
) -> Iterator[Outcome]:
    """:func:`inspect_one` for each reference, ``concurrency`` at a time, yielded in input
    order as soon as each is ready (a batch of any length streams; ``references`` is read
    lazily and only a bounded window of outcomes is held)."""
    return ordered_map(
        lambda given: inspect_one(inspector, given, request), references, workers=concurrency
    )


def ordered_map(func: Callable[[T], R], items: Iterable[T], *, workers: int) -> Iterator[R]:
    """``map`` over a thread pool, yielding in input order with at most ``2 * workers``
    items in flight, so a batch of any length streams its results and holds only a few in
    memory. ``workers=1`` runs in the calling thread. An exception ``func`` raises for an
    item is raised where that item's result would be yielded. Closing the iterator early
    drops the items not yet started; those running finish in their (daemon) threads."""
    if workers <= 1:
        yield from map(func, items)
        return
    pool = _Pool(func, workers)
    window: deque[_Job[T, R]] = deque()
    try:
        for item in items:
            window.append(pool.submit(item))
            if len(window) >= workers * 2:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()
    finally:
        pool.stop()


class _Job(Generic[T, R]):
    """One item of :func:`ordered_map`: ``done`` is held until its result is set."""

    __slots__ = ("done", "error", "item", "value")

    def __init__(self, item: T) -> None:
        self.item = item
        self.value: R | None = None
        self.error: BaseException | None = None
        self.done = threading.Lock()
        self.done.acquire()

    def result(self) -> R:
        self.done.acquire()  # released once, by the worker that ran it
        self.done.release()
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]  # set, as error is None


class _Pool(Generic[T, R]):
    """Up to ``workers`` daemon threads taking jobs first in, first out.

    What ``concurrent.futures.ThreadPoolExecutor`` did here, without importing it: that
    module loads ``logging`` (and ``traceback``, ``string``...), about 5 ms of every batch's
    start-up. Threads are started as jobs arrive (a batch of three references starts
    three), are daemons (a hung reference never holds up the process's exit: each is bounded
    by its own deadline anyway), and are named ``inspect_N`` as the executor named them.
    """

    def __init__(self, func: Callable[[T], R], workers: int) -> None:
        self._func = func
        self._workers = workers
        self._jobs: deque[_Job[T, R]] = deque()
        self._ready = threading.Semaphore(0)  # one release per job queued, and per stop
        self._threads = 0
        self._stopped = False

    def submit(self, item: T) -> _Job[T, R]:
        job: _Job[T, R] = _Job(item)
        self._jobs.append(job)
        self._ready.release()
        if self._threads < self._workers:
            thread = threading.Thread(
                target=self._work, name=f"inspect_{self._threads}", daemon=True
            )
            self._threads += 1
            thread.start()
        return job

    def stop(self) -> None:
        """Run no more jobs: those not started are dropped; idle threads end."""
        self._stopped = True
        self._jobs.clear()
        self._ready.release(self._threads)

    def _work(self) -> None:
        while True:
            self._ready.acquire()
            if self._stopped:
                return
            try:
                job = self._jobs.popleft()
            except IndexError:  # stop() cleared the queue under us
                return
            try:
                job.value = self._func(job.item)
            except BaseException as error:  # raised in the consumer, by result()
                job.error = error
            finally:
                job.done.release()
            del job  # its result belongs to the consumer: do not keep it alive here


def batch_exit_code(codes: Iterable[int]) -> int:
    """The exit code of a batch, from its references' codes (README, "Exit codes"): an
    operational failure (1-6) is never masked by a check verdict (7, 8) of another
    reference. The highest operational code if there is one; else the highest verdict (8,
    the digest moved, over 7, a platform missing); else 0."""
    operational = verdict = 0
    for code in codes:
        if code in CHECK_VERDICTS:
            verdict = max(verdict, code)
        elif code:
            operational = max(operational, code)
    return operational or verdict
