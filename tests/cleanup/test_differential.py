"""roost's cleanup against Debian Postfix 3.7: the same message, the same main.cf.

One private Postfix (tests/cleanup/postfix_ref.py) keeps every message in its hold queue;
each case is sent to it over SMTP (from 127.0.0.1, a local-header-rewrite client, or from
127.0.0.2, a remote one) and fed to roost's CleanupService with the same parameters and
tables. Compared, after replacing queue IDs and dates by placeholders: the final reply
(code, enhanced code, text), the stored headers (Received, Message-Id, Date, From
qualification, canonical rewriting, header_checks effects), the stored body, the envelope
sender and recipients (virtual aliasing, bcc maps), and cleanup's log lines. Postfix's
side is read with the real `postcat -q`; roost's with roost's own postcat.
"""

from __future__ import annotations

import io
import os
import re

import pytest

from roost.cleanup import CleanupService, ClientInfo
from roost.cli.postcat import show
from roost.config.diagnostics import Diagnostics
from roost.config.main_cf import parse_main_cf_text
from roost.config.settings import Settings
from roost.log import sanitize
from roost.queue.reader import read_envelope
from tests.cleanup.postfix_ref import PostfixRef
from tests.conftest import RecordingLog, free_port_base, require_tool

SHARED_MAIN_CF = """\
myhostname = mail.example.test
mydomain = example.test
myorigin = $mydomain
header_checks = regexp:{base}/header_checks
body_checks = regexp:{base}/body_checks
canonical_maps = texthash:{base}/canonical
recipient_canonical_maps = texthash:{base}/recipient_canonical
sender_canonical_maps = texthash:{base}/sender_canonical
virtual_alias_maps = texthash:{base}/virtual
sender_bcc_maps = texthash:{base}/sender_bcc
recipient_bcc_maps = texthash:{base}/recipient_bcc
hopcount_limit = 5
"""

TABLES = {
    "header_checks": """\
/^Subject: reject-plain$/ REJECT
/^Subject: reject-text$/ REJECT 5.7.0 go away please
/^Subject: warn-me/ WARN watch out
/^Subject: hold-me/ HOLD held for review
/^Subject: discard-me/ DISCARD dropped here
/^X-Remove-Me:/ IGNORE
/^Subject: prepend-me/ PREPEND X-Prepended: yes
/^Subject: replace-me/ REPLACE Subject: replaced subject
/^Subject: info-me/ INFO for your information
/^Subject: bcc-me/ BCC copy@example.net
/^Subject: redirect-me/ REDIRECT elsewhere@example.net
/^Subject: filter-me/ FILTER smtp:[127.0.0.1]:10025
/^X-Folded: first[[:space:]]+second$/ WARN folded header seen whole
/^Content-Disposition: attachment; filename="bad\\.exe"/ REJECT bad attachment
/^Content-Description: drop-me/ IGNORE
/^Content-Description: warn-part/ WARN part header seen
/^Subject: nested-warn/ WARN nested header seen
/for <own@example\\.net>/ WARN our own Received
""",
    "body_checks": """\
/^reject-body-line$/ REJECT body rejected
/^replace-body-line$/ REPLACE the line was replaced
/^ignore-body-line$/ IGNORE
/^warn-body-line$/ WARN body warning
""",
    "canonical": "old@example.org new@example.org\nbare new-bare@example.org\n",
    "recipient_canonical": "rc@example.net rc-new@example.net\n",
    "sender_canonical": "sc@example.org sc-new@example.org\n",
    "virtual": "va@example.net va1@example.net, va2@example.net\nvb@example.net vb@example.net, vb-copy@example.net\n",
    "sender_bcc": "sbcc@example.org sender-copy@example.net\n",
    "recipient_bcc": "rbcc@example.net rcpt-copy@example.net\n",
}

MULTIPART = ("Subject: mime\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n"
             "preamble\r\n--outer\r\nContent-Type: text/plain\r\nContent-Description: drop-me\r\n\r\n"
             "reject-body-line is not alone here\r\nreplace-body-line\r\n"
             "--outer\r\nContent-Type: multipart/alternative;\r\n boundary=inner\r\n"
             "Content-Description: warn-part\r\n\r\n"
             "--inner\r\nContent-Type: text/html\r\n\r\n<p>ignore-body-line</p>\r\nignore-body-line\r\n--inner--\r\n"
             "--outer\r\nContent-Type: message/rfc822\r\n\r\nSubject: nested-warn\r\nFrom: x@example.org\r\n\r\n"
             "nested body\r\nwarn-body-line\r\n--outer--\r\nepilogue\r\n")

