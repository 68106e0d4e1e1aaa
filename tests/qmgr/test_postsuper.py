"""postsuper over real queue files: delete, hold, release, requeue, ALL, stdin, bad IDs."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from roost.queue import QueueLayout
from tests.qmgr.test_manager import enqueue, settings_for


def postsuper(config_dir, *args, stdin: str = ""):
    return subprocess.run([sys.executable, "-c", "import sys; from roost.cli import postsuper; "
                           "sys.exit(postsuper.main(['postsuper'] + sys.argv[1:]))",
                           "-c", str(config_dir), *args], input=stdin, text=True,
                          capture_output=True, timeout=60)


def setup(tmp_path):
    config_dir = tmp_path / "etc"
    config_dir.mkdir()
    (config_dir / "main.cf").write_text(f"queue_directory = {tmp_path}/q\n"
                                        f"data_directory = {tmp_path}/data\n")
    settings = settings_for(tmp_path / "q")
    return config_dir, settings, QueueLayout.from_settings(settings)


def ids(layout, queue):
    return sorted(queue_id for queue_id, _ in layout.scan(queue))


def test_hold_release_requeue_delete(tmp_path):
    config_dir, settings, layout = setup(tmp_path)
    first, second, third = (enqueue(settings, "a@b.example", "c@d.example") for _ in range(3))
    done = postsuper(config_dir, "-h", first, "-h", second)
    assert done.stderr == (f"postsuper: {first}: placed on hold\npostsuper: {second}: placed on hold\n"
                           "postsuper: Placed on hold: 2 messages\n")
    assert ids(layout, "hold") == sorted([first, second])
    done = postsuper(config_dir, "-H", first)
    assert done.stderr == f"postsuper: {first}: released from hold\npostsuper: Released from hold: 1 message\n"
    [(_, released)] = [item for item in layout.scan("deferred")]
    assert os.stat(released).st_mtime <= time.time()
    done = postsuper(config_dir, "-r", "ALL")
    assert done.stderr == "postsuper: Requeued: 3 messages\n"
    assert ids(layout, "maildrop") == sorted([first, second, third])
    done = postsuper(config_dir, "-d", "-", stdin=f"{first}\n{second}\n")
    assert done.stderr == (f"postsuper: {first}: removed\npostsuper: {second}: removed\n"
                           "postsuper: Deleted: 2 messages\n")
    assert ids(layout, "maildrop") == [third]
    log = (tmp_path / "data" / "maillog").read_text()
    assert f"postfix/postsuper[" in log and f"]: {first}: removed" in log


def test_bad_queue_id_is_skipped_with_a_warning(tmp_path):
    """Postfix 3.7: `postsuper: warning: invalid mail queue id: X`, exit status 0."""
    config_dir, _settings, _layout = setup(tmp_path)
    done = postsuper(config_dir, "-d", "../etc")
    assert done.returncode == 0
    assert done.stderr == ("postsuper: warning: invalid mail queue id: ../etc\n"
                           "postsuper: Deleted: 0 messages\n")


def test_operations_run_in_postfix_order(tmp_path):
    config_dir, settings, layout = setup(tmp_path)
    for _ in range(2):
        enqueue(settings, "a@b.example", "c@d.example")
    done = postsuper(config_dir, "-H", "ALL", "-h", "ALL", "-d", "AAAAAAAAAA")
    assert done.stderr == ("postsuper: Deleted: 0 messages\npostsuper: Placed on hold: 2 messages\n"
                           "postsuper: Released from hold: 2 messages\n")


def postqueue(config_dir, *args):
    return subprocess.run([sys.executable, "-c", "import sys; from roost.cli import postqueue; "
                           "sys.exit(postqueue.main(['postqueue'] + sys.argv[1:]))",
                           "-c", str(config_dir), *args], text=True, capture_output=True,
                          timeout=60)


def test_postqueue_schedules_and_pokes_the_queue_manager(tmp_path):
    import socket

    config_dir, settings, layout = setup(tmp_path)
    first = enqueue(settings, "a@b.example", "x@far.example")
    second = enqueue(settings, "a@b.example", "y@other.example")
    later = time.time() + 3600
    for queue_id in (first, second):
        target = os.path.join(layout.ensure_directory("deferred", queue_id), queue_id)
        os.rename(layout.path("incoming", queue_id), target)
        os.utime(target, (later, later))
    # nobody listens: a flush says the mail system is down
    done = postqueue(config_dir, "-f")
    assert done.returncode == 69 and "mail system is down" in done.stderr
    trigger = os.path.join(settings.get("queue_directory"), "public", "qmgr")
    os.makedirs(os.path.dirname(trigger), exist_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(trigger)
    listener.settimeout(5)
    try:
        assert postqueue(config_dir, "-f").returncode == 0
        assert listener.recv(16) == b"F"
        assert postqueue(config_dir, "-s", "far.example").returncode == 0
        assert listener.recv(16) == b"D"
        paths = dict(layout.scan("deferred"))
        assert os.stat(paths[first]).st_mtime <= time.time() < os.stat(paths[second]).st_mtime
        assert postqueue(config_dir, "-i", second).returncode == 0
        assert listener.recv(16) == b"D"
        assert os.stat(paths[second]).st_mtime <= time.time()
    finally:
        listener.close()
    assert postqueue(config_dir, "-x").returncode == 64
