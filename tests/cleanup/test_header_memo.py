"""cleanup remembers rewritten address headers only while no canonical table could change
the answer: then a repeated From/To line is rewritten once and stored identically; with
canonical maps every header goes to the tables, so a table change is seen at once."""

from __future__ import annotations

from roost.config.diagnostics import Diagnostics
from roost.tables import indexed
from tests.cleanup.test_service import client, deliver, make_service, stored

MESSAGE = b"From: alice\r\nTo: bob, carol@example.net\r\nSubject: x\r\n\r\nbody\r\n"


def test_repeated_headers_are_rewritten_once_and_alike(tmp_path):
    service, _ = make_service(tmp_path, "local_header_rewrite_clients = static:all\n")
    assert service.header_rewrites == {}
    first, _ = deliver(service, MESSAGE, info=client())
    second, _ = deliver(service, MESSAGE, info=client(address="192.0.2.99"))
    texts = [stored(service, m.queue_id)[2] for m in (first, second)]
    for text in texts:
        assert "From: alice@example.test\n" in text
        assert "To: bob@example.test, carol@example.net\n" in text
    assert len(service.header_rewrites) == 2


def test_with_canonical_maps_each_header_asks_the_tables(tmp_path):
    source = tmp_path / "canonical"
    source.write_text("alice@example.test alice.smith@example.test\n")
    assert indexed.build("hash", str(source), Diagnostics())
    service, _ = make_service(tmp_path, f"local_header_rewrite_clients = static:all\n"
                                        f"canonical_maps = hash:{source}\n")
    assert service.header_rewrites is None
    message, _ = deliver(service, MESSAGE, info=client())
    assert "From: alice.smith@example.test\n" in stored(service, message.queue_id)[2]