# name: (sender, recipients, message, source address[, log marker of a rejected message])
CASES = {
    "plain_local": ("alice@example.org", ["bob@example.net"],
                    "Subject: hello\r\nFrom: alice\r\nTo: bob\r\n\r\nbody line\r\n", "127.0.0.1"),
    "two_recipients": ("alice@example.org", ["bob@example.net", "carol@example.net"],
                       "Subject: two\r\nFrom: Alice <alice@example.org>\r\n\r\nbody\r\n", "127.0.0.1"),
    "null_sender_no_headers": ("", ["bob@example.net"], "Subject: bounce-ish\r\n\r\nbody\r\n", "127.0.0.1"),
    "remote_no_additions": ("alice@example.org", ["bob@example.net"],
                            "Subject: remote\r\nFrom: alice\r\nTo: Bob <bob>\r\n\r\nbody\r\n", "127.0.0.2"),
    "existing_message_id": ("alice@example.org", ["bob@example.net"],
                            "Message-ID: <abc.123@client.example.org>\r\nDate: Mon, 2 Mar 2026 10:00:00 +0100\r\n"
                            "From: a@example.org\r\nSubject: ids\r\n\r\nbody\r\n", "127.0.0.1"),
    "canonical_envelope_and_header": ("old@example.org", ["bob@example.net"],
                                      "From: Old Name <old@example.org>\r\nSubject: canon\r\n\r\nx\r\n", "127.0.0.1"),
    "sender_canonical": ("sc@example.org", ["bob@example.net"],
                         "From: sc@example.org\r\nTo: sc@example.org\r\nSubject: sc\r\n\r\nx\r\n", "127.0.0.1"),
    "recipient_canonical": ("alice@example.org", ["rc@example.net"],
                            "To: rc@example.net, other@example.net\r\nCc: (comment) rc@example.net\r\n"
                            "Subject: rc\r\n\r\nx\r\n", "127.0.0.1"),
    "canonical_remote_header": ("old@example.org", ["bob@example.net"],
                                "From: old@example.org\r\nSubject: canon-remote\r\n\r\nx\r\n", "127.0.0.2"),
    "virtual_expansion": ("alice@example.org", ["va@example.net"], "Subject: virtual\r\nTo: va@example.net\r\n\r\nx\r\n",
                          "127.0.0.1"),
    "virtual_self_reference": ("alice@example.org", ["vb@example.net"], "Subject: vself\r\n\r\nx\r\n", "127.0.0.1"),
    "bcc_maps": ("sbcc@example.org", ["rbcc@example.net"], "Subject: bccmaps\r\n\r\nx\r\n", "127.0.0.1"),
    "unqualified_recipient": ("alice@example.org", ["bob"], "Subject: unqualified\r\n\r\nx\r\n", "127.0.0.1"),
    "reject_plain": ("alice@example.org", ["bob@example.net"], "Subject: reject-plain\r\n\r\nx\r\n", "127.0.0.1"),
    "reject_text": ("alice@example.org", ["bob@example.net"], "Subject: reject-text\r\n\r\nx\r\n", "127.0.0.2"),
    "warn": ("alice@example.org", ["bob@example.net"], "Subject: warn-me now\r\n\r\nx\r\n", "127.0.0.1"),
    "hold": ("alice@example.org", ["bob@example.net"], "Subject: hold-me please\r\n\r\nx\r\n", "127.0.0.1"),
    "discard": ("alice@example.org", ["bob@example.net"], "Subject: discard-me\r\n\r\nx\r\n", "127.0.0.1"),
    "ignore": ("alice@example.org", ["bob@example.net"],
               "Subject: ignore\r\nX-Remove-Me: yes\r\n  continued\r\nX-Keep: 1\r\n\r\nx\r\n", "127.0.0.1"),
    "prepend": ("alice@example.org", ["bob@example.net"], "X-Before: 1\r\nSubject: prepend-me\r\n\r\nx\r\n",
                "127.0.0.1"),
    "replace": ("alice@example.org", ["bob@example.net"], "Subject: replace-me\r\nX-After: 1\r\n\r\nx\r\n",
                "127.0.0.1"),
    "info": ("alice@example.org", ["bob@example.net"], "Subject: info-me\r\n\r\nx\r\n", "127.0.0.1"),
    "bcc_action": ("alice@example.org", ["bob@example.net"], "Subject: bcc-me\r\n\r\nx\r\n", "127.0.0.1"),
    "folded_header": ("alice@example.org", ["bob@example.net"],
                      "X-Folded: first\r\n\tsecond\r\nSubject: folded\r\n\r\nx\r\n", "127.0.0.1"),
    "body_reject": ("alice@example.org", ["bob@example.net"],
                    "Subject: body-reject\r\n\r\nfine\r\nreject-body-line\r\nmore\r\n", "127.0.0.1",
                    "reject-body-line"),
    "body_replace_ignore_warn": ("alice@example.org", ["bob@example.net"],
                                 "Subject: body-edit\r\n\r\na\r\nreplace-body-line\r\nignore-body-line\r\n"
                                 "warn-body-line\r\nz\r\n", "127.0.0.1"),
    "too_many_hops": ("alice@example.org", ["bob@example.net"],
                      "".join(f"Received: from hop{i}.example by x; Mon, 2 Mar 2026 10:00:00 +0000\r\n" for i in range(6))
                      + "Subject: hops\r\n\r\nx\r\n", "127.0.0.1"),
    "hops_at_limit": ("alice@example.org", ["bob@example.net"],
                      "".join(f"Received: from hop{i}.example by x; Mon, 2 Mar 2026 10:00:00 +0000\r\n" for i in range(5))
                      + "Subject: hops5\r\n\r\nx\r\n", "127.0.0.1"),
    "hops_below_limit": ("alice@example.org", ["bob@example.net"],
                         "".join(f"Received: from hop{i}.example by x; Mon, 2 Mar 2026 10:00:00 +0000\r\n"
                                 for i in range(4)) + "Subject: hops4\r\n\r\nx\r\n", "127.0.0.1"),
    "own_received_checked": ("alice@example.org", ["own@example.net"], "Subject: own-received\r\n\r\nx\r\n",
                             "127.0.0.2"),
    "log_addresses_after_rewriting": ("old@example.org", ["rc@example.net", "bob@example.net"],
                                      "Subject: warn-me rewritten\r\n\r\nx\r\n", "127.0.0.1"),
    "log_address_virtual": ("alice@example.org", ["bob@example.net", "va@example.net"],
                            "Subject: warn-me virtual\r\n\r\nx\r\n", "127.0.0.1"),
    "log_addresses_one_rewritten": ("old@example.org", ["rc@example.net"],
                                    "Subject: warn-me rewritten\r\n\r\nx\r\n", "127.0.0.1"),
    "no_header_separator": ("alice@example.org", ["bob@example.net"],
                            "Subject: nosep\r\nthis line is not a header\r\nmore\r\n", "127.0.0.1"),
    "long_body_line": ("alice@example.org", ["bob@example.net"], "Subject: long\r\n\r\n" + "x" * 3000 + "\r\nend\r\n",
                       "127.0.0.1"),
    "mime_parts": ("alice@example.org", ["bob@example.net"], MULTIPART, "127.0.0.1"),
    "mime_reject_attachment": ("alice@example.org", ["bob@example.net"],
                               MULTIPART.replace("Content-Description: drop-me",
                                                 'Content-Disposition: attachment; filename="bad.exe"'),
                               "127.0.0.1", "bad.exe"),
    "body_only": ("alice@example.org", ["bob@example.net"], "just a body line\r\nsecond\r\n", "127.0.0.1"),
    "dots_and_long_header": ("alice@example.org", ["bob@example.net"],
                             "Subject: " + "long " * 300 + "\r\nX-Y: z\r\n\r\n.leading dot kept once\r\n", "127.0.0.1"),
}

