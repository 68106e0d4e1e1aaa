"""The differential corpus: tables (with the seeds' access and aliases files exactly as the
tutorials print them) and the keys asked of each, answered by real Postfix and by roost."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from tests.conftest import DATA, SEEDS

TABLES = DATA / "tables"


@dataclass
class Case:
    name: str            # file name (or label for inline specs)
    tool: str            # postmap or postalias
    type: str            # hash, lmdb, regexp, inline...
    content: bytes | None  # file content; None for specs that carry their content
    keys: list[str]
    spec: str | None = None  # reference used instead of type:file (inline, static, unionmap)
    main_cf: str = ""
    needs: list[str] = field(default_factory=list)  # other case names whose files must exist


def seed_block(seed_prefix: str, start_marker: str, indented: bool) -> list[str]:
    """The code block after the line containing `start_marker`, verbatim: the run of
    5-space-indented lines (markdown code) or the lines up to the closing ```."""
    path = next(SEEDS.glob(f"{seed_prefix}_*.txt"))
    lines = path.read_text(encoding="utf-8").split("\n")
    start = next(i for i, line in enumerate(lines) if start_marker in line) + 1
    if indented:
        while not lines[start].startswith("     "):
            start += 1
        block = []
        for line in lines[start:]:
            if not line.startswith("     "):
                break
            block.append(line)
        return block
    block = []
    for line in lines[start:]:
        if line.startswith("```"):
            break
        block.append(line)
    return block


def seed_files() -> dict[str, bytes]:
    access = seed_block("003", "## 邮件服务器的使用权限", indented=True)
    aliases = seed_block("003", "## 邮件别名 /etc/aliases", indented=True)
    student = seed_block("003", "也可以用于用于发送群邮件", indented=True)
    aliases004 = seed_block("004", "cat /etc/aliases|grep -Ev", indented=False)
    as_file = lambda lines: ("\n".join(lines) + "\n").encode()  # noqa: E731
    dedent = lambda lines: [line[5:] if line.startswith("     ") else line for line in lines]  # noqa: E731
    return {
        # exactly as printed (the tutorial's 5-space code indentation kept)
        "seed003_access_printed": as_file(access),
        "seed003_aliases_printed": as_file(aliases + [""] + student),
        # what the administrator typed into /etc/postfix/access and /etc/aliases
        "seed003_access": as_file(dedent(access)),
        "seed003_aliases": as_file(dedent(aliases) + dedent(student)),
        "seed004_aliases": as_file(aliases004),
        "seed004_aliases_zhangsan": as_file(aliases004 + ["zhangsan: root"]),
    }


def generated_table(lines: int = 10_000, seed: int = 3) -> tuple[bytes, list[str]]:
    rng = random.Random(seed)
    keys, out = [], []
    for i in range(lines):
        form = i % 4
        if form == 0:
            key = f"host{i}.example{i % 97}.com"
        elif form == 1:
            key = f"user{i}@example{i % 13}.org"
        elif form == 2:
            key = f"10.{i % 251}.{i // 251 % 251}.{i % 7}"
        else:
            key = f"Mixed{i}.Case.NET"
        keys.append(key)
        out.append(f"{key}\t{rng.choice(['OK', 'REJECT', 'DUNNO', '550 5.7.1 no'])} {i}")
    queries = rng.sample(keys, 150)
    queries += [k.upper() for k in rng.sample(keys, 40)]
    queries += [k.swapcase() for k in rng.sample(keys, 20)]
    queries += [f"missing{i}.example.com" for i in range(30)] + [k + "x" for k in rng.sample(keys, 20)]
    return ("\n".join(out) + "\n").encode(), queries


