"""postconf(5) parameters of one smtpd listener → MachineSettings and SessionLimits.

Parameters: smtpd_banner, message_size_limit, line_length_limit, strict_rfc821_envelopes,
smtpd_helo_required, smtpd_recipient_limit, disable_vrfy_command, smtpd_tls_security_level
(none/may/encrypt; obsolete smtpd_use_tls / smtpd_enforce_tls), smtpd_tls_wrappermode,
smtpd_sasl_auth_enable, smtpd_tls_auth_only, smtputf8_enable, smtpd_discard_ehlo_keywords,
smtpd_forbid_bare_newline(_reject_code), smtpd_forbidden_commands, smtpd_timeout, smtpd_soft_error_limit,
smtpd_hard_error_limit, smtpd_error_sleep_time, smtpd_client_connection_count_limit,
smtpd_sasl_security_options / smtpd_sasl_tls_security_options, smtpd_sasl_path/type.

Invariants: reads only the Settings object handed in (never files); unknown values fall back
to Postfix's defaults. Security: the TLS level is never weaker than configured: `encrypt`
without a usable certificate offers no plaintext fallback (STARTTLS fails, mail is refused).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from roost.proto.smtp.machine import MachineSettings


@dataclass(frozen=True)
class SessionLimits:
    timeout: float = 300.0
    starttls_timeout: float = 300.0
    soft_error_limit: int = 10
    hard_error_limit: int = 20
    error_sleep_time: float = 1.0
    connection_count_limit: int = 50
    message_size_limit: int = 10240000


def _get(settings, kind: str, name: str, default):
    try:
        return getattr(settings, kind)(name)
    except Exception:  # a parameter the settings table does not know: Postfix's default
        return default


def tls_level(settings) -> str:
    level = _get(settings, "get", "smtpd_tls_security_level", "").strip().lower()
    if not level:  # the obsolete pair, as postconf(5) maps them
        if _get(settings, "bool", "smtpd_enforce_tls", False):
            return "encrypt"
        return "may" if _get(settings, "bool", "smtpd_use_tls", False) else "none"
    return level if level in ("none", "may", "encrypt") else "none"


def machine_settings(settings, *, tls_wrapper: bool = False, tls_possible: bool = True,
                     lmtp: bool = False) -> MachineSettings:
    level = tls_level(settings)
    wrapper = tls_wrapper or _get(settings, "bool", "smtpd_tls_wrappermode", False)
    bare = _get(settings, "get", "smtpd_forbid_bare_newline", "normalize").strip().lower()
    bare = {"yes": "normalize", "": "normalize"}.get(bare, bare)
    forbidden = _get(settings, "list", "smtpd_forbidden_commands", ("CONNECT", "GET", "POST", "regexp:{{/^[^A-Z]/ Bogus}}"))
    return MachineSettings(
        forbidden_commands=frozenset(item.upper() for item in forbidden if ":" not in item),
        # a table entry is taken as the default non-letter rule (the only one seen in practice)
        forbid_non_letter_commands=any(":" in item for item in forbidden),
        hostname=_get(settings, "get", "myhostname", "localhost"),
        lmtp=lmtp,
        message_size_limit=_get(settings, "size", "message_size_limit", 10240000),
        line_length_limit=max(_get(settings, "int", "line_length_limit", 2048), 80),
        strict_rfc821_envelopes=_get(settings, "bool", "strict_rfc821_envelopes", False),
        helo_required=_get(settings, "bool", "smtpd_helo_required", False),
        recipient_limit=_get(settings, "int", "smtpd_recipient_limit", 1000),
        vrfy_enabled=not _get(settings, "bool", "disable_vrfy_command", False),
        starttls_available=level in ("may", "encrypt") and tls_possible and not wrapper,
        tls_required=level == "encrypt" and not wrapper,
        tls_active=wrapper,
        auth_enabled=_get(settings, "bool", "smtpd_sasl_auth_enable", False),
        tls_auth_only=_get(settings, "bool", "smtpd_tls_auth_only", False),
        smtputf8_enable=_get(settings, "bool", "smtputf8_enable", True),
        discard_ehlo_keywords=frozenset(k.upper() for k in _get(settings, "list", "smtpd_discard_ehlo_keywords", ())
                                        if k.lower() != "silent-discard"),
        bare_newline=bare if bare in ("no", "normalize", "reject") else "normalize",
        bare_newline_code=_get(settings, "int", "smtpd_forbid_bare_newline_reject_code", 550),
    )


def with_mechanisms(settings: MachineSettings, plain: tuple, tls: tuple) -> MachineSettings:
    return replace(settings, auth_mechanisms=tuple(plain), auth_mechanisms_tls=tuple(tls))


def session_limits(settings) -> SessionLimits:
    return SessionLimits(
        timeout=_get(settings, "time", "smtpd_timeout", 300.0),
        starttls_timeout=_get(settings, "time", "smtpd_starttls_timeout", 300.0),
        soft_error_limit=_get(settings, "int", "smtpd_soft_error_limit", 10),
        hard_error_limit=_get(settings, "int", "smtpd_hard_error_limit", 20),
        error_sleep_time=_get(settings, "time", "smtpd_error_sleep_time", 1.0),
        connection_count_limit=_get(settings, "int", "smtpd_client_connection_count_limit", 50),
        message_size_limit=_get(settings, "size", "message_size_limit", 10240000),
    )
