"""Mail log lines in Postfix's and Dovecot's formats, written by many processes to one file.

Postfix side (what syslog, or Postfix's own `maillog_file`, writes; observed with Postfix 3.7
`postlog` and `maillog_file`):

    Nov  3 18:40:01 HOSTNAME postfix/smtpd[1234]: connect from localhost[127.0.0.1]
    Nov  3 18:40:01 HOSTNAME postfix/master[1200]: warning: process ... exit status 1

The tag is `$syslog_name/PROCESS` (master.cf `-o syslog_name=postfix/submission` gives
`postfix/submission/smtpd`); `warning:`, `error:`, `fatal:` and `panic:` prefix the message as
Postfix's msg(3) does; info lines have no prefix.

Dovecot side: with `log_path` set to a file Dovecot writes its own format (observed with
Dovecot 2.3.19 and `log_path`; the stamp is `log_timestamp`, default `"%b %d %H:%M:%S "`):

    Nov 03 18:40:01 imap-login: Info: Login: user=<bob>, method=PLAIN, ...

and with the default `log_path = syslog` the lines reach the mail log through syslog as

    Nov  3 18:40:01 HOSTNAME dovecot: imap-login: Login: user=<bob>, ...

(no `Info:` there: syslog carries the level; other levels keep `Warning: ` etc.).

Timestamps are local time with English month names whatever the locale, `%b %e %H:%M:%S`
exactly as syslog writes them (`Nov  3`, two spaces) so pflogsumm and fail2ban parse them.

Invariants: one line is one `write()` on a descriptor opened with O_APPEND, so lines of many
processes interleave but never tear; a log line never contains a control character (each
becomes `?`) and is capped at MAX_LINE_BYTES; a failing log write never raises.
Security: untrusted text (client input) cannot forge extra log lines: CR/LF are replaced.
"""

from __future__ import annotations

import os
import socket
import threading
import time

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# A line stays below PIPE_BUF-ish sizes so even a pipe (start-fg stderr) gets it whole.
MAX_LINE_BYTES = 4000

# Postfix msg(3) prefixes; info (and verbose) lines have none.
POSTFIX_PREFIX = {"info": "", "debug": "", "warning": "warning: ", "error": "error: ",
                  "fatal": "fatal: ", "panic": "panic: "}
# Dovecot's level names as written to log_path.
DOVECOT_LEVEL = {"debug": "Debug", "info": "Info", "warning": "Warning", "error": "Error",
                 "fatal": "Fatal", "panic": "Panic"}
DOVECOT_DEFAULT_TIMESTAMP = "%b %d %H:%M:%S "

_CONTROL = {c: "?" for c in (*range(0x20), 0x7F)}


_last_stamp: tuple[int, str] = (-1, "")


def syslog_timestamp(when: float) -> str:
    """`Nov  3 18:40:01`: syslog's `%b %e %H:%M:%S`, English months, local time. The text of
    the last second is kept: localtime() costs a stat of /etc/localtime in the C library."""
    global _last_stamp
    second = int(when)
    cached = _last_stamp
    if cached[0] == second:
        return cached[1]
    t = time.localtime(second)
    text = f"{MONTHS[t.tm_mon - 1]} {t.tm_mday:2d} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    _last_stamp = (second, text)
    return text


_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


def current_pid() -> int:
    """os.getpid() without a system call per log line (re-read in every forked child)."""
    return _pid


def dovecot_timestamp(when: float, fmt: str = DOVECOT_DEFAULT_TIMESTAMP) -> str:
    """Dovecot's `log_timestamp` (strftime) with English month names whatever the locale."""
    t = time.localtime(when)
    fmt = fmt.replace("%b", MONTHS[t.tm_mon - 1]).replace("%h", MONTHS[t.tm_mon - 1])
    try:
        return time.strftime(fmt, t)
    except ValueError:  # a format the C library rejects: fall back to the default
        return time.strftime(DOVECOT_DEFAULT_TIMESTAMP.replace("%b", MONTHS[t.tm_mon - 1]), t)


