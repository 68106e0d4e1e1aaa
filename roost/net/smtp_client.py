"""The socket loop around one roost.proto.smtp_client.ClientSession (smtp(8) / lmtp(8) client).

Connects (TCP with smtp_connect_timeout and smtp_bind_address, or a unix socket for LMTP),
moves bytes between the socket and the sans-IO session, starts TLS when the session asks
(RFC 3207; asyncio StreamWriter.start_tls), streams the message content in 64 KiB chunks, and
applies the per-stage timeouts (from roost.delivery.client_settings: smtp_helo_timeout ...
smtp_quit_timeout, lmtp_* for LMTP). Belongs with roost/net (DESIGN §3: only roost/net
touches sockets); kept here until the lead moves it to roost/net/smtp_client.py.

Invariants: `run_session` never raises; every exit path closes the socket unless the session
ended reusable and the caller keeps it (roost.delivery.connection_cache). Connection errors
come back as ConnectFailure with Postfix's text `connect to host[addr]:port: Connection refused`.
Security: TLS verification follows smtp_tls_security_level (may/encrypt: encrypted but not
authenticated, as Postfix; verify/secure: certificate checked against smtp_tls_CAfile).
"""

from __future__ import annotations

import asyncio
import os
import ssl
from dataclasses import dataclass
from typing import BinaryIO, Callable

from roost.delivery.destination import Target
from roost.proto.smtp_client import ClientSession, NeedContent, NeedTls

CHUNK = 64 * 1024
STAGE_TIMEOUT = {"greeting": "helo", "ehlo": "helo", "helo": "helo", "lhlo": "helo", "auth": "helo",
                 "starttls": "starttls", "mail": "mail", "rcpt": "rcpt", "data": "data_init",
                 "content": "data_xfer", "dot": "data_done", "dot_ignored": "data_done", "quit": "quit",
                 "rset": "rset"}


@dataclass(frozen=True)
class ConnectFailure:
    text: str
    dsn: str = "4.4.1"