ACCESS_KEYS = [
    "120.114.141.60", "120.114.141", "120.114.141.61", "192.168.2.", "192.168.2", "192.168.2.7",
    "192.168.3.", "192.168.3", "10", "10.0", "172.16.5.4", "2001:db8:1", "2001:DB8:1", "2001:db8:2::5",
    "2001:db8:3:0:0:0:0:9", "2001:DB8:3:0:0:0:0:9", "2001:db8:3::9", "ipv6:2001:db8:4", "example.com",
    "EXAMPLE.COM", "Example.Com", "sub.example.com", ".example.org", "example.org", "a.example.org",
    "sub.example.net", "SUB.EXAMPLE.NET", "example.net", "user@", "USER@", "user@example.edu",
    "User@Example.EDU", "joe+list@example.edu", "joe@example.edu", "postmaster@", "mixed.case.com",
    "MIXED.CASE.COM", "spam.test", "redirect.test", "[192.0.2.1]", "192.0.2.1", "@example.info",
    "example.info", "ban.com", ".edu.cn", "edu.cn", "www.edu.cn", "",
]
SEED_ACCESS_KEYS = ["120.114.141.60", "120.114.141", "120.114.141.6", ".edu.cn", "edu.cn", "pku.edu.cn",
                    "ban.com", "BAN.COM", "Ban.Com", "mail.ban.com", "192.168.2.", "192.168.2",
                    "192.168.2.10", "192.168.20.", "10.0.0.1", "     120.114.141.60", "OK"]
ALIAS_KEYS = ["mailer-daemon", "MAILER-DAEMON", "Mailer-Daemon", "postmaster", "root", "bin", "daemon",
              "student2011", "STUDENT2011", "std001", "lp", "abuse", "www", "webmaster", "info", "decode",
              "zhangsan", "ZhangSan", "nobody", "news", "usenet", "ftp-admin", "ftp", "@", "nosuchuser",
              "postmaster@linuxprobe.com", "mailer", "daemon ", "adm", "operator"]
TRICKY_MAP_KEYS = ["key1", "KEY1", "key2", "key3", "key4", '"quoted key"', "quoted key", '"Quoted Key"',
                   '"q\\"uote"', "colon:", "colon", "novalue", "key5", "KEY5", "key6", "trailing",
                   "trailing2", "crlf1", "crlf2", '"unbalanced', "#", "continued"]
VIRTUAL_KEYS = ["info@example.com", "INFO@EXAMPLE.COM", "sales@example.com", "user+tag@example.com",
                "user@example.com", "user+other@example.com", "@example.net", "x@example.net", "root",
                "ROOT", "postmaster@example.com", "example.com", "user"]
REGEXP_KEYS = ["a@b@c", "a!b@c", "postmaster@x.org", "POSTMASTER@X.ORG", "joe-outgoing@example.com",
               "owner-x-outgoing@example.com", "joe@mail.example.com", "1.2.3.4", "casesensitive",
               "CaseSensitive", "ab", "b", "nodot", "x.y", "", "$"]
TRICKY_REGEXP_KEYS = ["baac", "bc", "b(a)c", "eaac", "ec", "mline", "m\nline", "x]x", "]", "123", "\\d",
                      "nested", "nestx", "nest", "tildeZ", "tilde", "word", "wordy", "optional-x", "opt-x",
                      "aa", "aaa", "aaaa", "abcdefghi", "ABCDEFGHI", "empty-result", "zzz"]
PCRE_KEYS = ["joe@example.com", "JOE@EXAMPLE.COM", "anchor", "xanchor", "xxabc", "abc\n", "aaa", "a",
             "xy", "x  y", "a.b", "axb", "foobar", "foobaz", "case", "CASE", "dot\nall", "dot\nnone",
             "dotxnone", "555-1234", "inner", "innerx", "y", "xy@", "noat", "in"]
HEADER_KEYS = ["Subject: Make Money Fast now", "To: friend@public.com", "X-Mailer: Outlook 16",
               "Received: from x ([192.0.2.5]) by y", "Subject: hello"]
CIDR_KEYS = ["192.168.1.5", "192.168.1.255", "10.0.0.1", "10.9.9.9", "2001:db8::1", "2001:0DB8:0::5",
             "2001:db8:0:0::5", "::1", "0:0::1", "172.16.5.5", "172.31.255.255", "8.8.8.8", "notanip",
             "010.1.1.1", "1.2.3", "[10.0.0.1]", "2001:db9::1", "::ffff:10.0.0.1", "fe80::1", "fe80::1%eth0"]
