"""One lifecycle for every environment part, and the cleanup that backs it.

Every provider (cluster, database, aws, load) follows ``start() -> ready (bounded wait)
-> endpoints -> stop()``.  ``stop()`` is idempotent, and every process, port and temp
dir a provider makes is registered here so it is removed on success, failure, Ctrl-C
(SIGINT), SIGTERM and interpreter exit.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import queue
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from contextlib import closing
from pathlib import Path
from typing import Any, TypeVar

from gameday.errors import EnvironmentNotReady, HarnessPartDied

T = TypeVar("T")

_cleanups: list[tuple[int, Callable[[], None]]] = []
# Re-entrant: the signal handler runs cleanups on the main thread, possibly while that
# thread is inside on_cleanup() holding this lock.
_cleanup_lock = threading.RLock()
_counter = 0


def on_cleanup(action: Callable[[], None]) -> int:
    """Register ``action`` to run at exit or on a fatal signal; returns a handle."""
    global _counter
    with _cleanup_lock:
        _counter += 1
        _cleanups.append((_counter, action))
        return _counter


def cancel_cleanup(handle: int) -> None:
    with _cleanup_lock:
        _cleanups[:] = [(h, a) for h, a in _cleanups if h != handle]


def run_cleanups() -> None:
    """Run every registered cleanup, newest first; a failing one never stops the rest."""
    while True:
        with _cleanup_lock:
            if not _cleanups:
                return
            _, action = _cleanups.pop()
        with contextlib.suppress(Exception):  # one failing cleanup must not stop the rest
            action()


class Interrupted(KeyboardInterrupt):
    """What gameday's handler raises for SIGINT, and for SIGTERM while a run is in progress.

    A KeyboardInterrupt, so pytest ends the whole session on it (not just the test it cut
    short) and every ``except KeyboardInterrupt`` still sees it; it carries the signal.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal_name(signum)}")
        self.signum = signum


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


_interrupted_by: int | None = None  # the first SIGINT/SIGTERM the handler saw
_runs = 0  # > 0 while a pytest session (a game-day run) is in progress


def interrupt_signal(exc: BaseException | None = None) -> int:
    """The signal behind an interrupt: the one ``exc`` (an :class:`Interrupted`) carries, else
    the one the handler saw, else SIGINT (a bare KeyboardInterrupt is Python's Ctrl-C)."""
    if isinstance(exc, Interrupted):
        return exc.signum
    return _interrupted_by or signal.SIGINT


def received_signal() -> int | None:
    """The SIGINT/SIGTERM gameday's handler saw, if any: whatever error followed it is the interrupt's
    doing (an import cut short, a wait stopped), so the exit code is the signal's, not the error's."""
    return _interrupted_by


@contextlib.contextmanager
def run_in_progress() -> Iterator[None]:
    """While a run is in progress SIGTERM, like SIGINT, raises :class:`Interrupted`, which
    pytest treats as the end of the session; elsewhere it stays ``SystemExit(143)``."""
    global _runs
    _runs += 1
    try:
        yield
    finally:
        _runs -= 1


def _on_signal(signum: int, frame: Any) -> None:
    global _interrupted_by, _dropped, _redelivering
    with _redelivery_lock:
        redelivered, _redelivering = _redelivering, False
        if redelivered and _dropped is None:
            return  # an interrupt delivered again that has been raised since: nothing is left to do
        if _dropped is not None and _inside(frame, _redeliver_dropped_interrupt.__code__):
            return  # raised in the hook it would be dropped again: the next delivery comes after it
        _dropped = None
    if _interrupted_by is None:
        _interrupted_by = signum
    run_cleanups()
    # Re-raise as the usual exception so callers' finally blocks and exit codes behave.
    if signum == signal.SIGINT or _runs:
        raise Interrupted(signum)
    raise SystemExit(128 + signum)


_installed = False


