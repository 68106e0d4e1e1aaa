"""Where the mail log goes, decided from the configuration (postconf(5) maillog_file;
Dovecot log_path, info_log_path, log_timestamp).

Postfix lines: `maillog_file` when set; else stderr when the master runs in the foreground
(`start-fg`, like Postfix's `postfix start-fg` with its log going to the terminal); else
`$data_directory/maillog` (roost has no syslog daemon to rely on).
Dovecot lines: Dovecot's `log_path` when it names a file (Dovecot's own line format, with
`info_log_path` for informational lines when set); with `log_path = syslog` (the default)
they join the Postfix destination in syslog style.

Invariants: files are opened once here, by the master, before privileges are dropped;
workers inherit the descriptors. Opening errors raise OSError with the file name.
Security: a log file is created 0640.
"""

from __future__ import annotations

import os

from roost.log import DOVECOT_DEFAULT_TIMESTAMP, LogSetup, LogSink

MAILLOG_NAME = "maillog"


def dovecot_setting(config, name: str):
    """The top-level Dovecot Setting `name` of `config.dovecot` (None when unset or no dovecot.conf).

    Unset means Dovecot's default, which for the settings read here (log_path = syslog,
    info_log_path = "", log_timestamp, ssl_cert/ssl_key = "") is what None stands for."""
    root = getattr(getattr(config, "dovecot", None), "root", None)
    if root is None:
        return None
    return root.settings.get(name)


def dovecot_value(config, name: str) -> str | None:
    setting = dovecot_setting(config, name)
    return None if setting is None else setting.value


def dovecot_pem_source(config, name: str) -> str | None:
    """ssl_cert / ssl_key as roost.net.tls.dovecot_context takes it: `<path` when the value was
    read from a file (so no copy of a key is ever written), else the inline PEM text."""
    setting = dovecot_setting(config, name)
    if setting is None:
        return None
    path = getattr(setting, "path", None)
    return f"<{path}" if path else setting.value


def _sink(path: str, cache: dict[str, LogSink]) -> LogSink:
    if path not in cache:
        cache[path] = LogSink(path=path)
    return cache[path]


def open_logs(config, foreground: bool) -> LogSetup:
    cache: dict[str, LogSink] = {}
    main = config.main
    maillog_file = (main.get("maillog_file") or "").strip()
    if maillog_file:
        postfix_sink = _sink(maillog_file, cache)
    elif foreground:
        postfix_sink = LogSink.stderr()
    else:
        postfix_sink = _sink(os.path.join(main.get("data_directory"), MAILLOG_NAME), cache)

    dovecot_sink = dovecot_info_sink = None
    timestamp_format = DOVECOT_DEFAULT_TIMESTAMP
    log_path = (dovecot_value(config, "log_path") or "syslog").strip()
    if log_path and log_path != "syslog":
        dovecot_sink = _sink(log_path, cache)
        info_path = (dovecot_value(config, "info_log_path") or "").strip()
        if info_path and info_path != "syslog":
            dovecot_info_sink = _sink(info_path, cache)
        timestamp_format = dovecot_value(config, "log_timestamp") or DOVECOT_DEFAULT_TIMESTAMP
    return LogSetup(postfix_sink, dovecot_sink=dovecot_sink, dovecot_info_sink=dovecot_info_sink,
                    dovecot_timestamp_format=timestamp_format)
