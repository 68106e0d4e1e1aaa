"""smtp(8) and lmtp(8) delivery agents: one message to the servers of one nexthop.

Postfix's client behaviour (smtp(8), postconf(5) smtp_*/lmtp_*): the nexthop (transport
nexthop, else relayhost, else the recipient domain) is resolved to servers (MX in preference
order, A/AAAA fallback, `[host]:port` without MX; roost.delivery.destination); servers are
tried in turn until every recipient is settled: a connection failure or a soft (4xx / lost
connection / timeout) result moves the still-open recipients to the next server; 2xx is
sent, 5xx bounced (RFC 5321 §4.2.1). What remains deferred after the last server keeps the
last reason. smtp_tls_security_level (none / may / encrypt / verify / secure),
smtp_sasl_auth_enable with smtp_sasl_password_maps (`user:password` by server host name, by
nexthop as written, by nexthop domain), smtp_helo_name, smtp_bind_address, PIPELINING, SIZE,
8BITMIME, SMTPUTF8 and DSN parameters (roost.proto.smtp_client.session).

Results: relay=`host[addr]:port` once connected, `none` before; texts as Postfix logs them.
soft_bounce=yes turns every bounce into a deferral (dsn class 4), as in Postfix.

Invariants: `deliver` never raises (an unexpected error defers every open recipient with
4.3.0); one result and one log line per recipient, in request order.
Security: passwords come from smtp_sasl_password_maps and never reach a log line.
"""

from __future__ import annotations

import io
import time
from dataclasses import replace

from roost.delivery import DEFERRED, DeliveryRequest, RecipientResult, envelope_param
from roost.delivery.connection_cache import Cached, ConnectionCache
from roost.delivery.destination import Target, parse_nexthop, resolve_targets
from roost.delivery.logline import Timer, log_results
from roost.delivery.client_settings import ClientSettings, client_settings
from roost.net.smtp_client import ConnectFailure, connect, run_session, tls_context
from roost.proto.smtp_client import ClientSession, Envelope, Outcome, RcptSpec, SessionOptions


HEADER_SCAN = 256 * 1024


def content_size(opener) -> int | None:
    try:
        with opener() as handle:
            handle.seek(0, io.SEEK_END)
            return handle.tell()
    except Exception:
        return None


def needs_utf8(request: DeliveryRequest) -> bool:
    """Whether the envelope or the header holds non-ASCII (then SMTPUTF8 is required)."""
    if not request.sender.isascii() or not all(r.address.isascii() for r in request.recipients):
        return True
    try:
        with request.content() as source:
            head = source.read(HEADER_SCAN)
    except Exception:
        return True
    end = head.find(b"\r\n\r\n")
    return not (head if end < 0 else head[:end]).isascii()


def envelope_of(request: DeliveryRequest, size: int | None) -> Envelope:
    env = request.envelope
    # a true value means requested, as roost.cleanup reads the key ("", "no", "0": not requested)
    smtputf8 = envelope_param(env, "SMTPUTF8") not in (None, "", "False", "no", "0")
    return Envelope(
        sender=request.sender,
        recipients=tuple(RcptSpec(r.address, r.notify, r.orcpt) for r in request.recipients),
        size=size, body=envelope_param(env, "BODY"), smtputf8=smtputf8,
        utf8_required=smtputf8 and needs_utf8(request),
        ret=envelope_param(env, "RET"), envid=envelope_param(env, "ENVID"))


def password_for(maps: tuple[str, ...], target: Target, nexthop_text: str, host: str) -> tuple[str, str] | None:
    """smtp_sasl_password_maps: `user:password` by server host name, nexthop as written, domain."""
    if not maps:
        return None
    from roost.tables import open_table
    keys = [target.hostname, nexthop_text, host]
    for reference in maps:
        table = open_table(reference)
        for key in dict.fromkeys(k for k in keys if k):
            value = table.lookup(key)
            if value is not None:
                user, _, password = value.partition(":")
                return user, password
    return None


