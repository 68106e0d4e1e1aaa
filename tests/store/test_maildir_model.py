"""A model check: random sequences of deliveries, flag changes, expunges, copies and outside
renames, run on the Maildir store and on a plain dict; after every step both sessions agree
with the model, UIDs ascend and are never reused, MODSEQs only grow."""

from __future__ import annotations

import io
import os
import shutil
import tempfile

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from roost.store.location import MailLocation, MailSettings
from roost.store.maildir import MaildirUserStore

FLAGS = ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"]
KEYWORDS = ["$Forwarded", "work", "later", "tag1", "tag2"]


class StoreModel(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="roost-model-")
        location = MailLocation("maildir", os.path.join(self.dir, "Maildir"))
        mail = MailSettings(mail_fsync="never")
        self.store = MaildirUserStore("alice", location, mail)
        self.other = MaildirUserStore("alice", location, mail)
        self.store.create_mailbox("Other")
        # 24 of the 26 keyword letters already taken: most keywords here live in roost.index
        for mailbox in ("", ".Other"):
            with open(os.path.join(self.dir, "Maildir", mailbox, "dovecot-keywords"), "w") as f:
                f.write("".join(f"{i} pre{i}\n" for i in range(24)))
        self.box = self.store.open_mailbox("INBOX")
        self.model: dict[int, frozenset[str]] = {}
        self.given: set[int] = set()
        self.modseqs: dict[int, int] = {}
        self.highest = self.box.highestmodseq

    def teardown(self):
        self.box.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(flags=st.sets(st.sampled_from(FLAGS + KEYWORDS), max_size=3))
    def deliver(self, flags):
        system = frozenset(f for f in flags if f.startswith("\\"))
        uid = self.other.deliver("INBOX", io.BytesIO(b"Subject: m\n\nbody\n"), flags=system,
                                 keywords=frozenset(flags) - system)
        assert uid not in self.given and all(uid > old for old in self.given)
        self.given.add(uid)
        self.model[uid] = frozenset(flags)

    @rule(data=st.data(), mode=st.sampled_from(["add", "remove", "replace"]),
          flags=st.sets(st.sampled_from(FLAGS + KEYWORDS), max_size=3),
          mine=st.booleans())
    def set_flags(self, data, mode, flags, mine):
        if not self.model:
            return
        uids = data.draw(st.sets(st.sampled_from(sorted(self.model)), min_size=1))
        box = self.box if mine else self.other.open_mailbox("INBOX")
        box.refresh()
        system = frozenset(f for f in flags if f.startswith("\\"))
        box.set_flags(uids, system, frozenset(flags) - system, mode)
        for uid in uids:
            have = self.model[uid]
            self.model[uid] = (have | flags if mode == "add" else have - flags
                               if mode == "remove" else frozenset(flags))

    @rule(data=st.data())
    def expunge(self, data):
        if not self.model:
            return
        uids = data.draw(st.sets(st.sampled_from(sorted(self.model)), max_size=2))
        self.box.refresh()
        assert sorted(self.box.expunge(uids)) == sorted(uids)
        for uid in uids:
            del self.model[uid]

    @rule()
    def expunge_deleted(self):
        other = self.other.open_mailbox("INBOX")
        gone = other.expunge()
        assert sorted(gone) == sorted(u for u, f in self.model.items() if "\\Deleted" in f)
        for uid in gone:
            del self.model[uid]

    @rule(data=st.data())
    def outside_rename(self, data):
        """Another program (mutt) sets \\Seen by renaming the file."""
        if not self.model:
            return
        uid = data.draw(st.sampled_from(sorted(self.model)))
        path = self.other.open_mailbox("INBOX").message_path(uid)
        name = os.path.basename(path)
        base, _sep, info = name.partition(":2,")
        if "S" in info:
            return
        letters = "".join(sorted(info + "S", key=lambda c: (c.islower(), c)))
        os.rename(path, os.path.join(os.path.dirname(os.path.dirname(path)), "cur",
                                     f"{base}:2,{letters}"))
        self.model[uid] = self.model[uid] | {"\\Seen"}

    @rule(data=st.data())
    def copy(self, data):
        if not self.model:
            return
        uids = data.draw(st.sets(st.sampled_from(sorted(self.model)), min_size=1, max_size=2))
        self.box.refresh()
        pairs = self.box.copy(uids, "Other")
        assert sorted(source for source, _dest in pairs) == sorted(uids)
        copies = {i.uid: i.flags | i.keywords for i in self.store.open_mailbox("Other").messages()}
        for source, dest in pairs:
            assert copies[dest] == self.model[source]

    @invariant()
    def sessions_agree_with_the_model(self):
        self.box.refresh()
        for box in (self.box, self.other.open_mailbox("INBOX")):
            seen = {i.uid: i.flags | i.keywords for i in box.messages()}
            assert seen == self.model
            assert box.highestmodseq >= max((i.modseq for i in box.messages()), default=0)
        for info in self.box.messages():
            assert info.modseq >= self.modseqs.get(info.uid, 0)
            self.modseqs[info.uid] = info.modseq
        assert self.box.highestmodseq >= self.highest
        self.highest = self.box.highestmodseq
        assert self.box.uidnext > max(self.given, default=0)


StoreModel.TestCase.settings = settings(max_examples=25, stateful_step_count=25, deadline=None)
test_store_model = StoreModel.TestCase
