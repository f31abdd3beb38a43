"""imginspect.batch: the exit precedence of a batch, and the ordered, bounded, streaming
runner behind --concurrency."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator

import pytest

from imginspect.batch import batch_exit_code, ordered_map
from imginspect.errors import ExitCode
from tests.support.cli import run_imginspect
from tests.support.registry import Registry

# (codes of the references, exit code of the batch)
PRECEDENCE = [
    ([], 0),
    ([0, 0], 0),
    ([7], 7),
    ([8], 8),
    ([7, 8], 8),  # two verdicts: the highest
    ([8, 7, 0], 8),
    ([7, 5], 5),  # a missing platform never hides a network failure (the maximum was 7)
    ([5, 7], 5),
    ([8, 1], 1),  # nor does a moved digest hide a registry failure
    ([4, 8, 7], 4),
    ([6, 7, 8, 3], 6),  # among failures: the highest
    ([2, 4], 4),
    ([1, 2, 3, 4, 5, 6, 7, 8], 6),
]


@pytest.mark.parametrize(("codes", "expected"), PRECEDENCE)
def test_exit_precedence(codes: list[int], expected: int) -> None:
    assert batch_exit_code(codes) == expected
    assert batch_exit_code(iter(codes)) == expected  # any iterable, read once
    assert batch_exit_code(ExitCode(c) for c in codes) == expected


def test_order_is_kept_when_later_items_finish_first() -> None:
    finished: list[int] = []
    gates = {n: threading.Event() for n in range(6)}

    def work(n: int) -> int:
        # item n waits until item n+1 has finished: completion order is 5, 4, ..., 0
        if n < 5:
            assert gates[n + 1].wait(10)
        finished.append(n)
        gates[n].set()
        return n * 10

    assert list(ordered_map(work, range(6), workers=6)) == [0, 10, 20, 30, 40, 50]
    assert finished == [5, 4, 3, 2, 1, 0]


def test_window_is_bounded_and_results_stream() -> None:
    """An endless input still yields results, and only about 2 x workers items are read
    ahead of what was consumed: memory does not grow with the batch."""
    pulled = 0

    def endless() -> Iterator[int]:
        nonlocal pulled
        for n in itertools.count():
            pulled += 1
            yield n

    results = ordered_map(lambda n: n + 1, endless(), workers=3)
    assert list(itertools.islice(results, 20)) == list(range(1, 21))
    assert pulled <= 20 + 2 * 3
    results.close()  # type: ignore[attr-defined]


def test_an_error_is_raised_at_its_item_and_the_others_still_run() -> None:
    def work(n: int) -> int:
        if n == 2:
            raise ValueError("two")
        return n

    results = ordered_map(work, range(6), workers=3)
    assert [next(results), next(results)] == [0, 1]
    with pytest.raises(ValueError, match="two"):
        next(results)
    # A generator that raised is finished; a caller that wants the rest catches per item,
    # as inspect_one does (it returns an Outcome with the error instead of raising).
    assert list(results) == []

    def caught(n: int) -> object:
        try:
            return work(n)
        except ValueError as error:
            return str(error)

    assert list(ordered_map(caught, range(6), workers=3)) == [0, 1, "two", 3, 4, 5]


def test_closing_early_drops_what_has_not_started_and_threads_are_bounded_daemons() -> None:
    started: list[int] = []
    release = threading.Event()
    threads: set[threading.Thread] = set()
    lock = threading.Lock()

    def work(n: int) -> int:
        with lock:
            started.append(n)
            threads.add(threading.current_thread())
        if n > 0:
            assert release.wait(10)
        return n

    results = ordered_map(work, range(100), workers=2)
    assert next(results) == 0  # items 0..3 were submitted (a window of 2 x 2)
    results.close()  # type: ignore[attr-defined]
    release.set()
    for thread in threads:
        thread.join(10)
    assert len(threads) <= 2
    assert all(t.daemon and t.name.startswith("inspect_") for t in threads)
    assert sorted(started) == sorted(set(started)) and max(started) <= 3, started


def test_one_worker_runs_in_the_calling_thread() -> None:
    threads = set()

    def work(n: int) -> int:
        threads.add(threading.current_thread())
        return n

    assert list(ordered_map(work, range(5), workers=1)) == list(range(5))
    assert threads == {threading.current_thread()}


def test_cli_batch_network_failure_is_not_masked_by_a_missing_platform(
    registry_plain: Registry, corpus_plain: dict[str, object]
) -> None:
    """Exit 5 (network) wins over exit 7 (--require) of another reference; the highest code
    (7) was the exit status before."""
    missing_platform = registry_plain.ref("corpus/oci-single", "v1")  # riscv64 only
    unreachable = "127.0.0.1:1/nothing/here:v1"  # connection refused
    result = run_imginspect(
        "--json", "--require", "linux/amd64", "--max-wait", "0", missing_platform, unreachable
    )
    assert "missing linux/amd64" in result.stderr
    assert f"error: {unreachable}" in result.stderr
    assert result.code == 5, result.stderr