def _finish(request: DeliveryRequest, outcomes: dict[int, tuple[Outcome, str, str | None]],
            client: ClientSettings, conn_use: int = 1) -> list[RecipientResult]:
    results = []
    for index, recipient in enumerate(request.recipients):
        outcome, relay, remote = outcomes[index]
        status, dsn = outcome.status, outcome.dsn
        if client.soft_bounce and status == "bounced":
            status, dsn = DEFERRED, "4" + dsn[1:]
        results.append(RecipientResult(recipient, status, dsn, outcome.text, relay,
                                       remote_reply=outcome.reply, remote_mta=remote,
                                       diagnostic_type="lmtp" if client.lmtp else "smtp", conn_use=conn_use))
    return results


async def deliver(request: DeliveryRequest, settings, *, resolver, log, lmtp: bool | None = None,
                  clock=None, cache: ConnectionCache | None = None) -> list[RecipientResult]:
    """`cache`: the queue manager's ConnectionCache when it has more mail for this
    destination (smtp_connection_cache_on_demand); None: one connection per delivery."""
    timer = Timer(request, clock) if clock else Timer(request)
    lmtp = request.transport == "lmtp" if lmtp is None else lmtp
    try:
        results = await _deliver(request, client_settings(settings, lmtp), resolver, log, timer, cache)
    except Exception as exc:   # the contract: never raise
        results = [RecipientResult(r, DEFERRED, "4.3.0", f"unexpected error in delivery agent: {exc!r}", "none")
                   for r in request.recipients]
    log_results(log, request.queue_id, results, timer)
    return results


