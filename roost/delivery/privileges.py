"""Running one delivery step with a recipient's privileges (local(8) "SECURITY").

When roost runs as root, mailbox, file and command deliveries happen as the recipient (or as
default_privs for aliases owned by root / non-user aliases): `run_as(uid, gid, fn, *args)`
forks, the child sets groups, gid and uid (in that order: after setuid it could not), runs
`fn` and sends its result or exception back through a pipe; the parent waits. Not root, or
already the wanted user: `fn` runs in-process. Callers in asyncio run this in a thread.

Invariants: the parent never changes its own ids; the child always leaves with os._exit.
Security: a child that cannot drop privileges fails instead of running as root.
"""

from __future__ import annotations

import os
import pickle
import pwd


def account(name: str) -> tuple[int, int, str] | None:
    """(uid, gid, home) of a system user, or None."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid, entry.pw_dir


def privs_of(name_or_id: str) -> tuple[int, int]:
    """default_privs and similar: a user name (or numeric uid) → (uid, gid)."""
    if name_or_id.isdigit():
        uid = int(name_or_id)
        try:
            return uid, pwd.getpwuid(uid).pw_gid
        except KeyError:
            return uid, uid
    found = account(name_or_id)
    return (found[0], found[1]) if found else (65534, 65534)


def runs_in_process(uid: int) -> bool:
    """run_as(uid, ...) needs no child: not root, or root delivering as root."""
    euid = os.geteuid()
    return euid != 0 or uid == euid


def run_as(uid: int, gid: int, fn, *args, **kwargs):
    if runs_in_process(uid):
        return fn(*args, **kwargs)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:   # child
        code = 0
        try:
            os.close(read_end)
            try:
                name = pwd.getpwuid(uid).pw_name
                os.initgroups(name, gid)
            except (KeyError, OSError):
                os.setgroups([gid])
            os.setgid(gid)
            os.setuid(uid)
            if os.getuid() != uid or os.geteuid() != uid:
                raise PermissionError("could not drop privileges")
            try:
                payload = pickle.dumps(("ok", fn(*args, **kwargs)))
            except BaseException as exc:   # sent back to the parent, raised there
                try:
                    payload = pickle.dumps(("error", exc))
                except Exception:
                    payload = pickle.dumps(("error", OSError(str(exc))))
            with os.fdopen(write_end, "wb") as out:
                out.write(payload)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as source:
        data = source.read()
    os.waitpid(pid, 0)
    if not data:
        raise OSError("delivery process failed to drop privileges")
    kind, value = pickle.loads(data)
    if kind == "error":
        raise value
    return value