ID_PATTERNS = [re.compile(r"\b[0-9A-F]{10,12}\b")]
DATE = re.compile(r"\w{3}, [ \d]\d \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4} \(\w+\)")
STAMP = re.compile(r"<\d{14}\.")


def normalize(text: str, ids: list[str]) -> str:
    for queue_id in ids:
        if queue_id:
            text = text.replace(queue_id, "QUEUEID")
    text = DATE.sub("DATE", text)
    text = STAMP.sub("<STAMP.", text)
    return re.sub(r"unknown\[127\.0\.0\.[12]\]:\d+", "CLIENT", text)


def split_postcat(output: str) -> dict:
    sections: dict[str, list[str]] = {"envelope": [], "content": [], "extracted": []}
    current = None
    for line in output.split("\n"):
        if line.startswith("*** ENVELOPE RECORDS"):
            current = "envelope"
        elif line.startswith("*** MESSAGE CONTENTS"):
            current = "content"
        elif line.startswith("*** HEADER EXTRACTED"):
            current = "extracted"
        elif line.startswith("*** MESSAGE FILE END"):
            current = None
        elif current:
            sections[current].append(line)
    envelope = sections["envelope"] + sections["extracted"]
    return {
        "sender": [l for l in envelope if l.startswith("sender: ")],
        "recipients": sorted(l for l in envelope if l.startswith(("recipient: ", "original_recipient: ",
                                                                  "named_attribute: dsn_orig_rcpt="))),
        "content": "\n".join(sections["content"]),
        "size": next((int(l.split()[1]) for l in sections["envelope"] if l.startswith("message_size:")), None),
    }