TRICKY_CIDR_KEYS = ["100.64.1.9", "100.64.2.9", "100.64.3.9", "100.65.0.1", "1.2.3.5", "[1.2.3.5]", "1.2.3.7",
                    "192.168.1.1", "10.1.1.1", "2001:db8::1", "fe80::abcd", "FE80::ABCD", "11.0.0.1"]
TRICKY_ALIAS_KEYS = [f"a{i}" for i in range(1, 24)] + ["quoted name", '"quoted name"', "upper", "UPPER",
                                                       "owner-list", "list-request", "list", "nocolon",
                                                       "@domain", "user@host", "k", "", "@"]


def corpus() -> list[Case]:
    seeds = seed_files()
    generated, generated_keys = generated_table()
    read = lambda name: (TABLES / name).read_bytes()  # noqa: E731
    cases = [
        Case("seed003_access", "postmap", "hash", seeds["seed003_access"], SEED_ACCESS_KEYS),
        Case("seed003_access_printed", "postmap", "hash", seeds["seed003_access_printed"], SEED_ACCESS_KEYS),
        Case("seed003_aliases", "postalias", "hash", seeds["seed003_aliases"], ALIAS_KEYS),
        Case("seed003_aliases_printed", "postalias", "hash", seeds["seed003_aliases_printed"], ALIAS_KEYS),
        Case("seed004_aliases", "postalias", "hash", seeds["seed004_aliases"], ALIAS_KEYS),
        Case("seed004_aliases_zhangsan", "postalias", "lmdb", seeds["seed004_aliases_zhangsan"], ALIAS_KEYS),
        Case("generated", "postmap", "hash", generated, generated_keys),
        Case("access_full", "postmap", "hash", read("access_full"), ACCESS_KEYS),
        Case("access_full_btree", "postmap", "btree", read("access_full"), ACCESS_KEYS[::2]),
        Case("tricky_map", "postmap", "hash", read("tricky_map"), TRICKY_MAP_KEYS),
        Case("transport", "postmap", "cdb", read("transport"), ["example.com", ".example.com", "*",
                                                                "lists.example.org", "x.example.com"]),
        Case("virtual", "postmap", "lmdb", read("virtual"), VIRTUAL_KEYS),
        Case("texthash_src", "postmap", "texthash", read("texthash_src"), ["alpha", "ALPHA", "beta", "Beta",
                                                                          '"gamma delta"', "gamma delta"]),
        Case("access_regexp", "postmap", "regexp", read("access_regexp"), REGEXP_KEYS),
        Case("tricky_regexp", "postmap", "regexp", read("tricky_regexp"), TRICKY_REGEXP_KEYS),
        Case("tricky_pcre", "postmap", "pcre", read("tricky_pcre"), PCRE_KEYS),
        Case("header_checks.pcre", "postmap", "pcre", read("header_checks.pcre"), HEADER_KEYS),
        Case("clients.cidr", "postmap", "cidr", read("clients.cidr"), CIDR_KEYS),
        Case("tricky.cidr", "postmap", "cidr", read("tricky.cidr"), TRICKY_CIDR_KEYS),
        Case("tricky_aliases", "postalias", "hash", read("tricky_aliases"), TRICKY_ALIAS_KEYS),
        Case("inline", "postmap", "inline", None, ["foo", "FOO", "k2", "k3", "K3", "bar", ""],
             spec="inline:{ foo=bar, { k2 = v with spaces }, K3=v3 }"),
        Case("static", "postmap", "static", None, ["anything", ""], spec="static:{ a b  c }"),
        Case("unionmap", "postmap", "unionmap", None, ["alpha", "key1", "nothing"],
             spec="unionmap:{texthash:{dir}/texthash_src, hash:{dir}/tricky_map}",
             needs=["texthash_src", "tricky_map"]),
        Case("pipemap", "postmap", "pipemap", None, ["gamma delta", '"gamma delta"', "alpha"],
             spec="pipemap:{texthash:{dir}/texthash_src, inline:{gd=piped}}", needs=["texthash_src"]),
        Case("utf8_map", "postmap", "hash", "Straße v1\nÉCOLE v2\nascii v3\n".encode(),
             ["strasse", "STRASSE", "straße", "école", "ÉCOLE", "Ascii"], main_cf="smtputf8_enable = yes\n"),
    ]
    return cases