def install_signal_handlers() -> None:
    """Route SIGINT/SIGTERM through the cleanup registry (main thread only).

    SIGINT gets the handler whatever the disposition inherited: CPython installs its own
    KeyboardInterrupt handler only when SIGINT was at its default, so a harness started
    from a non-interactive shell's background job, nohup or some CI runners (SIGINT
    ignored) would otherwise not stop on Ctrl-C at all.
    """
    global _installed
    if _installed or threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    catch_dropped_interrupts()
    _installed = True


def catch_dropped_interrupts() -> None:
    """Put gameday's catch in front of ``sys.unraisablehook`` (once; again after whoever replaced it,
    as pytest does at configure), so no interrupt is lost in a finalizer.

    A signal handled while the main thread runs a finalizer (an object's ``__del__``, a weakref
    callback: a socket, a subprocess or a database connection being collected) raises there, and
    Python drops what a finalizer raises: it hands it to this hook and the code that was running goes
    on, with the cleanups already run under it.  Such an interrupt is delivered again, and the
    handler raises it at the main thread's next instruction, outside the finalizer.
    """
    current = sys.unraisablehook
    if isinstance(current, functools.partial) and current.func is _redeliver_dropped_interrupt:
        return
    sys.unraisablehook = functools.partial(_redeliver_dropped_interrupt, current)


_dropped: int | None = None  # an interrupt a finalizer dropped, not raised again yet
_redelivering = False  # a delivery of it is on its way to the handler
_redelivery_lock = threading.RLock()  # re-entrant: the handler can run on the main thread inside the hook
_redeliverer: threading.Thread | None = None
REDELIVERY_INTERVAL = 0.05  # seconds between deliveries of a dropped interrupt
REDELIVERY_BOUND = 10.0  # seconds: a process that keeps dropping it is left to the exit code


def _redeliver_dropped_interrupt(previous: Callable[[Any], object], unraisable: Any) -> None:
    global _dropped, _redeliverer
    exc = unraisable.exc_value
    signum = exc.signum if isinstance(exc, Interrupted) else None
    if isinstance(exc, SystemExit) and _interrupted_by is not None and exc.code == 128 + _interrupted_by:
        signum = _interrupted_by  # the handler's exit outside a run
    if signum is None or threading.current_thread() is not threading.main_thread():
        previous(unraisable)
        return
    with _redelivery_lock:
        _dropped = signum
        if _redeliverer is None or not _redeliverer.is_alive():
            _redeliverer = threading.Thread(target=_redeliver, name="gameday-redeliver", daemon=True)
            _redeliverer.start()


def _redeliver() -> None:
    """Deliver the dropped interrupt again until the handler has raised it outside a finalizer (a
    delivery that lands in another one is dropped and comes back here), within a bound."""
    global _redelivering
    deadline = time.monotonic() + REDELIVERY_BOUND
    while time.monotonic() < deadline:
        with _redelivery_lock:
            if _dropped is None:
                return
            _redelivering = True
            # a real signal to the main thread, not interrupt_main(): one blocked in a long
            # wait (a sleep, a lock, a child's exit) is woken by it and the handler runs at once
            signal.pthread_kill(threading.main_thread().ident or 0, _dropped)
        time.sleep(REDELIVERY_INTERVAL)


def _inside(frame: Any, code: Any) -> bool:
    while frame is not None:
        if frame.f_code is code:
            return True
        frame = frame.f_back
    return False


atexit.register(run_cleanups)


