"""A tiny process launcher for bench/run.py: spawn, time, and wait4 one command at a time.

Why a separate process: a child's ``ru_maxrss`` (from ``wait4`` or ``RUSAGE_CHILDREN``) is the
maximum over the child's whole life, and Linux counts the memory it had *before* ``exec`` -- a
copy of the parent after ``fork``, or the parent's own memory after ``vfork``/``posix_spawn``.
Spawned straight from the benchmark (60+ MB: httpx, cryptography, the token server), every tool
would report at least that. This launcher runs with ``python -S -I`` and imports only a few
stdlib modules, so the floor it adds is a few MB (bench/run.py prints it).

Protocol: one JSON request per line on stdin
``{"argv": [...], "env": {...}, "stdout": PATH, "stderr": PATH, "timeout": SECONDS}``, one JSON
reply per line on stdout ``{"wall", "cpu", "maxrss_kb", "status", "timed_out"}``. The child
leads a new session; its whole process group is SIGKILLed on timeout. If stdin closes (the
benchmark exited, was interrupted or killed) the running child's group is killed and the
launcher exits. SIGINT is ignored here (the benchmark decides) and reset to default in children.
"""

import contextlib
import json
import os
import select
import signal
import sys
import time

RESET = (signal.SIGINT, signal.SIGPIPE, signal.SIGXFSZ, signal.SIGTERM, signal.SIGHUP)


def kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def serve() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stdin = sys.stdin.buffer
    while True:
        line = stdin.readline()
        if not line:
            return
        req = json.loads(line)
        devnull = os.open(os.devnull, os.O_RDONLY)
        out = os.open(req["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        err = os.open(req["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        actions = [
            (os.POSIX_SPAWN_DUP2, devnull, 0),
            (os.POSIX_SPAWN_DUP2, out, 1),
            (os.POSIX_SPAWN_DUP2, err, 2),
        ]
        timed_out = False
        try:
            started = time.perf_counter()
            pid = os.posix_spawnp(
                req["argv"][0],
                req["argv"],
                req["env"],
                file_actions=actions,
                setsid=True,
                setsigdef=RESET,
            )
        except OSError as exc:
            failure = {"error": f"{req['argv'][0]}: {exc}"}
            sys.stdout.write(json.dumps(failure) + "\n")
            sys.stdout.flush()
            continue
        finally:
            for fd in (devnull, out, err):
                os.close(fd)
        pidfd = os.pidfd_open(pid)
        deadline = started + float(req["timeout"])
        try:
            while True:
                left = deadline - time.perf_counter()
                if left <= 0:
                    timed_out = True
                    kill_group(pid)  # unreaped, so the group id cannot have been reused
                    break
                ready, _, _ = select.select([pidfd, stdin], [], [], left)
                if pidfd in ready:
                    break
                if stdin in ready:  # the benchmark went away (it never writes mid-run)
                    kill_group(pid)
                    os.waitpid(pid, 0)
                    return
        finally:
            os.close(pidfd)
        kill_group(pid)  # stragglers left in the group (the leader is a zombie until reaped)
        _, status, usage = os.wait4(pid, 0)
        wall = time.perf_counter() - started
        reply: dict[str, object] = {
            "wall": wall,
            "cpu": usage.ru_utime + usage.ru_stime,
            "maxrss_kb": usage.ru_maxrss,
            "status": os.waitstatus_to_exitcode(status),
            "timed_out": timed_out,
        }
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    serve()
