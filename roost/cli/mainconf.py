"""main.cf settings for the command-line tools that only need Postfix parameters.

The Postfix tools (sendmail, postqueue, postsuper, mailq) read main.cf from `$MAIL_CONFIG`
or their `-c`/`-C` directory (default /etc/roost); they do not need master.cf listeners or
dovecot.conf, so they parse main.cf alone. Configuration warnings are the server's business
(`roost check`) and are not repeated by every tool run.
Invariants: a missing or broken main.cf gives Postfix's defaults, unless `required` (then
ConfigMissing with Postfix's message).
Security: reads the configuration directory only.
"""

from __future__ import annotations

import os

from roost.config.diagnostics import Diagnostics
from roost.config.main_cf import parse_main_cf
from roost.config.settings import Settings

DEFAULT_CONFIG_DIR = "/etc/roost"


def config_directory(explicit: str | None = None) -> str:
    return explicit or os.environ.get("MAIL_CONFIG") or DEFAULT_CONFIG_DIR


class ConfigMissing(Exception):
    """main.cf is not there (postcat, mailq, postqueue -p stop, as Postfix's tools do)."""


def main_settings(config_dir: str, *, required: bool = False) -> Settings:
    path = os.path.join(config_dir, "main.cf")
    if required and not os.path.isfile(path):
        raise ConfigMissing(f"open {path}: No such file or directory")
    diags = Diagnostics()
    return Settings.from_main_cf(parse_main_cf(path, diags), config_dir, diags)


def tool_logger(settings: Settings, process: str):
    """A Postfix logger for a command-line tool (`postfix/postsuper[pid]: ...`): into
    maillog_file, else $data_directory/maillog where the daemonised server logs; lines are
    dropped when neither can be written (the tool still reports on stderr)."""
    from roost.log import LogSetup, LogSink  # noqa: PLC0415 - logging only when used

    path = (settings.get("maillog_file") or "").strip() or os.path.join(
        settings.get("data_directory"), "maillog")
    try:
        sink = LogSink(path=path)
    except OSError:
        sink = LogSink(path=os.devnull)
    return LogSetup(sink).postfix(process, settings.get("syslog_name") or "postfix")