def sanitize(text: str) -> str:
    """Text safe for one log line: control characters (CR, LF, NUL...) become `?`."""
    text = str(text)
    if text.isprintable():  # no Cc character at all (the usual line): nothing to replace,
        return text         # and isprintable() is 4-8x cheaper than translate() with a dict
    return text.translate(_CONTROL)


def _cap(line: str) -> str:
    if len(line) * 4 <= MAX_LINE_BYTES:  # UTF-8 takes at most 4 bytes a character: fits as is
        return line
    data = line.encode("utf-8", "replace")
    if len(data) <= MAX_LINE_BYTES:
        return line
    return data[:MAX_LINE_BYTES - 3].decode("utf-8", "ignore") + "..."


def postfix_line(when: float, hostname: str, tag: str, pid: int, level: str, text: str) -> str:
    """One Postfix-format line (no newline)."""
    prefix = POSTFIX_PREFIX.get(level, "")
    return _cap(f"{syslog_timestamp(when)} {hostname} {tag}[{pid}]: {prefix}{sanitize(text)}")


def dovecot_file_line(when: float, service: str, level: str, text: str,
                      timestamp_format: str = DOVECOT_DEFAULT_TIMESTAMP) -> str:
    """One line as Dovecot writes it to `log_path`: `Nov 03 18:40:01 imap-login: Info: ...`."""
    return _cap(f"{dovecot_timestamp(when, timestamp_format)}{service}: "
                f"{DOVECOT_LEVEL.get(level, 'Info')}: {sanitize(text)}")


def dovecot_syslog_line(when: float, hostname: str, service: str, level: str, text: str) -> str:
    """One Dovecot line as syslog writes it to the mail log: `... HOST dovecot: imap-login: ...`."""
    shown = "" if level == "info" else f"{DOVECOT_LEVEL.get(level, 'Info')}: "
    return _cap(f"{syslog_timestamp(when)} {hostname} dovecot: {service}: {shown}{sanitize(text)}")


def system_hostname() -> str:
    """The host name syslog and Postfix's maillog_file put in each line (gethostname())."""
    return socket.gethostname() or "localhost"


class LogSink:
    """An append-only destination: a file path (opened O_APPEND) or an inherited descriptor.

    Forked workers inherit the open descriptor; `reopen()` (on reload) picks up a rotated file.
    """

    def __init__(self, path: str | None = None, fd: int | None = None):
        if (path is None) == (fd is None):
            raise ValueError("LogSink needs exactly one of path or fd")
        self.path = path
        self._fd = fd
        self._owns_fd = path is not None
        self._lock = threading.Lock()
        if path is not None:
            self._fd = self._open(path)

    @staticmethod
    def _open(path: str) -> int:
        directory = os.path.dirname(path)
        if directory and not path.startswith("/dev/"):
            os.makedirs(directory, exist_ok=True)
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)

    @classmethod
    def stderr(cls) -> "LogSink":
        return cls(fd=2)

    @property
    def fd(self) -> int | None:
        return self._fd

    def write_line(self, line: str) -> None:
        data = (line + "\n").encode("utf-8", "replace")
        with self._lock:
            fd = self._fd
            if fd is None:
                return
            try:
                while data:
                    written = os.write(fd, data)
                    data = data[written:]
            except OSError:
                pass  # logging must never take a server down (disk full, closed stderr)

    def reopen(self) -> None:
        if not self._owns_fd or self.path is None:
            return
        fresh = self._open(self.path)
        with self._lock:
            old, self._fd = self._fd, fresh
        if old is not None:
            os.close(old)

    def close(self) -> None:
        with self._lock:
            fd, self._fd = self._fd, None
        if fd is not None and self._owns_fd:
            os.close(fd)


