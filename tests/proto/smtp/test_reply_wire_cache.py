"""Reply.to_bytes keeps its wire form on the instance: both forms (with and without the
enhanced code) stay right however they are asked, and equality/hashing ignore the cache."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from roost.proto.smtp.reply import Reply


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([250, 421, 550]), st.text(max_size=40), st.booleans())
def test_wire_form_is_stable_and_per_option(code, text, plain_first):
    reply = Reply(code, f"{str(code)[0]}.0.0", text)
    fresh = Reply(code, f"{str(code)[0]}.0.0", text)
    order = (False, True) if plain_first else (True, False)
    for enhanced in order + order:
        assert reply.to_bytes(enhanced) == b"".join(fresh.lines(enhanced))
    assert reply == fresh and hash(reply) == hash(fresh)
    assert reply.to_bytes(True) != reply.to_bytes(False)
