"""Binding the master's listening sockets: inet (IPv4/IPv6) and UNIX-domain with owner and mode.

Errors read like Postfix's master: `bind 127.0.0.1 port 2025: Address already in use`,
`bind /path/auth: Permission denied`. A UNIX socket path left behind by a dead server is
removed before binding; a path a live server still accepts on is "Address already in use".
Dovecot's unix_listener `mode`, `user` and `group` are applied (default mode 0600, Dovecot's).

Invariants: a socket is returned listening, or BindError is raised and nothing stays bound;
UNIX sockets are created under a 0177 umask and chmod-ed afterwards, so no client can connect
through wider permissions in between.
Security: owner/group are resolved by name through the system databases only.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import socket
import stat

DEFAULT_UNIX_MODE = 0o600
LISTEN_BACKLOG = socket.SOMAXCONN


class BindError(Exception):
    """str() is the Postfix-style message without the `fatal:` prefix."""


def endpoint_key(listener) -> tuple:
    """What makes two listeners the same socket (kept open across a reload)."""
    if listener.family == "unix":
        return ("unix", os.path.abspath(listener.path))
    return ("inet", listener.host or "", int(listener.port))


def bind_listener(listener) -> socket.socket:
    if listener.family == "unix":
        return _bind_unix(listener)
    return _bind_inet(listener.host, listener.port)


def _bind_inet(host: str | None, port: int) -> socket.socket:
    shown = host or "0.0.0.0"
    family = socket.AF_INET6 if host and ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            # inet_protocols lists IPv4 and IPv6 separately; an IPv6 socket must not grab IPv4.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host or "", int(port)))
        sock.listen(LISTEN_BACKLOG)
    except OSError as exc:
        sock.close()
        raise BindError(f"bind {shown} port {port}: {exc.strerror or exc}") from None
    except (OverflowError, TypeError, ValueError) as exc:
        sock.close()
        raise BindError(f"bind {shown} port {port}: {exc}") from None
    sock.set_inheritable(False)  # workers get it through fork, never through exec
    return sock


def _unix_in_use(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
        return True
    except OSError:
        return False
    finally:
        probe.close()


def _owner_ids(listener) -> tuple[int, int]:
    uid = gid = -1
    if listener.user:
        try:
            uid = pwd.getpwnam(listener.user).pw_uid
        except KeyError:
            raise BindError(f"bind {listener.path}: unknown user {listener.user}") from None
    if listener.group:
        try:
            gid = grp.getgrnam(listener.group).gr_gid
        except KeyError:
            raise BindError(f"bind {listener.path}: unknown group {listener.group}") from None
    return uid, gid


def apply_unix_ownership(listener) -> None:
    """chmod/chown a bound UNIX socket to the listener's mode, user and group."""
    path = listener.path
    uid, gid = _owner_ids(listener)
    try:
        if uid != -1 or gid != -1:
            os.chown(path, uid, gid)
        os.chmod(path, DEFAULT_UNIX_MODE if listener.mode is None else listener.mode)
    except OSError as exc:
        raise BindError(f"bind {path}: set owner/mode: {exc.strerror or exc}") from None


def _bind_unix(listener) -> socket.socket:
    path = os.path.abspath(listener.path)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise BindError(f"bind {path}: {exc.strerror}") from None
    if mode is not None:
        if not stat.S_ISSOCK(mode):
            raise BindError(f"bind {path}: {os.strerror(errno.EEXIST)} (not a socket)")
        if _unix_in_use(path):
            raise BindError(f"bind {path}: {os.strerror(errno.EADDRINUSE)}")
        os.unlink(path)  # a leftover of a server that is gone
    try:
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    except OSError as exc:
        raise BindError(f"bind {path}: {exc.strerror}") from None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        sock.bind(path)
    except OSError as exc:
        sock.close()
        raise BindError(f"bind {path}: {exc.strerror or exc}") from None
    finally:
        os.umask(old_umask)
    try:
        apply_unix_ownership(listener)
        sock.listen(LISTEN_BACKLOG)
    except (BindError, OSError) as exc:
        sock.close()
        _unlink_quietly(path)
        if isinstance(exc, BindError):
            raise
        raise BindError(f"bind {path}: {exc.strerror or exc}") from None
    sock.set_inheritable(False)
    return sock


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def remove_unix_path(key: tuple) -> None:
    """Remove the file of a closed UNIX listener (no-op for inet keys)."""
    if key[0] == "unix":
        _unlink_quietly(key[1])