async def _deliver(request, client: ClientSettings, resolver, log, timer: Timer,
                   cache: ConnectionCache | None) -> list[RecipientResult]:
    lmtp = client.lmtp
    prefix = "lmtp" if lmtp else "smtp"
    nexthop_text = request.nexthop or client.relayhost
    if not nexthop_text and request.recipients:
        nexthop_text = request.recipients[0].address.rpartition("@")[2]
    nexthop = parse_nexthop(nexthop_text, lmtp=lmtp)
    default_port = int(client.tcp_port) if client.tcp_port.isdigit() else (24 if lmtp else 25)
    targets, failure = await resolve_targets(
        nexthop, default_port, resolver, address_limit=client.mx_address_limit,
        family_pref=client.address_preference, randomize=client.randomize)
    if nexthop.kind == "unix":   # Postfix names a unix-domain LMTP peer myhostname[path]
        targets = [replace(t, hostname=client.myhostname or "localhost") for t in targets]
    for relay in client.fallback_relay:   # smtp_fallback_relay: destinations not found or unreachable
        extra, _ = await resolve_targets(parse_nexthop(relay), default_port, resolver,
                                         address_limit=client.mx_address_limit)
        targets += [t for t in extra if t not in targets]
        failure = None if targets else failure
    outcomes: dict[int, tuple[Outcome, str, str | None]] = {}
    if failure is not None:
        for index in range(len(request.recipients)):
            outcomes[index] = (Outcome(failure.status, failure.dsn, failure.text), "none", None)
        return _finish(request, outcomes, client)

    level = client.tls_level
    context = tls_context(level, client.tls_cafile, client.tls_capath, client.tls_protocols, client.tls_ciphers,
                          client.tls_exclude_ciphers)
    timeouts = client.timeouts
    size = content_size(request.content)
    open_indexes = list(range(len(request.recipients)))
    last: dict[int, tuple[Outcome, str, str | None]] = {}
    connect_failure: ConnectFailure | None = None
    cache_key = (prefix, nexthop_text.lower(), level)

    def envelope_for(indexes: list[int]) -> Envelope:
        sub = [request.recipients[i] for i in indexes]
        return replace(envelope_of(request, size), recipients=tuple(RcptSpec(r.address, r.notify, r.orcpt) for r in sub))

    def options_for(target: Target) -> SessionOptions:
        auth = password_for(client.password_maps, target, nexthop_text, nexthop.host) if client.sasl_enable else None
        return SessionOptions(
            peer=target.label, helo_name=client.helo_name, lmtp=lmtp, tls_level=level,
            tls_possible=context is not None, auth=auth, mechanism_filter=client.mechanism_filter,
            security_options=client.security_options, tls_security_options=client.tls_security_options,
            never_send_ehlo=client.never_send_ehlo, skip_5xx_greeting=client.skip_5xx_greeting,
            line_limit=client.line_limit)

    cached = cache.take(cache_key) if cache is not None else None
    if cached is not None:
        timer.mark_connected()
        session = ClientSession(envelope_for(open_indexes), options_for(cached.target), resume=cached.state,
                                keep_alive=True)
        kept = await run_session(session, cached.reader, cached.writer, request.content, timeouts, log=log, keep=True)
        if session.replies:   # the cached connection worked; else it had gone stale: start afresh
            if kept:
                cached.state = session.resume_state()
                cache.put(cache_key, cached)
            for index in open_indexes:
                outcome = session.outcomes.get(index) or Outcome(
                    DEFERRED, "4.4.2", f"lost connection with {cached.target.label} while sending message body")
                outcomes[index] = (outcome, cached.target.relay, cached.target.hostname)
            return _finish(request, outcomes, client, conn_use=cached.uses)

    sessions = 0
    for position, target in enumerate(targets):
        if not open_indexes:
            break
        if client.mx_session_limit and sessions >= client.mx_session_limit:
            break
        connection = await connect(target, client.connect_timeout, client.bind_address)
        if isinstance(connection, ConnectFailure):
            connect_failure = connection
            for index in open_indexes:
                if index not in last or last[index][1] == "none":
                    last[index] = (Outcome(DEFERRED, connection.dsn, connection.text, retry_elsewhere=True), "none", None)
            continue
        sessions += 1
        opened = time.monotonic()
        reader, writer = connection
        envelope = envelope_for(open_indexes)
        options = options_for(target)
        session = ClientSession(envelope, options, keep_alive=cache is not None)
        kept = await run_session(session, reader, writer, request.content, timeouts, tls=context,
                                 server_name=target.hostname if target.kind == "inet" else None,
                                 on_connected=timer.mark_connected, log=log, keep=cache is not None)
        if kept:
            cache.put(cache_key, Cached(reader, writer, session.resume_state(), target, opened))
        if level == "may" and any(o.dsn == "4.7.5" for o in session.outcomes.values()):
            # smtp_tls_security_level=may: a failed handshake is retried in plaintext (Postfix
            # does the same on its next attempt; here on a fresh connection at once)
            log.info(f"{request.queue_id}: TLS handshake failed with {target.label}; retrying without TLS")
            again = await connect(target, client.connect_timeout, client.bind_address)
            if not isinstance(again, ConnectFailure):
                session = ClientSession(envelope, replace(options, tls_level="none"))
                await run_session(session, again[0], again[1], request.content, timeouts,
                                  on_connected=timer.mark_connected, log=log)
        more_targets = position + 1 < len(targets)
        still_open = []
        for sub_index, index in enumerate(open_indexes):
            outcome = session.outcomes.get(sub_index) or Outcome(
                DEFERRED, "4.4.2", f"lost connection with {target.label} while sending message body")
            last[index] = (outcome, target.relay, target.hostname)
            if outcome.status == DEFERRED and outcome.retry_elsewhere and more_targets:
                still_open.append(index)
        open_indexes = still_open

    for index in range(len(request.recipients)):
        if index in last:
            outcomes[index] = last[index]
        else:
            text = connect_failure.text if connect_failure else "no server for the destination"
            outcomes[index] = (Outcome(DEFERRED, "4.4.1", text), "none", None)
    return _finish(request, outcomes, client)

