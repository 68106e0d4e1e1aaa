"""`roost doveadm pw` against Debian's `doveadm pw`: same output, messages and exit codes."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import subprocess
import termios
import time

import pytest

from tests.conftest import REPO, require_tool, roost_cmd, run_roost

SHA_OF_SECRET = "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ="


def real(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([require_tool("doveadm"), "-O", "pw", *args], capture_output=True,
                          text=True, input=input, timeout=60, cwd=REPO)


def ours(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return run_roost("doveadm", "pw", *args, input=input)


def same(args: tuple[str, ...], input: str | None = None, compare_stderr: bool = True):
    expected, got = real(*args, input=input), ours(*args, input=input)
    assert (got.returncode, got.stdout) == (expected.returncode, expected.stdout)
    if compare_stderr:
        assert got.stderr == expected.stderr
    return got


@pytest.mark.interop
@pytest.mark.parametrize("args", [
    ("-t", SHA_OF_SECRET, "-p", "secret"),
    ("-t", SHA_OF_SECRET, "-p", "wrong"),
    ("-t", "{sha}5en6G6MezRroT3XKqkdPOmY/BfQ=", "-p", "secret"),
    ("-t", "{SHA}e5e9fa1ba31ecd1ae84f75caaa474f3a663f05f4", "-p", "secret"),
    ("-t", "5en6G6MezRroT3XKqkdPOmY/BfQ=", "-p", "secret"),
    ("-t", "{FOO}abc", "-p", "secret"),
    ("-t", "{SHA}abc", "-p", "secret"),
    ("-s", "FOO", "-p", "x"),
    ("-s", "sha256", "-p", "secret"),
    ("-s", "PLAIN", "-p", "a b", "-V"),
    ("-s", "CRAM-MD5", "-p", "secret", "-u", "bob"),
    ("-s", "PLAIN.HEX", "-p", "secret"),
    ("-s", "DIGEST-MD5", "-p", "secret", "-u", "bob@example.com"),
    ("-s", "DIGEST-MD5", "-p", "secret"),
])
def test_same_output_and_exit_code(args):
    same(args)


@pytest.mark.interop
@pytest.mark.parametrize("args", [("-x",), ("-s", "SHA", "-p", "x", "extra")])
def test_usage_errors_exit_64(args):
    same(args, compare_stderr=False)


@pytest.mark.interop
@pytest.mark.parametrize("stdin", ["secret\nsecret\n", "secret\n", "", "a\nb\nsecret\nsecret\n"])
def test_password_from_non_terminal_stdin(stdin):
    got = same(("-s", "SHA"), input=stdin)
    assert got.stdout.startswith("{SHA}")


@pytest.mark.interop
def test_verify_password_from_stdin():
    same(("-t", SHA_OF_SECRET), input="secret\n")


@pytest.mark.interop
def test_default_scheme_and_verified_flag():
    got = ours("-p", "x", "-V")
    assert got.returncode == 0 and got.stdout.startswith("{CRYPT}$2y$05$")
    assert got.stdout.endswith(" (verified)\n")
    assert real("-t", got.stdout.split()[0], "-p", "x").returncode == 0


@pytest.mark.interop
def test_list_names_every_scheme_doveadm_verifies_for_issue_4():
    listed = set(ours("-l").stdout.split())
    assert {"CRYPT", "SHA512-CRYPT", "BLF-CRYPT", "ARGON2ID", "PBKDF2", "CRAM-MD5"} <= listed
    assert listed <= set(real("-l").stdout.split())


def converse(command: list[str], answers: list[str]) -> str:
    """Run `command` on a terminal, answering each password prompt; the whole transcript."""
    controller, terminal = pty.openpty()
    def take_terminal() -> None:  # doveadm opens /dev/tty: make the pty the controlling tty
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    process = subprocess.Popen(command, stdin=terminal, stdout=terminal, stderr=terminal,
                               cwd=REPO, preexec_fn=take_terminal)
    os.close(terminal)
    transcript, pending = b"", list(answers)
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(controller, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                transcript += chunk
                if pending and transcript.rstrip().endswith(b"password:"):
                    time.sleep(0.05)  # let the prompt switch echo off before answering
                    os.write(controller, pending.pop(0).encode() + b"\n")
            elif process.poll() is not None:
                break
    finally:
        process.wait(timeout=30)
        os.close(controller)
    return transcript.decode().replace("\r\n", "\n")


@pytest.mark.interop
def test_terminal_prompts_like_doveadm():
    answers = ["secret", "other", "secret", "secret"]
    expected = converse([require_tool("doveadm"), "-O", "pw", "-s", "SHA"], answers)
    got = converse([*roost_cmd(), "doveadm", "pw", "-s", "SHA"], answers)
    assert got == expected
    assert got.endswith(SHA_OF_SECRET + "\n") and "secret\n" not in got.replace("\n{", "{")
