#!/usr/bin/env python3
"""Where a batch spends its CPU: cProfile of the main thread AND every worker thread.

    python bench/profile_batch.py                 # 1000 references, --no-cache
    python bench/profile_batch.py --refs 100 --args="--json"   # with the cache, 100 references
    python bench/profile_batch.py --sort tottime --top 40 --save /tmp/batch.prof
    python bench/profile_batch.py --args="--json" --warm   # warm cache: filled by a first run

Starts the CNCF registry on loopback, pushes the benchmark's batch corpus (bench/run.py), then
runs ``imginspect.cli.main`` in this process with stdout sent to /dev/null. Every thread started
while it runs gets its own ``cProfile.Profile`` (``threading.Thread.run`` is wrapped); the
profiles are merged and printed (``pstats``), with the wall and CPU time of the run. The
registry runs in another process: its CPU is not in the profile but shares the machine.

``--warm`` first runs the same batch once, unprofiled and untimed, in this process (a fresh
``Cache`` each run, as a new process would have), so the measured run finds the cache filled
by an earlier run: each reference is one HEAD plus cache reads. ``--repeat N`` times the run N
times (each run after the first also warm when the cache is on) and profiles the last.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import pstats
import resource
import shlex
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH_DIR.parent), str(BENCH_DIR)]

from run import batch_refs, push_batch_corpus  # noqa: E402

from tests.support.registry import start_registry  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--refs", type=int, default=1000)
    p.add_argument("--args", default="--json --no-cache", help="imginspect options")
    p.add_argument("--sort", default="cumulative", help="pstats sort key (default cumulative)")
    p.add_argument("--top", type=int, default=45)
    p.add_argument("--save", type=Path, help="write the merged profile here (pstats format)")
    p.add_argument("--no-profile", action="store_true", help="time the run only")
    p.add_argument(
        "--warm",
        action="store_true",
        help="run the batch once first (unmeasured) so the measured run finds a warm cache",
    )
    p.add_argument("--repeat", type=int, default=1, help="measured runs (the last one is profiled)")
    p.add_argument(
        "--wall",
        action="store_true",
        help="profile wall time (default: each thread's own CPU time, time.thread_time, so "
        "blocking reads and waits for the GIL or a lock do not count)",
    )
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="imginspect-prof-") as tmp:
        registry = start_registry(Path(tmp) / "reg", name="prof")
        try:
            push_batch_corpus(registry)
            refs = Path(tmp) / "refs.txt"
            refs.write_text("".join(f"{registry.host}/{r}\n" for r in batch_refs(args.refs)))
            os.environ["IMGINSPECT_CACHE_DIR"] = str(Path(tmp) / "cache")
            argv = [*shlex.split(args.args), "-f", str(refs)]
            if args.warm:
                run_quiet(argv)
            cached = "--no-cache" not in argv
            for i in range(max(1, args.repeat)):
                warm = cached and (args.warm or i > 0)
                last = i == max(1, args.repeat) - 1
                run_profiled(
                    argv,
                    args,
                    profile=not args.no_profile and last,
                    label=" (warm cache)" if warm else " (cold cache)" if cached else "",
                )
        finally:
            registry.stop()
    return 0


def run_quiet(argv: list[str]) -> None:
    """Run the batch once, stdout to /dev/null, nothing measured (fills the cache)."""
    from imginspect.cli import main as cli_main

    saved_stdout = sys.stdout
    with open(os.devnull, "w") as devnull:
        sys.stdout = devnull
        try:
            with contextlib.suppress(SystemExit):
                cli_main(argv)
        finally:
            sys.stdout = saved_stdout


def run_profiled(
    argv: list[str], args: argparse.Namespace, *, profile: bool, label: str = ""
) -> None:
    from imginspect.cli import main as cli_main

    profiles: list[cProfile.Profile] = []
    original_run = threading.Thread.run

    def profiled_run(self: threading.Thread) -> None:
        prof = cProfile.Profile() if args.wall else cProfile.Profile(time.thread_time)
        profiles.append(prof)
        prof.runcall(original_run, self)

    if profile:
        threading.Thread.run = profiled_run  # type: ignore[method-assign]
    main_prof = cProfile.Profile() if args.wall else cProfile.Profile(time.thread_time)
    devnull = open(os.devnull, "w")  # noqa: SIM115
    saved_stdout = sys.stdout
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    try:
        sys.stdout = devnull
        if profile:
            main_prof.enable()
        with contextlib.suppress(SystemExit):
            cli_main(argv)
    finally:
        main_prof.disable()
        sys.stdout = saved_stdout
        threading.Thread.run = original_run  # type: ignore[method-assign]
        devnull.close()
    wall = time.perf_counter() - started
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    print(
        f"imginspect {' '.join(argv[:-2])} on {args.refs} refs{label}: wall {wall:.2f} s, CPU "
        f"{cpu:.2f} s ({cpu / args.refs * 1000:.2f} ms per reference)"
        + (f", profiled ({len(profiles)} worker threads)" if profile else "")
    )
    if not profile:
        return
    stats = pstats.Stats(main_prof)
    for prof in profiles:
        stats.add(prof)
    if args.save:
        stats.dump_stats(str(args.save))
    stats.strip_dirs().sort_stats(args.sort).print_stats(args.top)


if __name__ == "__main__":
    sys.exit(main())