@pytest.fixture(scope="module")
def reference():
    require_tool("postfix")
    require_tool("postcat")
    if os.geteuid() != 0:
        pytest.fail("the cleanup differential tests start a private Postfix and must run as root", pytrace=False)
    ref = PostfixRef(free_port_base() + 53, "")
    try:
        for name, text in TABLES.items():
            ref.write_file(name, text)
        ref.extra = SHARED_MAIN_CF.format(base=ref.base)
        ref.start()
        yield ref
    finally:
        ref.stop()


def roost_service(ref: PostfixRef, queue_dir: str) -> tuple[CleanupService, RecordingLog]:
    text = SHARED_MAIN_CF.format(base=ref.base) + f"queue_directory = {queue_dir}\ninet_interfaces = 127.0.0.1\n" \
        "inet_protocols = ipv4\nmynetworks = 127.0.0.0/8\nmydestination =\n"
    diags = Diagnostics()
    settings = Settings.from_main_cf(parse_main_cf_text(text, os.path.join(queue_dir, "main.cf"), diags),
                                     queue_dir, diags)
    log = RecordingLog()
    return CleanupService(settings, log), log


def run_roost(service: CleanupService, sender: str, recipients: list[str], message: bytes, source: str):
    client = ClientInfo("unknown", source, 40000, "client.example.org", "ESMTP", None, None, None)
    msg = service.open(origin="smtpd", client=client, sender=sender, envelope={})
    for recipient in recipients:
        msg.add_recipient(recipient)
    for index in range(0, len(message), 7):  # odd chunk boundaries on purpose
        msg.write(message[index:index + 7])
    return msg, msg.finish()


def roost_postcat(service: CleanupService, queue_id: str) -> str:
    found = service.layout.find(queue_id)
    assert found, f"roost kept no queue file for {queue_id}"
    out = io.StringIO()
    show(read_envelope(found[1]), found[0] + "/" + queue_id, envelope=True, header=True, body=True,
         markers=True, out=out)
    return out.getvalue()


