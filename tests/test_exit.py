"""How a completed run ends (console.finish): the interpreter's teardown is skipped with
os._exit, yet everything sys.exit would have done that matters still happens first, in its
order: non-daemon threads are waited for, atexit handlers run, stdout and stderr are flushed,
and the exit code is the run's. Each test runs the real CLI against a real registry, from a
small wrapper script that plants what teardown would (or would not) reach."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from imginspect.errors import ExitCode
from tests.support.corpus import PushedImage
from tests.support.registry import Registry

Corpus = dict[str, PushedImage]


def run_wrapped(
    tmp_path: Path, prelude: str, *args: str, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run ``imginspect.cli.main`` with ``args`` after ``prelude``, in a fresh process."""
    script = tmp_path / "wrapper.py"
    script.write_text(
        textwrap.dedent(prelude)
        + textwrap.dedent(
            f"""
            import sys
            from imginspect.cli import main
            sys.argv = ["imginspect", *{list(args)!r}]
            main()
            """
        )
    )
    env = {**os.environ, "IMGINSPECT_CACHE_DIR": str(tmp_path / "cache")}
    return subprocess.run(
        [sys.executable, str(script)], capture_output=True, input=stdin, env=env, timeout=60
    )


def ref(registry: Registry, image: PushedImage) -> str:
    return f"{registry.host}/{image.repo}:{image.tag}"


def test_teardown_is_skipped_but_atexit_handlers_run(
    tmp_path: Path, registry_plain: Registry, corpus_plain: Corpus
) -> None:
    # A finalizer that only teardown reaches (a module global's __del__) must not run; an
    # atexit handler, registered before and after imginspect's own, must.
    prelude = """
        import atexit, sys

        class Sentinel:
            def __del__(self):
                sys.stderr.write("teardown reached\\n")

        keep = Sentinel()
        atexit.register(lambda: sys.stderr.write("atexit ran\\n"))
    """
    image = corpus_plain["oci-index"]
    proc = run_wrapped(tmp_path, prelude, "--json", ref(registry_plain, image))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["Descriptor"]["digest"] == image.digest
    stderr = proc.stderr.decode()
    assert "atexit ran" in stderr
    assert "teardown reached" not in stderr


def test_non_daemon_threads_are_waited_for(
    tmp_path: Path, registry_plain: Registry, corpus_plain: Corpus
) -> None:
    # A library user's (or a plugin's) non-daemon thread still working when the run ends is
    # waited for, as at a normal exit, and its file is complete.
    done = tmp_path / "done"
    prelude = f"""
        import threading, time

        def work():
            time.sleep(0.5)
            with open({str(done)!r}, "w") as f:
                f.write("finished")

        threading.Thread(target=work, daemon=False).start()
    """
    image = corpus_plain["schema2"]
    proc = run_wrapped(tmp_path, prelude, "--digest", ref(registry_plain, image))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().split()[0] == image.digest
    assert done.read_text() == "finished"


def test_an_idle_thread_pool_left_open_does_not_hang_the_exit(
    tmp_path: Path, registry_plain: Registry, corpus_plain: Corpus
) -> None:
    # concurrent.futures' workers are non-daemon threads that wait for work until the
    # threading module's exit hook wakes them: joining them without it would never end.
    prelude = """
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(2)
        pool.submit(lambda: None).result()  # a worker now idles, waiting for work
    """
    image = corpus_plain["schema2"]
    proc = run_wrapped(tmp_path, prelude, "--digest", ref(registry_plain, image))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().split()[0] == image.digest


def test_buffered_output_and_exit_code_survive(
    tmp_path: Path, registry_plain: Registry, corpus_plain: Corpus
) -> None:
    # A batch into a pipe is block-buffered: every line must be out before os._exit, and a
    # failed reference's exit code (not found) is kept.
    good = [ref(registry_plain, corpus_plain[key]) for key in ("schema2", "oci-index")] * 300
    missing = f"{registry_plain.host}/corpus/does-not-exist:latest"
    refs = "\n".join([*good, missing]) + "\n"
    plain = run_wrapped(tmp_path, "", "--digest", "-f", "-", stdin=refs.encode())
    lines = plain.stdout.decode().splitlines()
    assert len(lines) == len(good)
    assert all(line.startswith("sha256:") for line in lines)
    assert plain.returncode == int(ExitCode.NOT_FOUND), plain.stderr
    # what imginspect writes to stderr (the error line) is flushed too
    assert "does-not-exist" in plain.stderr.decode()


def test_python_i_keeps_the_interpreter(tmp_path: Path) -> None:
    # Under `python -i` the user expects a prompt after the run: sys.exit (catchable), not
    # os._exit. The prompt reads stdin; an empty one ends it.
    script = tmp_path / "wrapper.py"
    script.write_text(
        "import sys\n"
        "from imginspect.console import finish\n"
        "try:\n"
        "    finish(3)\n"
        "except SystemExit as exc:\n"
        "    print('caught', exc.code)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-i", str(script)], capture_output=True, input=b"", timeout=60
    )
    assert b"caught 3" in proc.stdout


def test_finish_outside_the_main_thread_raises_system_exit(tmp_path: Path) -> None:
    script = tmp_path / "wrapper.py"
    script.write_text(
        "import threading\n"
        "from imginspect.console import finish\n"
        "seen = []\n"
        "def run():\n"
        "    try:\n"
        "        finish(4)\n"
        "    except SystemExit as exc:\n"
        "        seen.append(exc.code)\n"
        "t = threading.Thread(target=run); t.start(); t.join()\n"
        "print('seen', seen)\n"
    )
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, timeout=60)
    assert proc.stdout == b"seen [4]\n"
    assert proc.returncode == 0


def test_main_given_argv_raises_system_exit(tmp_path: Path) -> None:
    # From Python (bench/profile_batch.py, a test) main(argv) must leave the process alive.
    script = tmp_path / "wrapper.py"
    script.write_text(
        "from imginspect.cli import main\n"
        "try:\n"
        "    main(['--version'])\n"
        "except SystemExit as exc:\n"
        "    print('caught', exc.code)\n"
    )
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, timeout=60)
    assert proc.stdout.decode().splitlines()[-1] == "caught 0", proc.stderr


def test_sigterm_while_the_exit_waits_ends_the_process_quietly(
    tmp_path: Path, registry_plain: Registry, corpus_plain: Corpus
) -> None:
    # The run is over (its output written, the cache flushed) while the exit still waits for
    # a non-daemon thread: SIGTERM then ends the process as the signal does, no traceback.
    prelude = """
        import sys, threading, time

        def work():
            # until the exit is under way (the main thread is stopped in its shutdown)
            while threading.main_thread().is_alive():
                time.sleep(0.01)
            sys.stderr.write("waiting\\n")
            sys.stderr.flush()
            time.sleep(30)

        threading.Thread(target=work, daemon=False).start()
    """
    image = corpus_plain["schema2"]
    script = tmp_path / "wrapper.py"
    script.write_text(
        textwrap.dedent(prelude)
        + "from imginspect.cli import main\n"
        + f"sys.argv = ['imginspect', '--digest', {ref(registry_plain, image)!r}]\n"
        + "main()\n"
    )
    env = {**os.environ, "IMGINSPECT_CACHE_DIR": str(tmp_path / "cache")}
    with subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    ) as proc:
        assert proc.stderr is not None and proc.stdout is not None
        line = proc.stderr.readline()
        assert line == b"waiting\n", line + proc.stderr.read()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGTERM
    assert out.decode().split()[0] == image.digest
    assert b"Traceback" not in err, err