class Provider:
    """Base for environment parts: a context manager with an idempotent stop."""

    name = "provider"

    def start(self) -> Provider:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def endpoints(self) -> dict[str, Any]:
        raise NotImplementedError

    def __enter__(self):  # type: ignore[no-untyped-def]
        try:
            self.start()
        except BaseException:
            self.stop()  # a half-started part is cleaned up, not leaked
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_until(
    check: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.1,
    what: str,
    transient: Iterable[type[BaseException]] = (OSError,),
    logs: Callable[[], str] | None = None,
) -> T:
    """Poll ``check`` until it returns something truthy, or raise EnvironmentNotReady.

    Exceptions of the ``transient`` types count as "not yet".  A harness part that dies
    meanwhile ends the wait at once (HarnessPartDied naming it), never at the timeout.  On timeout the message
    carries the last error and, when given, the tail of the part's logs.
    """
    deadline = time.monotonic() + timeout
    transient_types = tuple(transient)
    last_error: BaseException | None = None
    while True:
        try:
            result = check()
            if result:
                return result
        except transient_types as exc:
            last_error = exc
        raise_if_a_part_died(what)
        if time.monotonic() >= deadline:
            detail = f"; last error: {last_error}" if last_error else ""
            tail = ""
            if logs is not None:
                text = logs().strip().splitlines()[-5:]
                tail = ("; logs: " + " | ".join(text)) if text else ""
            raise EnvironmentNotReady(f"{what} not ready after {timeout:g}s{detail}{tail}")
        time.sleep(interval)


LISTEN_FLOOR = 20000  # ports handed to listeners are drawn from here up to the kernel's ephemeral range


