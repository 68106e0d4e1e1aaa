"""A corpus of varied RFC 5322/MIME messages for the Dovecot differential tests.

Each entry is written with LF here and turned into CRLF by `messages()` (the store hands
messages out with CRLF line endings). Entries that need a bare LF or odd bytes build them
explicitly. Names sort in corpus order; UID n is the n-th entry.
"""

from __future__ import annotations

import base64

_B64_BLOB = base64.encodebytes(bytes(range(256)) * 8).decode()
_QP_TEXT = "caf=C3=A9 cr=C3=A8me =\nsoft break line\nlong=3Dequals =E2=82=AC tail  \n"

_RAW: list[tuple[str, str]] = [
    ("plain", """From: Alice Example <alice@example.com>
To: bob@example.org
Subject: Hello there
Date: Mon, 7 Feb 1994 21:52:25 -0800
Message-ID: <1234@example.com>

Hi Bob,
this is a plain message.
"""),
    ("no-headers-body", """Subject: only a subject

body
"""),
    ("empty-body", """From: a@b.example
Subject: empty

"""),
    ("folded-subject", """From: "Quoted, Name" <q@example.com>
Subject: a folded
 subject	with tabs
  and spaces
Date: 1 Jan 2020 00:00:00 +0000
To: Group: one@example.com, "Two" <two@example.com>;, three@example.com
Cc: undisclosed-recipients:;

text
"""),
    ("encoded-words", """From: =?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?= <keld@dkuug.dk>
To: =?US-ASCII?Q?Keith_Moore?= <moore@cs.utk.edu>
Cc: =?ISO-8859-1?Q?Andr=E9?= Pirard <PIRARD@vm1.ulg.ac.be>
Subject: =?ISO-8859-1?B?SWYgeW91IGNhbiByZWFkIHRoaXMgeW8=?=
 =?ISO-8859-2?B?dSB1bmRlcnN0YW5kIHRoZSBleGFtcGxlLg==?=
Date: Tue, 2 Mar 2021 10:11:12 +0100
Message-ID: <ew@example>
MIME-Version: 1.0
Content-Type: text/plain; charset=ISO-8859-1
Content-Transfer-Encoding: quoted-printable

Andr=E9 says hi
"""),
    ("multipart-mixed", """From: Sender <sender@example.com>
To: rcpt@example.com
Subject: multipart mixed
Date: Wed, 3 Mar 2021 12:00:00 +0000
Message-ID: <mm@example>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="XXBOUNDARY"

This is the preamble.
--XXBOUNDARY
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 7bit

first part
--XXBOUNDARY
Content-Type: application/octet-stream; name="data.bin"
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename="data.bin"
Content-ID: <part2@example>
Content-Description: some binary

""" + _B64_BLOB + """--XXBOUNDARY--
epilogue here
"""),
    ("alternative", """From: a@example.com
To: b@example.com
Subject: alternative
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary=alt1

--alt1
Content-Type: text/plain; charset="us-ascii"

plain version
--alt1
Content-Type: text/html; charset="us-ascii"
Content-Transfer-Encoding: quoted-printable

<p>html version =3D fun</p>
--alt1--
"""),
    ("nested-rfc822", """From: outer@example.com
To: b@example.com
Subject: Fwd: inner
Date: Thu, 4 Mar 2021 08:00:00 -0500
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer"

--outer
Content-Type: text/plain

see attached
--outer
Content-Type: message/rfc822
Content-Disposition: inline

From: Inner Person <inner@example.net>
To: outer@example.com
Subject: inner
Date: Wed, 3 Mar 2021 07:00:00 -0500
Message-ID: <inner@example.net>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="inner"

--inner
Content-Type: text/plain

inner plain
--inner
Content-Type: text/html

<b>inner html</b>
--inner--
--outer--
"""),
    ("rfc822-toplevel", """From: a@example.com
Subject: message as body
MIME-Version: 1.0
Content-Type: message/rfc822

From: b@example.com
Subject: encapsulated

the encapsulated body
"""),
    ("rfc2231", """From: a@example.com
Subject: rfc2231
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=b2231

--b2231
Content-Type: application/x-stuff;
 title*0*=us-ascii'en'This%20is%20even%20more%20;
 title*1*=%2A%2A%2Afun%2A%2A%2A%20;
 title*2="isn't it!"
Content-Disposition: attachment; filename*=UTF-8''na%C3%AFve%20file.txt

stuff
--b2231
Content-Type: text/plain; charset*=us-ascii'en-us'utf-8; format=flowed
Content-Language: en, de
Content-Location: http://example.com/x

flowed
--b2231--
"""),
    ("missing-all", """X-Only: header

just a body without standard headers
"""),
    ("odd-whitespace", """From:alice@example.com
To :   bob@example.com  
Subject:   lots   of    space   
Date:    Fri,  5 Mar 2021   09:09:09   +0000   
Content-Type:   TEXT/PLAIN  ;  CHARSET = "UTF-8" ; Format=Flowed

x
"""),
    ("eightbit", """From: =?utf-8?q?J=C3=BCrgen?= <juergen@example.de>
To: bob@example.com
Subject: Grüße aus Köln
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Schöne Grüße, naïve café
"""),
    ("bad-boundary", """From: a@example.com
Subject: malformed boundary
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="never-used"

--wrong
Content-Type: text/plain

this is not a part
--wrong--
"""),
    ("no-close-boundary", """From: a@example.com
Subject: unterminated multipart
Content-Type: multipart/mixed; boundary=open

--open
Content-Type: text/plain

part one
--open
Content-Type: text/plain

part two never closed
"""),
    ("missing-boundary-param", """From: a@example.com
Subject: multipart without boundary
Content-Type: multipart/mixed

--x
Content-Type: text/plain

hi
--x--
"""),
    ("base64-text", """From: a@example.com
Subject: base64 text
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: base64

""" + base64.encodebytes("héllo wörld\nsecond line\n".encode()).decode()),
    ("qp-text", """From: a@example.com
Subject: qp text
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

""" + _QP_TEXT),
    ("reply-one", """From: Bob <bob@example.org>
To: Alice Example <alice@example.com>
Subject: Re: Hello there
Date: Tue, 8 Feb 1994 09:00:00 -0800
Message-ID: <5678@example.org>
In-Reply-To: <1234@example.com>
References: <1234@example.com>

reply
"""),
    ("reply-two", """From: Alice Example <alice@example.com>
To: Bob <bob@example.org>
Subject: RE: [list] Re: Hello there (fwd)
Date: Wed, 9 Feb 1994 10:00:00 -0800
Message-ID: <9999@example.com>
In-Reply-To: <5678@example.org>
References: <1234@example.com> <5678@example.org>

reply to reply
"""),
    ("fwd-subject", """From: carol@example.net
Subject: [Fwd: Hello there]
Date: Thu, 10 Feb 1994 10:00:00 +0000
Message-ID: <fwd1@example.net>

fwd
"""),
    ("orphan-reply", """From: dave@example.net
Subject: Re: missing parent
Date: Fri, 11 Feb 1994 10:00:00 +0000
Message-ID: <orphan@example.net>
References: <never-seen@example.net>

orphan
"""),
    ("same-subject", """From: eve@example.net
Subject: re: re: HELLO THERE
Date: Sat, 12 Feb 1994 10:00:00 +0000
Message-ID: <eve@example.net>

eve
"""),
    ("sender-replyto", """From: Boss <boss@example.com>
Sender: Secretary <sec@example.com>
Reply-To: list@example.com, "Other" <other@example.com>
To: team@example.com
Bcc: hidden@example.com
Subject: with sender and reply-to
Date: Sun, 13 Feb 1994 10:00:00 +0000
Message-ID: <sr@example.com>

body
"""),
    ("route-addr", """From: "Routed" <@relay1.example,@relay2.example:user@final.example>
To: bare-local
Cc: <angle@example.com>, (comment only) plain@example.com (trailing comment)
Subject: route addresses
Date: 14 Feb 1994 10:00 +0000

body
"""),
    ("quoted-local", """From: "odd \\"quoted\\" name" <"john..doe"@example.com>
To: "a\\\\b" <x@example.com>
Subject: quoted local parts
Date: Mon, 14 Feb 1994 10:00:00 GMT

body
"""),
    ("multipart-digest", """From: digest@example.com
Subject: digest
MIME-Version: 1.0
Content-Type: multipart/digest; boundary="dig"

--dig

From: one@example.com
Subject: digest one

one body
--dig
Content-Type: message/rfc822

From: two@example.com
Subject: digest two

two body
--dig--
"""),
    ("deep-nesting", """From: a@example.com
Subject: deep
Content-Type: multipart/mixed; boundary=L1

--L1
Content-Type: multipart/related; boundary=L2; type="text/html"

--L2
Content-Type: multipart/alternative; boundary=L3

--L3
Content-Type: text/plain

deep plain
--L3
Content-Type: text/html

<i>deep</i>
--L3--
--L2
Content-Type: image/png
Content-Transfer-Encoding: base64
Content-ID: <img1>

iVBORw0KGgo=
--L2--
--L1
Content-Type: text/plain; charset=us-ascii
Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==

tail part
--L1--
"""),
    ("long-header", """From: a@example.com
Subject: """ + "word " * 60 + """
X-Long: """ + "x" * 1200 + """
Date: Mon, 15 Feb 1994 10:00:00 +0000

short
"""),
    ("no-trailing-newline", "From: a@example.com\nSubject: no final newline\n\nlast line without newline"),
    ("header-only", "From: a@example.com\nSubject: header only, no blank line\n"),
    ("bare-lf-mixed", "From: a@example.com\nSubject: lf body\n\nline1\nline2\n\n\nline5\n"),
    ("text-no-charset", """From: a@example.com
Subject: text/html without params
Content-Type: text/html

<html></html>
"""),
    ("app-with-params", """From: a@example.com
Subject: application with params
Content-Type: application/pdf; name="report 2021.pdf"
Content-Transfer-Encoding: BASE64
Content-Disposition: inline
Content-Description: =?utf-8?q?R=C3=A9port?=

JVBERi0xLjQK
"""),
    ("dup-headers", """From: first@example.com
From: second@example.com
Subject: first subject
Subject: second subject
Date: Tue, 16 Feb 1994 10:00:00 +0000
Date: Wed, 17 Feb 1994 10:00:00 +0000

dup
"""),
    ("bad-date", """From: a@example.com
Subject: bad date
Date: not a date at all

x
"""),
    ("multipart-sub-no-ct", """From: a@example.com
Subject: parts without content-type
Content-Type: multipart/mixed; boundary="==b=="

--==b==

default text part
--==b==
Content-Transfer-Encoding: quoted-printable

qp =C3=A9 default
--==b==--
"""),
    ("odd-strings", """From: "back\\slash" <bs@example.com>, <>, "" <empty-name@example.com>
To: =?utf-8?q?=22quoted=22?= <q@example.com>
Subject: a "quoted" \\ subject
Date: "Tue, 1 Feb 2022 10:00:00 +0000"
Message-ID:    <spaced@example.com>   
In-Reply-To: <a@b> (comment) <c@d>
Content-Type: text/plain; charset="utf-8"; name="we\\ird \\"n\\"ame"
Content-Language: fr
Content-Location: "loc"
Content-ID: <cid>
Content-Disposition: attachment; filename="a.txt"; size=12
Content-MD5: abc

x
"""),
    ("whitespace-subject", """From: a@example.com
Subject:\t 
Reply-To:
Sender:
Cc: ,
Content-Type: multipart/mixed; boundary="sp ace"

--sp ace
Content-Type: text/plain

spaced boundary
--sp ace--
"""),
    ("nested-boundary-prefix", """From: a@example.com
Subject: boundary prefixes
Content-Type: multipart/mixed; boundary="abc"

--abc
Content-Type: multipart/alternative; boundary="abcdef"

--abcdef
Content-Type: text/plain

inner one
--abcdef
Content-Type: text/html

inner two
--abcdef--
--abc
Content-Type: text/plain

outer two
--abc--
"""),
    ("boundary-trailing-junk", """From: a@example.com
Subject: boundary lines with junk
Content-Type: multipart/mixed; boundary=jj

--jj   
Content-Type: text/plain

one
--jjX
Content-Type: text/plain

two
--jj--junk
"""),
    ("message-in-message-deep", """From: a@example.com
Subject: message in message
Content-Type: message/rfc822

Subject: level 1
Content-Type: message/rfc822

Subject: level 2
Content-Type: multipart/mixed; boundary=q

--q
Content-Type: text/plain

deep
--q--
"""),
    ("odd-content-types", """From: a@example.com
Subject: odd content types
Content-Type: multipart/mixed; boundary=oc; charset=utf-8

--oc
Content-Type: text

type without subtype
--oc
Content-Type: /plain

empty type
--oc
Content-Type: text/plain; charset=

empty charset
--oc
Content-Type: IMAGE/JPEG; Name="Pic.JPG"
Content-Transfer-Encoding: x-uuencode
Content-Disposition: INLINE; FILENAME=pic.jpg
Content-Language: EN-us

begin 644 pic.jpg
end
--oc
Content-Type: message/global

From: g@example.com
Subject: global

global body
--oc
Content-Type: message/rfc822; name=fwd.eml
Content-Transfer-Encoding: base64

RnJvbTogYkBleGFtcGxlLmNvbQpTdWJqZWN0OiBiNjQKCmJvZHkK
--oc
Content-Type: message/partial; id="abc"; number=1; total=2

partial
--oc--
"""),
    ("keyword-search", """From: Zed <zed@example.com>
To: Yan <yan@example.com>
Cc: Xu <xu@example.com>
Subject: Zebra crossing
Date: Thu, 18 Feb 1994 23:30:00 -0300
Message-ID: <zed@example.com>
X-Priority: 1
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: base64

""" + base64.encodebytes("The quick brown FOX jumps; Ünïcödé body text\n".encode()).decode()),
]


def _crlf(text: str) -> bytes:
    raw = text.encode("utf-8")
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def messages() -> list[tuple[str, bytes]]:
    """(name, message bytes with CRLF line endings) in UID order."""
    out = [(f"{i + 1:02d}-{name}", _crlf(text)) for i, (name, text) in enumerate(_RAW)]
    latin = (b"From: Latin <latin@example.com>\r\nSubject: caf\xe9 8-bit latin1 header\r\n"
             b"Content-Type: text/plain; charset=iso-8859-1\r\n\r\nna\xefve caf\xe9\r\n")
    out.append((f"{len(out) + 1:02d}-latin1-8bit", latin))
    nul = b"From: a@example.com\r\nSubject: control chars\r\n\r\nnul\x00byte and \x01 ctrl\r\n"
    out.append((f"{len(out) + 1:02d}-control-chars", nul))
    return out
