"""The master process: bind every listener, run worker pools, reload, stop (master(8)'s job).

Start: load the configuration (refuse on any fatal diagnostic, listing all of them), open the
logs, take the pid-file lock ($queue_directory/pid/master.pid), build TLS contexts, bind every
listener, drop root privileges to mail_owner, then fork each service's pool of workers
(roost.master.worker). The master itself runs no event loop: a poll() loop woken by signals
through a wakeup pipe, so forking is always safe.

- A worker that dies is replaced after a back-off of 1 s doubling to 60 s per service (reset
  after a worker ran a minute); one that dies before it served is reported as Postfix does,
  `warning: ...: bad command startup -- throttling`.
- SIGHUP re-reads the configuration. With a fatal diagnostic (or a listener that cannot be
  bound) the running configuration stays and every error is logged. Otherwise sockets of
  unchanged endpoints are kept, new ones bound, removed ones closed; the old workers retire
  (stop accepting, exit when their connections end) and new ones start with the new settings.
- SIGTERM / SIGINT: workers stop accepting and get STOP_GRACE seconds for open connections,
  then whatever is left is killed; the master removes its sockets and pid file and exits.

Invariants: the master never blocks in anything but poll(); signals are blocked across fork so
a child never runs the master's handlers; a child leaves only through os._exit.
Security: privileges are dropped before the first fork, so no worker ever runs as root
(unless mail_owner is root, which is logged as a warning).
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import time
from dataclasses import dataclass, field

from roost import __version__
from roost.config.dovecot_settings import dovecot_settings
from roost.config.load import load_config
from roost.login import userip
from roost.log import LogSetup
from roost.master import anvil
from roost.master import bind as binding
from roost.master.logsetup import dovecot_pem_source, open_logs
from roost.master.pidfile import AlreadyRunning, PidFile, pid_file_path
from roost.master.plan import ServiceSpec, describe_listener, plan_services
from roost.master.preload import preload
from roost.master.privileges import PrivilegeError, drop_privileges, resolve_owner
from roost.master.services import ResolvedHandler, classify_non_listeners, resolve_handler
from roost.master.worker import READY_RECORD, WorkerPlan, run_worker, set_process_name
from roost.net.server import BoundSocket
from roost.qmgr.pickup import prepare_maildrop
from roost.queue.layout import ALL_QUEUES, QueueLayout
from roost.net.tls import TLSSetupError, dovecot_context, postfix_context

STOP_GRACE = 10.0  # seconds open connections get on stop
KILL_MARGIN = 5.0  # after the grace, workers still alive get SIGKILL
MIN_BACKOFF, MAX_BACKOFF = 1.0, 60.0
BACKOFF_RESET_AFTER = 60.0  # a worker that ran this long resets its service's back-off
DOVECOT_STARTTLS_HANDLERS = ("imap", "pop3")  # RFC 3501 STARTTLS, RFC 2595 STLS
HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD)


class Console:
    """Start-up messages for the person who ran start/start-fg: stderr (`start-fg`), or the
    pipe `start` reads until the master is ready (then closed, so the command can return)."""

    READY = "\0ready"

    def __init__(self, fd: int | None, pipe: bool = False):
        self.fd = fd
        self.pipe = pipe

    def say(self, text: str) -> None:
        if self.fd is None:
            return
        try:
            os.write(self.fd, (text + "\n").encode("utf-8", "replace"))
        except OSError:
            self.fd = None  # the reader went away: nobody to tell

    def ready(self) -> None:
        if self.pipe:
            self.say(self.READY)
        self.close()

    def close(self) -> None:
        if self.pipe and self.fd is not None:
            os.close(self.fd)
        self.fd = None


@dataclass(eq=False)
class Pool:
    spec: ServiceSpec
    bound: list[BoundSocket]
    resolved: ResolvedHandler
    config: object
    backoff: float = MIN_BACKOFF
    restart_due: list[float] = field(default_factory=list)
    retired: bool = False

    @property
    def label(self) -> str:
        return f"roost/{self.spec.handler} (service {self.spec.name})"


@dataclass(eq=False)
class Worker:
    pid: int
    pool: Pool
    started: float
    ready: bool = False
    retiring: bool = False


class Master:
    def __init__(self, config_dir: str, *, foreground: bool, console: Console, loader=load_config):
        self.config_dir = os.path.abspath(config_dir)
        self.foreground = foreground
        self.console = console
        self.loader = loader
        self.config = None
        self.logs: LogSetup | None = None
        self.log = None
        self.pidfile: PidFile | None = None
        self.sockets: dict[tuple, socket.socket] = {}
        self.pools: list[Pool] = []
        self.workers: dict[int, Worker] = {}
        self.pending: list[int] = []
        self.stopping = False
        self.kill_deadline: float | None = None
        self._pipes: list[int] = []

    # ---- start -----------------------------------------------------------------------------

    def run(self) -> int:
        # Until the real handlers are installed, a reload request must not kill the master.
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # meant for workers only
        try:
            if not self._start():
                self._cleanup()
                return 1
            self._loop()
            self._cleanup()
            return 0
        except BaseException as exc:
            self._report("panic", f"{type(exc).__name__}: {exc}")
            self._kill_all(signal.SIGKILL)
            self._cleanup()
            return 1

    def _report(self, level: str, text: str) -> None:
        """Log a line and show it to the person starting roost (once when both are stderr)."""
        if self.log is not None:
            self.log.log(level, text)
        if self.log is None or not self._console_is_log():
            prefix = "" if level == "info" else f"{level}: "
            self.console.say(f"roost/master: {prefix}{text}")

    def _console_is_log(self) -> bool:
        return self.foreground and self.logs is not None and self.logs.postfix_sink.fd == 2

    def _start(self) -> bool:
        config = self.loader(self.config_dir)
        for diagnostic in config.diagnostics.items:
            self.console.say(f"roost: {diagnostic}")
        if config.diagnostics.has_fatal():
            count = len(config.diagnostics.fatals)
            self.console.say(f"roost/master: fatal: {self.config_dir}: {count} configuration "
                             f"error{'s' * (count != 1)}; the mail system will not start")
            return False
        self.config = config
        try:
            self.logs = open_logs(config, self.foreground)
        except OSError as exc:
            self.console.say(f"roost/master: fatal: open log {exc.filename}: {exc.strerror}")
            return False
        self.log = self.logs.postfix("master", _syslog_name(config.main))
        for diagnostic in config.diagnostics.items:
            self.log.warning(f"{diagnostic.where()}: {diagnostic.message}")
        try:
            self.pidfile = PidFile.acquire(pid_file_path(config.main.get("queue_directory")))
        except AlreadyRunning as exc:
            shown = f" (PID {exc.pid})" if exc.pid else ""
            self.console.say(f"roost/master: fatal: the roost mail system is already running{shown}")
            return False
        except OSError as exc:
            self._report("fatal", f"open pid file {exc.filename}: {exc.strerror}")
            return False
        self.pidfile.write(os.getpid())
        specs = plan_services(config)
        try:
            self._bind_all(specs)
        except binding.BindError as exc:
            self._report("fatal", str(exc))
            return False
        contexts = self._tls_contexts(specs, config)
        self._prepare_userip(config)
        if os.geteuid() == 0:
            self._prepare_queue(config)
            preload()  # mail_owner may not be able to read the interpreter's files
        try:
            dropped = drop_privileges(config.main.get("mail_owner"))
        except PrivilegeError as exc:
            self._report("fatal", str(exc))
            return False
        if dropped.warning:
            self._report("warning", dropped.warning)
        self._install_signals()
        set_process_name("roost-master")
        self.log.info(f"daemon started -- version {__version__}, configuration {self.config_dir}")
        self._log_non_listeners(config)
        for spec in specs:
            self._add_pool(spec, config, contexts, announce=True)
        for spec in specs:
            for listener in spec.listeners:
                self.console.say(f"roost/master: listening: {describe_listener(listener)}")
        self.console.say(f"roost/master: the roost mail system is running: PID: {os.getpid()}")
        self.console.ready()
        return True

    def _prepare_userip(self, config) -> None:
        """mail_max_userip_connections counts in a lock file under base_dir that the workers,
        once they are mail_owner, must be able to open (roost.login.userip)."""
        if getattr(config, "dovecot", None) is None:
            return
        try:
            owner = resolve_owner(config.main.get("mail_owner")) if os.geteuid() == 0 else None
            base_dir = dovecot_settings(config.dovecot).base_dir
            userip.prepare(base_dir, owner.pw_uid if owner else os.getuid(),
                           owner.pw_gid if owner else os.getgid())
        except (OSError, PrivilegeError) as exc:
            self._report("warning", f"mail_max_userip_connections: {exc}")

    def _prepare_queue(self, config) -> None:
        """As Postfix's start-up `postfix check` (create-missing, set-permissions): every queue
        directory exists and belongs to mail_owner before root is given up, or the workers
        could not write a single queue file. maildrop is mode 1733 for sendmail."""
        try:
            owner = resolve_owner(config.main.get("mail_owner"))
            layout = QueueLayout.from_settings(config.main)
            layout.ensure()
            for queue in ALL_QUEUES:
                os.chown(layout.queue_dir(queue), owner.pw_uid, owner.pw_gid)
            prepare_maildrop(layout)
            anvil.prepare(anvil.anvil_lock_path(layout.root), owner.pw_uid, owner.pw_gid)
        except (OSError, PrivilegeError) as exc:
            self._report("warning", f"queue_directory: {exc}")

    def _bind_all(self, specs: list[ServiceSpec]) -> None:
        for spec in specs:
            for listener in spec.listeners:
                key = binding.endpoint_key(listener)
                if key not in self.sockets:
                    self.sockets[key] = binding.bind_listener(listener)

    def _tls_contexts(self, specs: list[ServiceSpec], config) -> dict:
        """listener id -> SSLContext (or None); built before privileges are dropped."""
        contexts = {}
        for spec in specs:
            for listener in spec.listeners:
                contexts[id(listener)] = self._tls_context(spec, listener, config)
        return contexts

    def _tls_context(self, spec: ServiceSpec, listener, config):
        try:
            if spec.dovecot:
                cert, key = dovecot_pem_source(config, "ssl_cert"), dovecot_pem_source(config, "ssl_key")
                starttls = spec.handler in DOVECOT_STARTTLS_HANDLERS
                if not listener.tls_wrapper and not (cert and starttls):
                    return None
                minimum = dovecot_settings(config.dovecot, protocol=spec.handler).ssl_min_protocol
                return dovecot_context(cert, key, minimum)
            if not listener.settings.get("smtpd_tls_cert_file") and not listener.tls_wrapper:
                return None
            return postfix_context(listener.settings)
        except TLSSetupError as exc:
            consequence = ("connections are closed" if listener.tls_wrapper
                           else "STARTTLS is not available")
            self.log.warning(f"service {listener.service}: TLS: {exc}; {consequence}")
            return None

    def _log_non_listeners(self, config) -> None:
        sorted_out = classify_non_listeners(config.services)
        if sorted_out.internal:
            names = ", ".join(service.name for service in sorted_out.internal)
            self.log.info(f"master.cf services provided inside roost: {names}")
        for service, reason in sorted_out.unsupported:
            self.log.warning(f"{service.file}, line {service.line}: service {service.name} "
                             f"({service.type}, {service.command}): {reason}; ignored")

    def _add_pool(self, spec: ServiceSpec, config, contexts: dict, announce: bool) -> None:
        resolved = resolve_handler(spec.handler)
        if announce and not resolved.available:
            self._report("warning", f'service {spec.name} ({spec.handler}): {resolved.reason}; '
                                    'answering "service not available"')
        bound = [BoundSocket(listener, self.sockets[binding.endpoint_key(listener)],
                             contexts.get(id(listener))) for listener in spec.listeners]
        pool = Pool(spec, bound, resolved, config)
        self.pools.append(pool)
        for _ in range(spec.pool_size):
            self._spawn(pool)

    # ---- processes -------------------------------------------------------------------------

    def _install_signals(self) -> None:
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.status_r, self.status_w = os.pipe2(os.O_CLOEXEC)
        self.alive_r, self.alive_w = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(self.status_r, False)
        self.wake_r = wake_r
        self._pipes = [wake_r, wake_w, self.status_r, self.status_w, self.alive_r, self.alive_w]
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        for signum in HANDLED_SIGNALS:
            signal.signal(signum, self._on_signal)
        self.selector = selectors.PollSelector()  # no kernel object a child could inherit
        self.selector.register(wake_r, selectors.EVENT_READ)
        self.selector.register(self.status_r, selectors.EVENT_READ)
        self.status_buffer = b""

    def _on_signal(self, signum, frame) -> None:
        self.pending.append(signum)

    def _spawn(self, pool: Pool) -> None:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)
        try:
            pid = os.fork()
        except OSError as exc:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
            self.log.warning(f"{pool.label}: fork: {exc.strerror}")
            pool.restart_due.append(time.monotonic() + pool.backoff)
            return
        if pid == 0:
            try:
                self._become_worker(pool)
            finally:
                os._exit(1)
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        self.workers[pid] = Worker(pid, pool, time.monotonic())

    def _become_worker(self, pool: Pool) -> None:
        for signum in (signal.SIGTERM, signal.SIGCHLD, signal.SIGUSR1):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.set_wakeup_fd(-1)
        own = {id(item.sock) for item in pool.bound}
        for sock in self.sockets.values():
            if id(sock) not in own:
                sock.close()
        for fd in self._pipes:
            if fd not in (self.status_w, self.alive_r):
                os.close(fd)
        if self.pidfile is not None:
            os.close(self.pidfile.fd)
        self.console.close()
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        run_worker(WorkerPlan(pool.spec, pool.bound, pool.resolved, pool.config, self.logs,
                              self.status_w, self.alive_r, STOP_GRACE))

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = self.workers.pop(pid, None)
            if worker is not None:
                self._worker_exited(worker, status)

    def _worker_exited(self, worker: Worker, status: int) -> None:
        pool = worker.pool
        if worker.retiring or self.stopping or pool.retired:
            return
        if os.WIFSIGNALED(status):
            self.log.warning(f"process {pool.label} pid {worker.pid} killed by signal "
                             f"{os.WTERMSIG(status)}")
        elif os.waitstatus_to_exitcode(status) != 0:
            self.log.warning(f"process {pool.label} pid {worker.pid} exit status "
                             f"{os.waitstatus_to_exitcode(status)}")
        now = time.monotonic()
        if not worker.ready:
            self.log.warning(f"{pool.label}: bad command startup -- throttling")
        elif now - worker.started >= BACKOFF_RESET_AFTER:
            pool.backoff = MIN_BACKOFF
        pool.restart_due.append(now + pool.backoff)
        pool.backoff = min(pool.backoff * 2, MAX_BACKOFF)

    def _read_status(self) -> None:
        try:
            data = os.read(self.status_r, 4096)
        except BlockingIOError:
            return
        self.status_buffer += data
        size = READY_RECORD.size
        while len(self.status_buffer) >= size:
            (pid,) = READY_RECORD.unpack(self.status_buffer[:size])
            self.status_buffer = self.status_buffer[size:]
            if pid in self.workers:
                self.workers[pid].ready = True

    def _kill_all(self, signum: int, only_retiring: bool = False) -> None:
        for worker in list(self.workers.values()):
            if only_retiring and not worker.retiring:
                continue
            try:
                os.kill(worker.pid, signum)
            except ProcessLookupError:
                pass

    # ---- main loop -------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            self._read_status()  # before reaping: a worker that served and died was ready
            self._reap()
            now = time.monotonic()
            if self.stopping:
                if not self.workers:
                    return
                if self.kill_deadline is not None and now >= self.kill_deadline:
                    self.log.warning(f"{len(self.workers)} worker(s) still running after "
                                     f"{STOP_GRACE:g}s; killing them")
                    self._kill_all(signal.SIGKILL)
                    self.kill_deadline = None
            else:
                self._restart_due(now)
            for key, _events in self.selector.select(self._timeout(now)):
                if key.fd == self.wake_r:
                    _drain(self.wake_r)
                elif key.fd == self.status_r:
                    self._read_status()
            while self.pending:
                signum = self.pending.pop(0)
                if signum == signal.SIGHUP and not self.stopping:
                    self.reload()
                elif signum in (signal.SIGTERM, signal.SIGINT):
                    self._begin_stop(signum)

    def _timeout(self, now: float) -> float | None:
        due = [t for pool in self.pools if not pool.retired for t in pool.restart_due]
        if self.kill_deadline is not None:
            due.append(self.kill_deadline)
        if self.stopping and self.workers:
            due.append(now + 0.5)  # SIGCHLD is the usual wake-up; this is a safety net
        return max(0.0, min(due) - now) if due else None

    def _restart_due(self, now: float) -> None:
        for pool in self.pools:
            if pool.retired:
                continue
            due = [t for t in pool.restart_due if t <= now]
            if not due:
                continue
            pool.restart_due = [t for t in pool.restart_due if t > now]
            for _ in due:
                self._spawn(pool)

    def _begin_stop(self, signum: int) -> None:
        if self.stopping:
            self._kill_all(signal.SIGKILL)  # asked twice: do not wait any longer
            return
        self.log.info(f"terminating on signal {signum}")
        self.stopping = True
        self.kill_deadline = time.monotonic() + STOP_GRACE + KILL_MARGIN
        for pool in self.pools:
            pool.restart_due.clear()
        self._kill_all(signal.SIGTERM)

    # ---- reload ----------------------------------------------------------------------------

    def reload(self) -> None:
        self.log.info(f"reload -- version {__version__}, configuration {self.config_dir}")
        try:
            config = self.loader(self.config_dir)
        except Exception as exc:  # the loader promises not to raise; a bug must not stop mail
            self.log.error(f"cannot load configuration: {type(exc).__name__}: {exc}")
            self.log.warning("reload failed; the running configuration stays in effect")
            return
        for diagnostic in config.diagnostics.items:
            level = "error" if diagnostic.severity.value == "fatal" else "warning"
            self.log.log(level, f"{diagnostic.where()}: {diagnostic.message}")
        if config.diagnostics.has_fatal():
            count = len(config.diagnostics.fatals)
            self.log.warning(f"{self.config_dir}: {count} configuration error{'s' * (count != 1)}; "
                             "the running configuration stays in effect")
            return
        specs = plan_services(config)
        fresh = self._bind_new(specs)
        if fresh is None:
            return
        self._switch_logs(config)
        contexts = self._tls_contexts(specs, config)
        old_keys = {pool.spec.key for pool in self.pools if not pool.retired}
        for worker in self.workers.values():
            worker.retiring = True
        self._kill_all(signal.SIGUSR1, only_retiring=True)
        for pool in self.pools:
            pool.retired = True
            pool.restart_due.clear()
        self.pools = []
        wanted = {binding.endpoint_key(listener) for spec in specs for listener in spec.listeners}
        for key in [key for key in self.sockets if key not in wanted]:
            self.sockets.pop(key).close()
            binding.remove_unix_path(key)
        self.sockets.update(fresh)
        self.config = config
        for spec in specs:
            self._add_pool(spec, config, contexts, announce=spec.key not in old_keys)

    def _bind_new(self, specs: list[ServiceSpec]) -> dict | None:
        """Bind the endpoints that are new in `specs`; None (and nothing bound) on failure."""
        fresh: dict[tuple, socket.socket] = {}
        try:
            for spec in specs:
                for listener in spec.listeners:
                    key = binding.endpoint_key(listener)
                    if key in self.sockets:
                        if listener.family == "unix":
                            binding.apply_unix_ownership(listener)
                    elif key not in fresh:
                        fresh[key] = binding.bind_listener(listener)
        except binding.BindError as exc:
            for key, sock in fresh.items():
                sock.close()
                binding.remove_unix_path(key)
            self.log.error(str(exc))
            self.log.warning("reload failed; the running configuration stays in effect")
            return None
        return fresh

    def _switch_logs(self, config) -> None:
        """Reopen the logs (rotation, a changed maillog_file); old workers keep their copies."""
        try:
            logs = open_logs(config, self.foreground)
        except OSError as exc:
            self.log.warning(f"open log {exc.filename}: {exc.strerror}; keeping the current log")
            self.logs.reopen()
            return
        old = self.logs
        self.logs = logs
        self.log = logs.postfix("master", _syslog_name(config.main))
        old.close()

    # ---- exit ------------------------------------------------------------------------------

    def _cleanup(self) -> None:
        for key, sock in list(self.sockets.items()):
            sock.close()
            binding.remove_unix_path(key)
        self.sockets.clear()
        if self.pidfile is not None:
            if self.log is not None and self.stopping:
                self.log.info("the roost mail system has stopped")
            self.pidfile.release()
            self.pidfile = None
        self.console.close()
        if self.logs is not None:
            self.logs.close()


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except (BlockingIOError, InterruptedError):
        pass


def _syslog_name(settings) -> str:
    try:
        return settings.get("syslog_name") or "postfix"
    except Exception:
        return "postfix"


def run_master(config_dir: str, *, foreground: bool, console_fd: int | None, loader=load_config) -> int:
    """Run a master in this process until it is stopped; the exit status for the command."""
    console = Console(console_fd, pipe=not foreground)
    return Master(config_dir, foreground=foreground, console=console, loader=loader).run()