def _ephemeral_floor() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_HANDED_OUT: dict[int, None] = {}  # the ports free_port gave, oldest first (bounded below)
_HANDED_OUT_LOCK = threading.Lock()
_HANDED_OUT_KEPT = 4096


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now, for a listener that binds it later.

    Drawn at random below the kernel's ephemeral range: a port the OS could give any
    outgoing connection as its local port (the load's, a client's, a kubelet's) can be
    taken between this check and the listener's bind, and the listener then fails to
    start (seen: kube-scheduler exiting 1 at start while the suite ran).  Random, so that
    two harnesses starting side by side rarely draw the same one.  The ephemeral range is
    the fallback when nothing below it binds.

    A port this process handed out is not handed out again (the last 4096 are kept): the
    check only proves the port free *now*, so two draws before either listener binds (a
    control plane's six ports) could give the same port twice, and the second listener
    then fails to bind (seen: etcd exiting 1, "address already in use"; its peer and
    client ports drawn alike is the likely cause, not proven)."""
    top = _ephemeral_floor()
    with _HANDED_OUT_LOCK:
        for _ in range(64 if top - LISTEN_FLOOR > 1000 else 0):
            port = random.randrange(LISTEN_FLOOR, top)
            if port in _HANDED_OUT or not bindable(host, port):
                continue
            return _hand_out(port)
        for _ in range(64):  # the kernel's own choice, if it can be one not handed out yet
            with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
                sock.bind((host, 0))
                port = int(sock.getsockname()[1])
            if port not in _HANDED_OUT:
                break
        return _hand_out(port)


def bindable(host: str, port: int) -> bool:
    """``port`` on ``host`` can be bound right now (nothing listens there, and the address is ours)."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _hand_out(port: int) -> int:
    _HANDED_OUT[port] = None
    while len(_HANDED_OUT) > _HANDED_OUT_KEPT:
        del _HANDED_OUT[next(iter(_HANDED_OUT))]
    return port


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


OWNER_FILE = "owner.pid"


def temp_dir(prefix: str, *, mode: int = 0o700, base: Path | None = None) -> Path:
    """A temp dir removed at cleanup time (under ``base``, default the system temp dir).

    It records the owning pid, so when the harness was killed outright (SIGKILL: no
    cleanup ran; its processes died with it) the next start sweeps the leftovers away.
    """
    sweep_stale_dirs(prefix, base)
    path = Path(tempfile.mkdtemp(prefix=f"gameday-{prefix}-", dir=base))
    path.chmod(mode)
    (path / OWNER_FILE).write_text(str(os.getpid()))
    on_cleanup(lambda: shutil.rmtree(path, ignore_errors=True))
    return path


def sweep_stale_dirs(prefix: str, base: Path | None = None) -> list[Path]:
    """Remove gameday-<prefix>-* temp dirs whose owning process is gone."""
    removed = []
    for root in (base or Path(tempfile.gettempdir())).glob(f"gameday-{prefix}-*"):
        try:
            owner = int((root / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue  # still being created, or not ours to judge
        if not pid_alive(owner):
            shutil.rmtree(root, ignore_errors=True)
            removed.append(root)
    return removed


def traversable_by_others(path: Path) -> bool:
    """Can another (unprivileged) user reach a folder inside ``path``?"""
    for part in [path, *path.parents]:
        try:
            if not part.stat().st_mode & 0o001:
                return False
        except OSError:
            return False
    return True


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True


# -- harness parts: processes and threads whose death is the harness's failure, not the rehearsed system's --
class ThreadPart:
    """An in-process part (the process kubelet's loops, the service proxy's event loop) seen the
    way a process is: ``poll()`` is None while its thread runs."""

    def __init__(self, thread: threading.Thread) -> None:
        self.thread = thread
        self.pid = id(thread)

    def poll(self) -> int | None:
        return None if self.thread.is_alive() else 0


class Death(str):
    """What :func:`dead_parts` says of one part ("etcd (pid 123) was killed by SIGKILL"); ``shared``:
    the part serves every scenario (the cluster, moto), so the scenarios after it cannot run."""

    shared: bool = False


class _Part:
    def __init__(self, name: str, handle: Any, ends_after: float | None, shared: bool) -> None:
        self.name, self.handle, self.ends_after, self.shared = name, handle, ends_after, shared

    def death(self) -> Death | None:
        code = self.handle.poll()
        if code is None:
            return None
        if self.ends_after is not None and time.monotonic() >= self.ends_after:
            return None  # its own end (locust's --run-time): expected, not a death
        if isinstance(self.handle, ThreadPart):
            said = Death(f"{self.name} stopped (its thread {self.handle.thread.name!r} ended)")
        else:
            how = f"was killed by {signal_name(-code)}" if code < 0 else f"exited with code {code}"
            said = Death(f"{self.name} (pid {self.handle.pid}) {how}")
        said.shared = self.shared
        return said


_PARTS: dict[int, _Part] = {}
_PARTS_LOCK = threading.Lock()


def watch_part(name: str, handle: subprocess.Popen[Any] | ThreadPart, *, ends_after: float | None = None,
               shared: bool = False) -> None:
    """Watch ``handle`` as the harness part ``name`` (etcd, kube-apiserver, postgres, moto, locust,
    a kubelet's loop).  ``ends_after`` (monotonic): from then on, its exit is its own planned end.
    ``shared``: it serves the whole run (the cluster, moto), not one scenario."""
    with _PARTS_LOCK:
        _PARTS[handle.pid] = _Part(name, handle, ends_after, shared)


def forget_part(handle: subprocess.Popen[Any] | ThreadPart | None) -> None:
    """``handle`` is being stopped on purpose: its exit is no finding."""
    if handle is not None:
        with _PARTS_LOCK:
            _PARTS.pop(handle.pid, None)


def parts_down() -> list[Death]:
    """Harness parts dead right now (without taking them off the watch: see :func:`dead_parts`)."""
    with _PARTS_LOCK:
        return [gone for part in _PARTS.values() if (gone := part.death()) is not None]


def raise_if_a_part_died(waiting_for: str) -> None:
    """A wait on anything is pointless once a harness part died: stop it now, naming the part."""
    down = parts_down()
    if down:
        raise HarnessPartDied(f"{'; '.join(down)} while waiting for {waiting_for}",
                              fix="a harness part died: the rehearsed system was not judged; see the part's log")


def dead_parts() -> list[Death]:
    """Harness parts that exited without being stopped, each said once: "etcd (pid 123) was killed
    by SIGKILL".  A step that fails while one of these is dead failed because the harness could
    not do its job (an ERROR naming the part), not because the rehearsed system misbehaved."""
    found: list[Death] = []
    with _PARTS_LOCK:
        for key, part in list(_PARTS.items()):
            gone = part.death()
            if gone is None:
                if part.handle.poll() is not None:
                    del _PARTS[key]  # ended on its own, as planned
                continue
            del _PARTS[key]
            found.append(gone)
    return found


def wait_process(proc: subprocess.Popen[Any], timeout: float, *, what: str, input: str | bytes | None = None,
                 ) -> tuple[Any, Any]:
    """``proc.communicate()`` bounded by ``timeout`` (TimeoutExpired as usual), that also ends as
    soon as a harness part dies (the process group is killed, then HarnessPartDied naming it)."""
    deadline = time.monotonic() + timeout
    pending = input
    while True:
        try:
            return proc.communicate(input=pending, timeout=max(0.0, min(0.25, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            pending = None  # communicate() keeps what it already wrote; it must not be given twice
            if time.monotonic() >= deadline:
                raise
            if parts_down():
                stop_process(proc, grace=0)
                raise_if_a_part_died(what)


def stop_process(proc: subprocess.Popen[Any], *, grace: float = 10.0) -> None:
    """SIGTERM the process group, wait ``grace`` seconds, then SIGKILL. No orphans."""
    forget_part(proc)
    if proc.poll() is not None:
        return
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


_PRCTL = None
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """A ``preexec_fn``: the kernel kills the child when the thread that started it dies,
    even by SIGKILL, so a crashed harness leaves no orphan (Linux PR_SET_PDEATHSIG).

    Use it only from a thread that outlives the child (the main thread, a worker that
    owns the process).  It runs after subprocess switches user, so it survives that.
    """
    assert _PRCTL is not None
    _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL)


def _load_prctl() -> None:
    # Resolved in the parent: a forked child should not load libraries.
    global _PRCTL
    import ctypes

    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl


_load_prctl()


_spawn_queue: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] | None = None
_spawn_queue_lock = threading.Lock()


def on_lasting_thread(call: Callable[[], T]) -> T:
    """Run ``call`` on a thread that lasts as long as the process: the main thread when
    called from it, else one daemon thread kept for this.

    A child made with :func:`die_with_parent` is killed when the *thread* that forked it
    ends, so one started from a short-lived worker thread would die with that thread.
    """
    global _spawn_queue
    if threading.current_thread() is threading.main_thread():
        return call()
    with _spawn_queue_lock:
        if _spawn_queue is None:
            _spawn_queue = queue.SimpleQueue()
            threading.Thread(target=_serve_spawns, args=(_spawn_queue,), name="gameday-spawner", daemon=True).start()
        future: Future[T] = Future()
        _spawn_queue.put((call, future))
    return future.result()


def _serve_spawns(calls: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]]) -> None:
    while True:  # never returns: its children must not see it end
        call, future = calls.get()
        try:
            future.set_result(call())
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            future.set_exception(exc)


def spawn(
    argv: list[str],
    *,
    log: Path | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    grace: float = 10.0,
    die_with_harness: bool = False,
    part: str | None = None,
    shared: bool = False,
    **kwargs: Any,
) -> subprocess.Popen[Any]:
    """Start a process in its own group, registered for cleanup.

    ``die_with_harness``: the kernel kills it if this process dies without cleaning up
    (SIGKILL, a crash), via :func:`die_with_parent` on a thread that lasts as long as
    this process (see :func:`on_lasting_thread`).  ``part``: a harness part whose death
    is reported by :func:`dead_parts` (see :func:`watch_part`; ``shared``: it serves the whole run).
    """
    if die_with_harness:
        if "preexec_fn" in kwargs:
            raise TypeError("spawn(): give die_with_harness or preexec_fn, not both")
        return on_lasting_thread(lambda: spawn(argv, log=log, env=env, cwd=cwd, grace=grace, part=part, shared=shared,
                                               preexec_fn=die_with_parent, **kwargs))
    out: Any = subprocess.DEVNULL
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        out = open(log, "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=cwd,
        start_new_session=True,
        **kwargs,
    )
    if log is not None:
        out.close()
    if part is not None:
        watch_part(part, proc, shared=shared)
    on_cleanup(lambda: stop_process(proc, grace=grace))
    return proc


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