VERSIONS = {"SSLv2": None, "SSLv3": None, "TLSv1": ssl.TLSVersion.TLSv1, "TLSv1.1": ssl.TLSVersion.TLSv1_1,
            "TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}
ORDER = ["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"]
# Postfix's cipher grades (tls_high_cipherlist, tls_medium_cipherlist ...) as OpenSSL strings
GRADES = {"high": "HIGH:!aNULL", "medium": "HIGH:MEDIUM:!aNULL", "low": "DEFAULT", "export": "DEFAULT",
          "null": "DEFAULT"}


def protocol_range(protocols) -> tuple[str, str]:
    """(lowest, highest) TLS version allowed by a Postfix protocol list: `>=TLSv1.2`,
    `<=TLSv1.2`, `!TLSv1, !TLSv1.1`, or plain names (those and only those)."""
    allowed = list(ORDER)
    named = []
    for token in (t.strip() for t in protocols):
        if token.startswith(">=") and token[2:] in ORDER:
            allowed = [v for v in allowed if ORDER.index(v) >= ORDER.index(token[2:])]
        elif token.startswith("<=") and token[2:] in ORDER:
            allowed = [v for v in allowed if ORDER.index(v) <= ORDER.index(token[2:])]
        elif token.startswith("!") and token[1:] in allowed:
            allowed.remove(token[1:])
        elif token in ORDER:
            named.append(token)
    if named:
        allowed = [v for v in allowed if v in named]
    return (allowed[0], allowed[-1]) if allowed else ("TLSv1.2", "TLSv1.3")


def tls_context(level: str, cafile: str = "", capath: str = "", protocols=(), ciphers: str = "medium",
                exclude=()) -> ssl.SSLContext | None:
    """The client context for smtp_tls_security_level (roost.delivery.client_settings)."""
    if level in ("", "none"):
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    lowest, highest = protocol_range(protocols)
    try:
        # below TLSv1.2 the system's OpenSSL policy decides (Python deprecates older floors)
        if lowest in ("TLSv1.2", "TLSv1.3"):
            context.minimum_version = VERSIONS[lowest]
        if highest != "TLSv1.3":
            context.maximum_version = VERSIONS[highest]
        cipher_list = GRADES.get((ciphers or "medium").lower(), GRADES["medium"])
        context.set_ciphers(cipher_list + "".join(f":!{name}" for name in exclude))
    except (ValueError, ssl.SSLError):
        pass   # an OpenSSL build without that version or cipher set keeps its defaults
    if level in ("verify", "secure"):
        if cafile or capath:
            context.load_verify_locations(cafile=cafile or None, capath=capath or None)
        else:
            context.load_default_certs()
        context.check_hostname = True
        context.verify_mode = ssl.CERT_REQUIRED
    else:   # may / encrypt: Postfix encrypts without authenticating the server
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


async def connect(target: Target, connect_timeout: float, bind_address: str = ""):
    """(reader, writer) or ConnectFailure."""
    where = target.label if target.kind == "unix" else f"{target.label}:{target.port}"   # as Postfix logs it
    try:
        if target.kind == "unix":
            coro = asyncio.open_unix_connection(target.address)
        else:
            local = (bind_address, 0) if bind_address else None
            coro = asyncio.open_connection(target.address, target.port, local_addr=local)
        if connect_timeout > 0:
            return await asyncio.wait_for(coro, connect_timeout)
        return await coro
    except (asyncio.TimeoutError, TimeoutError):
        return ConnectFailure(f"connect to {where}: Connection timed out")
    except OSError as exc:
        # asyncio's own strerror ("Connect call failed ...") is not what Postfix prints
        reason = os.strerror(exc.errno) if exc.errno else (exc.strerror or str(exc))
        return ConnectFailure(f"connect to {where}: {reason}")
    except Exception as exc:   # bad address text and the like
        return ConnectFailure(f"connect to {where}: {exc}")


async def run_session(session: ClientSession, reader, writer, content: Callable[[], BinaryIO],
                      timeouts: dict[str, float], *, tls: ssl.SSLContext | None = None,
                      server_name: str | None = None, on_connected: Callable[[], None] | None = None,
                      log=None, keep: bool = False) -> bool:
    """Runs the conversation; True when the connection was left open for reuse (`keep` and
    the session ended with a successful RSET), else the socket is closed."""
    connected_marked = False
    kept = False
    try:
        while not session.closed:
            out = session.data_to_send()
            if out:
                writer.write(out)
                await asyncio.wait_for(writer.drain(), timeouts["data_xfer"])
            event = session.next_event()
            if isinstance(event, NeedTls):
                if tls is None:
                    session.tls_failed("no TLS context")
                    continue
                try:
                    await asyncio.wait_for(writer.start_tls(tls, server_hostname=server_name),
                                           timeouts["starttls"])
                except (ssl.SSLError, OSError, asyncio.TimeoutError, TimeoutError) as exc:
                    session.tls_failed(str(exc) or type(exc).__name__)
                    continue
                _log_tls(log, writer, server_name, tls)
                session.tls_started()
                continue
            if isinstance(event, NeedContent):
                if not connected_marked and on_connected:
                    on_connected()
                    connected_marked = True
                await _stream(session, writer, content, timeouts["data_xfer"])
                continue
            if not session.expecting_reply:
                break
            if session.finished and session.stage == "quit":   # do not linger on QUIT's reply
                wait = min(timeouts["quit"], 2.0)
            else:
                wait = timeouts[STAGE_TIMEOUT.get(session.stage, "helo")]
            try:
                data = await asyncio.wait_for(reader.read(CHUNK), wait)
            except (asyncio.TimeoutError, TimeoutError):
                session.timed_out()
                continue
            if data:
                session.receive(data)
            else:
                session.receive_eof()
    except (asyncio.TimeoutError, TimeoutError):
        session.timed_out()
    except (OSError, ssl.SSLError, EOFError, asyncio.IncompleteReadError):
        session.receive_eof()
    finally:
        if not connected_marked and on_connected:
            on_connected()
        kept = keep and session.reusable and not session.data_to_send()
        if not kept:
            await close_quietly(writer)
    return kept


async def close_quietly(writer) -> None:
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), 1.0)
    except Exception:
        pass


async def _stream(session: ClientSession, writer, content: Callable[[], BinaryIO], timeout: float) -> None:
    with content() as source:
        while True:
            chunk = source.read(CHUNK)
            if not chunk:
                break
            session.send_content(chunk)
            writer.write(session.data_to_send())
            await asyncio.wait_for(writer.drain(), timeout)
    session.end_content()


def _log_tls(log, writer, server_name, context) -> None:
    if log is None:
        return
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        peer = writer.get_extra_info("peername")
        cipher = ssl_object.cipher()
        # Postfix's words: Verified (chain and name), Trusted (chain only), Untrusted (neither)
        if context.verify_mode == ssl.CERT_REQUIRED:
            trust = "Verified" if context.check_hostname else "Trusted"
        else:
            trust = "Untrusted"
        where = f"{server_name}[{peer[0]}]:{peer[1]}" if peer else str(server_name)
        log.info(f"{trust} TLS connection established to {where}: {ssl_object.version()} with cipher "
                 f"{cipher[0]} ({cipher[2]}/{cipher[2]} bits)")
    except Exception:
        pass
