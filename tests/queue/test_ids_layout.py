"""Queue IDs (short/long, as Postfix 3.7 makes them) and the queue directory layout."""

from __future__ import annotations

import os

import pytest

from roost.queue.ids import hash_key, is_long_id, is_queue_id, long_id, make_queue_id, short_id
from roost.queue.layout import BadQueueId, QueueLayout


def test_short_id_is_usec_hex_then_inode_hex():
    # observed: inode 2170901 (0x212015), microseconds 0x2D2F5 -> 2D2F5212015
    assert short_id(0x2D2F5, 2170901) == "2D2F5212015"
    assert short_id(5, 1) == "000051"


def test_long_id_matches_postfix():
    # observed from Postfix 3.7 with enable_long_queue_ids=yes (file inode 2171157)
    assert long_id(1795471962, 0xD244E, 2171157) == "4jYKty66VkzJLjh"
    assert is_long_id("4jYKty66VkzJLjh")
    assert not is_long_id("2D2F5212015")


def test_hash_key_is_the_microseconds_for_both_forms():
    # observed: Postfix put 4jYKty66VkzJLjh in hold/D/2 and 2D2F5212015 in hold/2/D
    assert hash_key("4jYKty66VkzJLjh")[:2] == "D2"
    assert hash_key("2D2F5212015")[:2] == "2D"


@pytest.mark.parametrize("name", ["", "../etc", "abc/def", "2D2F5212015/", "lower123abc", ".", "t.123.4"])
def test_bad_names_are_not_queue_ids(name):
    assert not is_queue_id(name)


def test_generated_ids_round_trip():
    for seconds, usec, inode in [(0, 0, 0), (1795471962, 999999, 2**40), (2**33, 1, 7)]:
        for long_form in (False, True):
            queue_id = make_queue_id(seconds, usec, inode, long_form)
            assert is_queue_id(queue_id)
            assert hash_key(queue_id) == f"{usec:05X}"


def test_layout_hashes_configured_queues(tmp_path):
    layout = QueueLayout(str(tmp_path), frozenset({"deferred", "hold"}), 2)
    assert layout.path("deferred", "2D2F5212015") == os.path.join(str(tmp_path), "deferred", "2", "D", "2D2F5212015")
    assert layout.path("incoming", "2D2F5212015") == os.path.join(str(tmp_path), "incoming", "2D2F5212015")
    with pytest.raises(BadQueueId):
        layout.path("incoming", "../x")
    with pytest.raises(BadQueueId):
        layout.queue_dir("nonsense")


def test_scan_and_find_at_any_depth(tmp_path):
    layout = QueueLayout(str(tmp_path), frozenset({"deferred"}), 1)
    layout.ensure()
    path = layout.path("deferred", "2D2F5212015")
    os.makedirs(os.path.dirname(path))
    open(path, "w").close()
    flat = os.path.join(layout.queue_dir("deferred"), "3A1F2C0B12")  # left from hash_queue_depth=0
    open(flat, "w").close()
    open(os.path.join(layout.queue_dir("deferred"), "t.1.2"), "w").close()  # a writer's temp file
    assert sorted(queue_id for queue_id, _ in layout.scan("deferred")) == ["2D2F5212015", "3A1F2C0B12"]
    assert layout.find("3A1F2C0B12") == ("deferred", flat)
    assert layout.find("2D2F5212015") == ("deferred", path)
    assert layout.find("ABCDEF123") is None


def test_from_settings_reads_the_parameters(tmp_path):
    class FakeSettings:
        def get(self, name):
            return str(tmp_path)

        def list(self, name):
            return ("deferred", "defer", "hold")

        def int(self, name):
            return 2
    layout = QueueLayout.from_settings(FakeSettings())
    assert layout.hashed == {"deferred", "defer", "hold"} and layout.depth == 2
