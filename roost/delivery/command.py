"""Delivery to a command (local(8) `|command`, mailbox_command; pipe(8)-like).

The command runs with the recipient's privileges (or default_privs), through /bin/sh -c
when it holds shell metacharacters (or always through local_command_shell when set), with
the environment local(8) documents: HOME, LOGNAME, USER, SHELL, SENDER, RECIPIENT, LOCAL,
DOMAIN, EXTENSION, ORIGINAL_RECIPIENT, plus export_environment names. Its input is the
message with a `From ` line and the delivery headers, LF line ends. It is killed after
command_time_limit.

Exit status (sysexits.h as Postfix maps it): 0 sent; 64..78 per SYSEXITS (75 and 71 defer,
the rest bounce with their DSN); any other status bounces "Command died with status N";
death by signal defers; the time limit bounces "Command time limit exceeded". Up to
OUTPUT_LIMIT bytes of the command's output are appended as ". Command output: ...".

Invariants: never raises; the child process is always reaped.
Security: the command text comes from aliases/.forward/configuration, never the message;
privileges are dropped in the child before exec (subprocess user=/group=).
"""

from __future__ import annotations

import asyncio
import os
import signal
from dataclasses import dataclass
from typing import BinaryIO

from roost.delivery.mailbox import lf_chunks, mbox_separator

OUTPUT_LIMIT = 2048
SHELL_META = set("\"'`\\$;&()|<>{}[]*?~\n#")
SYSEXITS = {
    64: ("5.3.0", "command line usage error"), 65: ("5.6.0", "data format error"),
    66: ("5.3.0", "cannot open input"), 67: ("5.1.1", "user unknown"),
    68: ("5.1.2", "host name unknown"), 69: ("5.3.0", "service unavailable"),
    70: ("5.3.0", "internal software error"), 71: ("4.3.0", "system resource problem"),
    72: ("5.3.0", "critical OS file missing"), 73: ("5.2.0", "can't create user output file"),
    74: ("5.3.0", "input/output error"), 75: ("4.3.0", "temporary failure"),
    76: ("5.5.0", "remote error in protocol"), 77: ("5.7.0", "permission denied"),
    78: ("5.3.5", "local configuration error"),
}


@dataclass(frozen=True)
class CommandResult:
    status: str      # sent | deferred | bounced
    dsn: str
    text: str
    output: str = ""  # the command's output, printable (pipe(8) quotes it on success)


def _printable(output: bytes) -> str:
    """Command output as Postfix quotes it: each unprintable character (newlines too) a space."""
    text = output[:OUTPUT_LIMIT].decode("utf-8", "replace")
    return "".join(c if c.isprintable() else " " for c in text)


def argv_for(command: str, shell: str = "") -> list[str]:
    if shell:
        return [*shell.split(), command] if "-c" in shell.split() else [*shell.split(), "-c", command]
    if SHELL_META & set(command):
        return ["/bin/sh", "-c", command]
    return command.split()


async def run_command(command: str, source: BinaryIO, *, sender: str, headers: bytes, env: dict[str, str],
                      uid: int | None, gid: int | None, timeout: float, shell: str = "",
                      cwd: str | None = None, argv: list[str] | None = None, from_line: bool = True,
                      body=None) -> CommandResult:
    """`argv` given (pipe(8)): run exactly that, no shell; `from_line`: start the input with
    the mbox `From ` line; `body`: the content chunks to send instead of `source` as LF text."""
    argv = argv if argv is not None else argv_for(command, shell)
    if not argv:
        return CommandResult("bounced", "5.3.5", "empty command")
    kwargs = {}
    if os.geteuid() == 0 and uid is not None and uid != 0:
        kwargs = {"user": uid, "group": gid, "extra_groups": []}
    try:
        process = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, env=env, cwd=cwd if cwd and os.path.isdir(cwd) else "/",
            start_new_session=True, **kwargs)
    except OSError as exc:
        return CommandResult("deferred", "4.3.0", f"cannot execute command \"{command}\": {exc.strerror}")

    async def feed() -> None:
        try:
            process.stdin.write((mbox_separator(sender) if from_line else b"") + headers)
            for chunk in (body if body is not None else lf_chunks(source)):
                process.stdin.write(chunk)
                await process.stdin.drain()
            await process.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass   # the command need not read everything (Postfix ignores EPIPE too)
        finally:
            try:
                process.stdin.close()
            except Exception:
                pass

    async def collect() -> bytes:
        data = b""
        while True:
            piece = await process.stdout.read(4096)
            if not piece:
                return data
            if len(data) < OUTPUT_LIMIT:
                data += piece

    timed_out = False
    try:
        output = (await asyncio.wait_for(asyncio.gather(feed(), collect(), process.wait()),
                                         timeout if timeout > 0 else None))[1]
    except (asyncio.TimeoutError, TimeoutError):
        timed_out = True
        output = b""
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        await process.wait()
    suffix = f". Command output: {_printable(output)}" if output.strip() else ""
    if timed_out:
        return CommandResult("bounced", "5.3.0", f"Command time limit exceeded: \"{command}\"")
    code = process.returncode
    if code == 0:
        return CommandResult("sent", "2.0.0", f"delivered to command: {command}", _printable(output))
    if code < 0:
        return CommandResult("deferred", "4.3.0", f"Command died with signal {-code}: \"{command}\"{suffix}")
    if code in SYSEXITS:
        dsn, text = SYSEXITS[code]
        return CommandResult("deferred" if dsn[0] == "4" else "bounced", dsn, text + suffix)
    return CommandResult("bounced", "5.3.0", f"Command died with status {code}: \"{command}\"{suffix}")
