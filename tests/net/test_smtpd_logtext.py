"""roost.smtpd.logtext.disconnect keeps the counter text per distinct set of counters: the
line must stay exactly Postfix's whatever the cache holds (repeated, mixed, after a clear)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from roost.smtpd import logtext

NAMES = ["helo", "ehlo", "starttls", "auth", "mail", "rcpt", "data", "bdat", "rset", "noop", "quit", "unknown",
         "xclient"]


def _expected(who: str, stats: dict) -> str:
    order = logtext._ORDER
    items = sorted(stats.items(), key=lambda item: order.get(item[0], len(order)))
    parts = [f"{n}={ok}" if ok == count else f"{n}={ok}/{count}" for n, (ok, count) in items]
    ok_total, total = sum(v[0] for v in stats.values()), sum(v[1] for v in stats.values())
    parts.append(f"commands={ok_total}" if ok_total == total and total else f"commands={ok_total}/{total}")
    return f"disconnect from {who} " + " ".join(parts)


def test_known_lines():
    stats = {"helo": [1, 1], "mail": [1, 1], "rcpt": [0, 1], "data": [0, 1], "quit": [1, 1]}
    for _ in range(3):
        assert logtext.disconnect("unknown[127.0.0.1]", stats) == (
            "disconnect from unknown[127.0.0.1] helo=1 mail=1 rcpt=0/1 data=0/1 quit=1 commands=3/5")
    assert logtext.disconnect("a[192.0.2.1]", {}) == "disconnect from a[192.0.2.1] commands=0/0"
    stats["rcpt"][0] = 1  # the same dict, other counts: another line
    assert logtext.disconnect("b[192.0.2.2]", stats).endswith("rcpt=1 data=0/1 quit=1 commands=4/5")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(NAMES), st.integers(0, 3), st.integers(0, 3)), max_size=6),
       st.sampled_from(["unknown[127.0.0.1]", "mx.example[192.0.2.9]"]), st.booleans())
def test_cached_text_equals_the_computed_line(entries, who, clear):
    if clear:
        logtext._COUNTERS.clear()
    stats = {}
    for name, ok, extra in entries:
        stats[name] = [ok, ok + extra]
    assert logtext.disconnect(who, stats) == _expected(who, stats)
    assert logtext.disconnect(who, stats) == _expected(who, stats)
