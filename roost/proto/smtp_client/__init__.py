"""Sans-IO SMTP and LMTP client (RFC 5321, RFC 2033): reply parsing, the per-message
conversation, DATA encoding and AUTH mechanisms. No sockets here: roost.delivery.smtp drives it."""

from roost.proto.smtp_client.data import DataEncoder, encode_all
from roost.proto.smtp_client.replies import ReplyParser, ServerReply, parse_ehlo_keywords
from roost.proto.smtp_client.session import (BOUNCED, DEFERRED, SENT, ClientSession, Envelope,
                                             NeedContent, NeedTls, Outcome, RcptSpec, ResumeState,
                                             SessionOptions, xtext)

__all__ = ["DataEncoder", "encode_all", "ReplyParser", "ServerReply", "parse_ehlo_keywords",
           "ClientSession", "Envelope", "NeedContent", "NeedTls", "Outcome", "RcptSpec", "ResumeState",
           "SessionOptions", "xtext", "SENT", "DEFERRED", "BOUNCED"]
