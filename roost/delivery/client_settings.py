"""The smtp(8) / lmtp(8) client parameters, read once per delivery from Settings.

postconf(5) names verbatim, each read literally (so tests/config/test_implemented.py sees
them): the smtp_* set for smtp/relay, the lmtp_* set for lmtp. A timeout of 0 (or a name
Postfix does not have for LMTP) falls back to Postfix's default for that stage.

Invariants: a ClientSettings is frozen; building it never raises (Settings getters never do).
Security: passwords are not read here (smtp_sasl_password_maps is looked up per server).
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_TIMEOUT = {"helo": 300.0, "starttls": 300.0, "mail": 300.0, "rcpt": 300.0, "data_init": 120.0,
                   "data_xfer": 180.0, "data_done": 600.0, "quit": 300.0, "rset": 20.0}


@dataclass(frozen=True)
class ClientSettings:
    lmtp: bool
    myhostname: str
    relayhost: str
    tcp_port: str
    connect_timeout: float
    timeouts: dict
    helo_name: str
    bind_address: str
    tls_level: str
    tls_cafile: str
    tls_capath: str
    sasl_enable: bool
    password_maps: tuple[str, ...]
    security_options: tuple[str, ...]
    tls_security_options: tuple[str, ...]
    mechanism_filter: tuple[str, ...]
    mx_address_limit: int
    mx_session_limit: int
    randomize: bool
    address_preference: str
    never_send_ehlo: bool
    skip_5xx_greeting: bool
    fallback_relay: tuple[str, ...]
    soft_bounce: bool
    line_limit: int
    tls_protocols: tuple[str, ...] = ()      # smtp_tls_(mandatory_)protocols for the level in force
    tls_ciphers: str = "medium"              # smtp_tls_(mandatory_)ciphers grade
    tls_exclude_ciphers: tuple[str, ...] = ()


def _timeouts(values: dict[str, float]) -> dict[str, float]:
    return {stage: (values.get(stage) or 0.0) or default for stage, default in DEFAULT_TIMEOUT.items()}


def _smtp_tls_level(s) -> str:
    level = s.get("smtp_tls_security_level").strip().lower()
    if not level:   # the obsolete booleans, as Postfix still honours them
        level = "encrypt" if s.bool("smtp_enforce_tls") else "may" if s.bool("smtp_use_tls") else ""
    if level == "dane":   # no DNSSEC validation here: Postfix then falls back to "may"
        level = "may"
    return level or "none"


def _smtp_tls_choice(s, level: str) -> dict:
    """postconf(5): opportunistic TLS (may) uses smtp_tls_protocols / smtp_tls_ciphers /
    smtp_tls_exclude_ciphers, mandatory TLS (encrypt and up) the smtp_tls_mandatory_* ones."""
    if level == "may":
        return {"tls_protocols": tuple(s.list("smtp_tls_protocols")), "tls_ciphers": s.get("smtp_tls_ciphers"),
                "tls_exclude_ciphers": tuple(s.list("smtp_tls_exclude_ciphers"))}
    return {"tls_protocols": tuple(s.list("smtp_tls_mandatory_protocols")),
            "tls_ciphers": s.get("smtp_tls_mandatory_ciphers"),
            "tls_exclude_ciphers": tuple(s.list("smtp_tls_exclude_ciphers"))
            + tuple(s.list("smtp_tls_mandatory_exclude_ciphers"))}


def smtp_settings(s) -> ClientSettings:
    security = tuple(s.list("smtp_sasl_security_options"))
    return ClientSettings(
        lmtp=False, myhostname=s.get("myhostname"), relayhost=s.get("relayhost"),
        tcp_port=s.get("smtp_tcp_port"), connect_timeout=s.time("smtp_connect_timeout"),
        timeouts=_timeouts({"helo": s.time("smtp_helo_timeout"), "starttls": s.time("smtp_starttls_timeout"),
                            "mail": s.time("smtp_mail_timeout"), "rcpt": s.time("smtp_rcpt_timeout"),
                            "data_init": s.time("smtp_data_init_timeout"),
                            "data_xfer": s.time("smtp_data_xfer_timeout"),
                            "data_done": s.time("smtp_data_done_timeout"), "quit": s.time("smtp_quit_timeout"),
                            "rset": s.time("smtp_rset_timeout")}),
        helo_name=s.get("smtp_helo_name") or s.get("myhostname"), bind_address=s.get("smtp_bind_address"),
        tls_level=_smtp_tls_level(s), tls_cafile=s.get("smtp_tls_CAfile"), tls_capath=s.get("smtp_tls_CApath"),
        sasl_enable=s.bool("smtp_sasl_auth_enable"), password_maps=tuple(s.list("smtp_sasl_password_maps")),
        security_options=security,
        tls_security_options=tuple(s.list("smtp_sasl_tls_security_options")) or security,
        mechanism_filter=tuple(s.list("smtp_sasl_mechanism_filter")),
        mx_address_limit=s.int("smtp_mx_address_limit"), mx_session_limit=s.int("smtp_mx_session_limit"),
        randomize=s.bool("smtp_randomize_addresses"), address_preference=s.get("smtp_address_preference") or "any",
        never_send_ehlo=s.bool("smtp_never_send_ehlo"), skip_5xx_greeting=s.bool("smtp_skip_5xx_greeting"),
        fallback_relay=tuple(s.list("smtp_fallback_relay")), soft_bounce=s.bool("soft_bounce"),
        line_limit=s.int("smtp_line_length_limit"), **_smtp_tls_choice(s, _smtp_tls_level(s)))


def lmtp_settings(s) -> ClientSettings:
    security = tuple(s.list("lmtp_sasl_security_options"))
    return ClientSettings(
        lmtp=True, myhostname=s.get("myhostname"), relayhost="",
        tcp_port=s.get("lmtp_tcp_port"), connect_timeout=s.time("lmtp_connect_timeout"),
        timeouts=_timeouts({"helo": s.time("lmtp_lhlo_timeout"), "mail": s.time("lmtp_mail_timeout"),
                            "rcpt": s.time("lmtp_rcpt_timeout"), "data_init": s.time("lmtp_data_init_timeout"),
                            "data_xfer": s.time("lmtp_data_xfer_timeout"),
                            "data_done": s.time("lmtp_data_done_timeout"), "quit": s.time("lmtp_quit_timeout"),
                            "rset": s.time("lmtp_rset_timeout")}),
        helo_name=s.get("lmtp_lhlo_name") or s.get("myhostname"), bind_address="",
        tls_level=(s.get("lmtp_tls_security_level").strip().lower() or "none"),
        tls_cafile=s.get("lmtp_tls_CAfile"), tls_capath="",
        sasl_enable=s.bool("lmtp_sasl_auth_enable"), password_maps=tuple(s.list("lmtp_sasl_password_maps")),
        security_options=security, tls_security_options=security, mechanism_filter=(),
        mx_address_limit=0, mx_session_limit=0, randomize=False, address_preference="any",
        never_send_ehlo=False, skip_5xx_greeting=True, fallback_relay=(), soft_bounce=s.bool("soft_bounce"),
        line_limit=s.int("lmtp_line_length_limit"))


def client_settings(settings, lmtp: bool) -> ClientSettings:
    return lmtp_settings(settings) if lmtp else smtp_settings(settings)