class LevelMethods:
    """`info(text)`, `warning(text)`... for a logger that defines `log(level, text)`.
    `fatal` and `panic` only log; the caller decides how to stop (Postfix's msg_fatal exits)."""

    def debug(self, text: str) -> None:
        self.log("debug", text)

    def info(self, text: str) -> None:
        self.log("info", text)

    def warning(self, text: str) -> None:
        self.log("warning", text)

    def error(self, text: str) -> None:
        self.log("error", text)

    def fatal(self, text: str) -> None:
        self.log("fatal", text)

    def panic(self, text: str) -> None:
        self.log("panic", text)


class PostfixLogger(LevelMethods):
    """Writes `$syslog_name/process[pid]: ...` lines; the pid is the writer's own (fork-safe)."""

    def __init__(self, sink: LogSink, tag: str, hostname: str):
        self.sink = sink
        self.tag = tag
        self.hostname = hostname

    def log(self, level: str, text: str) -> None:
        self.sink.write_line(postfix_line(time.time(), self.hostname, self.tag, current_pid(), level, text))



class DovecotLogger(LevelMethods):
    """Writes Dovecot-format lines for one service (`imap-login`, `pop3-login`, `auth`, `lmtp`)."""

    def __init__(self, sink: LogSink, service: str, hostname: str, syslog_style: bool,
                 timestamp_format: str = DOVECOT_DEFAULT_TIMESTAMP, info_sink: LogSink | None = None):
        self.sink = sink
        self.info_sink = info_sink or sink
        self.service = service
        self.hostname = hostname
        self.syslog_style = syslog_style
        self.timestamp_format = timestamp_format

    def log(self, level: str, text: str) -> None:
        now = time.time()
        if self.syslog_style:
            line = dovecot_syslog_line(now, self.hostname, self.service, level, text)
        else:
            line = dovecot_file_line(now, self.service, level, text, self.timestamp_format)
        (self.info_sink if level in ("info", "debug") else self.sink).write_line(line)



class LogSetup:
    """The destinations of one roost instance, made by the master and inherited by workers.

    `postfix_sink` receives Postfix lines (maillog_file, else stderr in the foreground, else
    $data_directory/maillog); `dovecot_sink` receives Dovecot lines: the file of Dovecot's
    `log_path` in Dovecot's format, or the Postfix sink in syslog style when log_path is syslog.
    """

    def __init__(self, postfix_sink: LogSink, hostname: str | None = None,
                 dovecot_sink: LogSink | None = None, dovecot_info_sink: LogSink | None = None,
                 dovecot_timestamp_format: str = DOVECOT_DEFAULT_TIMESTAMP):
        self.postfix_sink = postfix_sink
        self.hostname = hostname or system_hostname()
        self.dovecot_sink = dovecot_sink
        self.dovecot_info_sink = dovecot_info_sink
        self.dovecot_timestamp_format = dovecot_timestamp_format

    def postfix(self, process: str, syslog_name: str = "postfix") -> PostfixLogger:
        return PostfixLogger(self.postfix_sink, f"{syslog_name}/{process}", self.hostname)

    def dovecot(self, service: str) -> DovecotLogger:
        if self.dovecot_sink is None:
            return DovecotLogger(self.postfix_sink, service, self.hostname, syslog_style=True)
        return DovecotLogger(self.dovecot_sink, service, self.hostname, syslog_style=False,
                             timestamp_format=self.dovecot_timestamp_format,
                             info_sink=self.dovecot_info_sink)

    def sinks(self) -> list[LogSink]:
        found: list[LogSink] = []
        for sink in (self.postfix_sink, self.dovecot_sink, self.dovecot_info_sink):
            if sink is not None and all(sink is not seen for seen in found):
                found.append(sink)
        return found

    def reopen(self) -> None:
        for sink in self.sinks():
            try:
                sink.reopen()
            except OSError:
                pass  # keep writing to the old file rather than lose lines

    def close(self) -> None:
        for sink in self.sinks():
            sink.close()