@pytest.mark.parametrize("name", sorted(CASES))
def test_cleanup_matches_postfix(reference, tmp_path, name):
    sender, recipients, text, source, *log_marker = CASES[name]
    message = text.encode()
    code, reply_text = reference.send(sender, recipients, message, source=source)
    service, log = roost_service(reference, str(tmp_path / "queue"))
    msg, result = run_roost(service, sender, recipients, message, source)

    assert result.reply.code == code, (name, reply_text, result)
    postfix_id = ""
    if code == 250:
        postfix_id = reply_text.rsplit(" ", 1)[-1]
        assert result.reply.text == f"Ok: queued as {result.queue_id}"
    else:
        assert f"{result.reply.enhanced} {result.reply.text}" == reply_text, name
    ids = [postfix_id, result.queue_id]

    # cleanup's log lines (message-id=, reject:, warning:, hold:, discard:, ...)
    marker = postfix_id or (log_marker[0] if log_marker else text.split("Subject: ", 1)[1].split("\r\n", 1)[0])
    # a queued message always has a cleanup line (message-id=); a rejected one may have none
    postfix_lines = reference.log_lines(marker, wait=5.0 if postfix_id else 2.0)
    if postfix_id:
        roost_lines = [sanitize(t) for level, t in log.lines if level == "info"]  # as the mail log gets them
        # Postfix's own `hold:`/`discard:` lines name the client, like roost's
        assert [normalize(l, ids) for l in roost_lines] == [normalize(l, ids) for l in postfix_lines], name
    else:
        roost_lines = [sanitize(t) for level, t in log.lines if level == "info" and "message-id=" not in t]
        postfix_lines = [l for l in postfix_lines if "message-id=" not in l]
        assert [normalize(l, ids).split(": ", 1)[1] for l in roost_lines] == \
               [normalize(l, ids).split(": ", 1)[1] for l in postfix_lines], name

    if code != 250:
        assert service.layout.find(result.queue_id) is None, "a rejected message left a file"
        return
    if "discard" in postfix_lines[-1] if postfix_lines else False:
        assert result.status == "discarded"
        assert service.layout.find(result.queue_id) is None
        return
    ours = split_postcat(roost_postcat(service, result.queue_id))
    theirs = split_postcat(reference.postcat(postfix_id))
    assert normalize(ours["content"], ids) == normalize(theirs["content"], ids), name
    assert ours["sender"] == theirs["sender"], name
    assert ours["recipients"] == theirs["recipients"], name
    # message_size: equal once the IDs' lengths are accounted for
    id_delta = (len(result.queue_id) - len(postfix_id)) * ours["content"].count(result.queue_id)
    assert ours["size"] - id_delta == theirs["size"], name


LOCAL_CASES = {
    "sendmail_plain": (["-f", "cron1", "-F", "Cron Daemon", "bob@example.net"], "Subject: cron\n\noutput\n"),
    "sendmail_no_fullname": (["-f", "cron2@example.org", "bob@example.net", "carol@example.net"],
                             "Subject: two\nTo: bob@example.net\n\nbody\n"),
    "sendmail_headers_present": (["-f", "cron3", "bob"],
                                 "From: Someone <someone>\nMessage-Id: <given@host>\nDate: Mon, 2 Mar 2026 10:00:00 +0000\n"
                                 "Subject: given\n\nbody\n"),
}


@pytest.mark.parametrize("name", sorted(LOCAL_CASES))
def test_local_submission_matches_postfix(reference, tmp_path, name):
    """sendmail(1) -> maildrop -> pickup -> cleanup in Postfix; origin="sendmail" in roost."""
    args, text = LOCAL_CASES[name]
    postfix_id = reference.sendmail(args, text.encode())
    service, log = roost_service(reference, str(tmp_path / "queue"))
    # sendmail's part: -F, else the GECOS name of the submitting user (as Postfix's sendmail)
    import pwd
    fullname = args[args.index("-F") + 1] if "-F" in args else pwd.getpwuid(0).pw_gecos.split(",")[0]
    envelope = {"UID": "0", **({"FULLNAME": fullname} if fullname else {})}
    recipients = [a for i, a in enumerate(args) if not a.startswith("-") and args[i - 1] not in ("-f", "-F")]
    msg = service.open(origin="sendmail", client=None, sender=args[args.index("-f") + 1], envelope=envelope)
    for recipient in recipients:
        msg.add_recipient(recipient)
    msg.write(text.encode())
    result = msg.finish()
    ids = [postfix_id, result.queue_id]
    ours = split_postcat(roost_postcat(service, result.queue_id))
    theirs = split_postcat(reference.postcat(postfix_id))
    assert normalize(ours["content"], ids) == normalize(theirs["content"], ids), name
    assert ours["sender"] == theirs["sender"], name
    assert ours["recipients"] == theirs["recipients"], name
    postfix_lines = [normalize(l, ids) for l in reference.log_lines(postfix_id) if "message-id=" in l]
    assert [normalize(sanitize(t), ids) for _, t in log.lines] == postfix_lines
