"""sendmail → maildrop → pickup → cleanup → incoming, with the real command and queue files."""

from __future__ import annotations

import os
import pwd
import stat
import subprocess
import sys

import pytest

from roost.cleanup import CleanupService
from roost.cli.sendmail import extract_recipients, parse_options, read_message, Usage
from roost.qmgr.pickup import Pickup, prepare_maildrop
from roost.queue import QueueLayout, read_envelope
from roost.queue.reader import read_content
from tests.conftest import RecordingLog
from tests.qmgr.test_manager import settings_for


@pytest.fixture
def config(tmp_path):
    directory = tmp_path / "etc"
    directory.mkdir()
    (directory / "main.cf").write_text(f"queue_directory = {tmp_path}/q\nmyhostname = mx.example.test\n"
                                       "mydomain = example.test\nmyorigin = $mydomain\n"
                                       "compatibility_level = 3.6\n")
    settings = settings_for(tmp_path / "q", "mydomain = example.test\nmyorigin = $mydomain\n")
    layout = QueueLayout.from_settings(settings)
    layout.ensure()
    prepare_maildrop(layout)
    return directory, settings, layout


def sendmail(config_dir, *args, stdin: bytes):
    env = dict(os.environ, MAIL_CONFIG=str(config_dir))
    return subprocess.run([sys.executable, "-c", "import sys; from roost.cli import sendmail; "
                           "sys.exit(sendmail.main(['sendmail'] + sys.argv[1:]))", *args],
                          input=stdin, capture_output=True, env=env, timeout=60)


def test_sendmail_drops_and_pickup_queues(config):
    config_dir, settings, layout = config
    done = sendmail(config_dir, "-f", "cron@example.test", "-N", "failure,delay", "bob",
                    "carol@remote.example", stdin=b"Subject: backup\n\nall fine\n.\nnot read\n")
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(os.stat(layout.queue_dir("maildrop")).st_mode) == 0o1733
    dropped = list(layout.scan("maildrop"))
    assert len(dropped) == 1
    log = RecordingLog()
    pickup = Pickup(layout, CleanupService(settings, RecordingLog()), log)
    assert pickup.scan() == 1
    assert not list(layout.scan("maildrop"))
    [(queue_id, path)] = list(layout.scan("incoming"))
    qf = read_envelope(path)
    assert qf.sender == "cron@example.test"
    assert [r.address for r in qf.recipients] == ["bob@example.test", "carol@remote.example"]
    assert all(r.notify for r in qf.recipients)
    content = read_content(qf)
    assert b"Subject: backup\n" in content and content.endswith(b"\nall fine\n")
    assert b"not read" not in content
    assert f"(Postfix, from userid {os.getuid()})".encode() in content
    assert (f"{queue_id}: uid={os.getuid()} from=<cron@example.test>"
            in [text for _level, text in log.lines])


def test_sendmail_t_extracts_and_removes_bcc(config):
    config_dir, settings, layout = config
    message = (b"From: me\nTo: a@x.example, B <b@x.example>\nCc: c@x.example\n"
               b"Bcc: hidden@x.example\n continued@x.example\nSubject: s\n\n.\nbody after dot\n")
    done = sendmail(config_dir, "-t", "-i", stdin=message)
    assert done.returncode == 0, done.stderr
    [(queue_id, path)] = list(layout.scan("maildrop"))
    qf = read_envelope(path)
    assert [r.address for r in qf.recipients] == ["a@x.example", "b@x.example", "c@x.example",
                                                  "hidden@x.example", "continued@x.example"]
    content = read_content(qf)
    assert b"Bcc" not in content and b"body after dot" in content
    assert qf.sender == pwd.getpwuid(os.getuid()).pw_name


def test_sendmail_refuses_without_recipients(config):
    config_dir, _settings, layout = config
    assert sendmail(config_dir, stdin=b"x\n").returncode == 64
    assert sendmail(config_dir, "-t", stdin=b"Subject: none\n\nx\n").returncode == 65
    assert not list(layout.scan("maildrop"))


def test_options():
    opts, recipients = parse_options(["-oi", "-odb", "-fme@x", "-F", "Me", "-v", "a", "--", "-b"])
    assert opts["sender"] == "me@x" and opts["fullname"] == "Me" and not opts["dots"]
    assert recipients == ["a", "-b"]
    for bad in (["-bs"], ["-Z"], ["-f"]):
        with pytest.raises(Usage):
            parse_options(bad)


def test_message_reading_and_extraction():
    import io
    assert read_message(io.BytesIO(b"a\r\nb\r\n..\r\n.\r\nc\n"), True) == b"a\nb\n..\n"
    assert read_message(io.BytesIO(b"a\n.\nc"), False) == b"a\n.\nc\n"
    found, rest = extract_recipients(b"To: a@b\nSubject: x\n")
    assert found == ["a@b"] and rest == b"To: a@b\nSubject: x\n"
