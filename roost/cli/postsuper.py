"""`postsuper`: queue maintenance by the administrator (Postfix postsuper(1)).

Operations, each on queue IDs (`-` reads IDs from standard input, one per line, `ALL` means
every message of the queues named after it, default hold incoming active deferred):
  -d ID   delete                 "postsuper: Deleted: N messages"
  -h ID   put on hold            "postsuper: Placed on hold: N messages"
  -H ID   release from hold      "postsuper: Released from hold: N messages" (into deferred,
          due at once)
  -r ID   requeue: back through pickup/cleanup via maildrop (address rewriting is redone)
          "postsuper: Requeued: N messages"
  -p      remove temporary files left by crashed writers
  -s      structure check: files at the wrong hash depth are moved where they belong
  -c DIR  configuration directory; -v accepted.
Operations run in Postfix's order (requeue, delete, hold, release) whatever the command
line order. A message named by its ID is reported on stderr and in the log as Postfix 3.7
does (`postsuper: ID: removed`, `placed on hold`, `released from hold`, `requeued`); `ALL`
only gives the counts, which are printed and logged for every operation asked for, even 0.
A malformed ID is skipped with `postsuper: warning: invalid mail queue id: X`.
The queue manager is poked afterwards so it looks at the queue at once.

Exit status: 0, or 1 for a usage error.
Invariants: moves are renames inside queue_directory; nothing else is touched.
Security: meant for root / the mail owner; queue IDs are validated before any path is built.
"""

from __future__ import annotations

import os
import sys
import time

from roost.cli.mainconf import config_directory, main_settings, tool_logger
from roost.qmgr.trigger import send_request
from roost.queue import QueueLayout, is_queue_id

DEFAULT_QUEUES = ("hold", "incoming", "active", "deferred")
ACTIONS = {"-d": "delete", "-h": "hold", "-H": "release", "-r": "requeue"}
SUMMARY = {"delete": "Deleted", "hold": "Placed on hold", "release": "Released from hold",
           "requeue": "Requeued"}
LOGGED = {"delete": "removed", "hold": "placed on hold", "release": "released from hold",
          "requeue": "requeued"}
SOURCE_QUEUES = {"delete": DEFAULT_QUEUES + ("maildrop", "corrupt"),
                 "hold": ("incoming", "active", "deferred", "maildrop"),
                 "release": ("hold",), "requeue": ("hold", "incoming", "active", "deferred")}
TARGET = {"hold": "hold", "release": "deferred", "requeue": "maildrop"}


USAGE = ("usage: postsuper [-c config_dir] [-d queue_id (delete)] [-e queue_id (expire)] "
         "[-f queue_id (expire and/or un-hold)] [-h queue_id (hold)] [-H queue_id (un-hold)] "
         "[-p (purge temporary files)] [-r queue_id (requeue)] [-s (structure fix)] "
         "[-S (redundant structure fix)][-v (verbose)] [queue...]")  # Postfix 3.7's words


class Fatal(Exception):
    pass


def parse(argv: list[str]):
    config = None
    requests: list[tuple[str, str, tuple[str, ...]]] = []  # (action, id or ALL or -, queues)
    purge = check = False
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg == "-c" and args:
            config = args.pop(0)
        elif arg in ACTIONS:
            if not args:
                raise Fatal(f"option requires an argument -- '{arg[1]}'")
            target = args.pop(0)
            queues: list[str] = []
            while target == "ALL" and args and not args[0].startswith("-"):
                queues.append(args.pop(0))
            requests.append((ACTIONS[arg], target, tuple(queues)))
        elif arg == "-p":
            purge = True
        elif arg == "-s":
            check = True
        elif arg == "-v":
            continue
        else:
            if arg.startswith("-") and len(arg) > 1:
                print(f"postsuper: invalid option -- '{arg[1]}'", file=sys.stderr)
            raise Fatal(USAGE)
    return config, requests, purge, check


def targets(layout: QueueLayout, action: str, target: str, queues: tuple[str, ...], warn):
    """(queue, queue_id, path, named) of each message a request selects; `named`: the ID was
    given (Postfix reports those one by one, ALL only as a count)."""
    sources = queues or (SOURCE_QUEUES[action] if target != "ALL" else
                         tuple(q for q in DEFAULT_QUEUES if q in SOURCE_QUEUES[action]))
    if target == "ALL":
        for queue in sources:
            for queue_id, path in list(layout.scan(queue)):
                yield queue, queue_id, path, False
        return
    ids = [line.strip() for line in sys.stdin] if target == "-" else [target]
    for queue_id in ids:
        if not queue_id:
            continue
        if not is_queue_id(queue_id):
            warn(f"invalid mail queue id: {queue_id}")
            continue
        found = layout.find(queue_id, sources)
        if found is not None:
            yield found[0], queue_id, found[1], True


def apply(layout: QueueLayout, action: str, queue: str, queue_id: str, path: str) -> bool:
    try:
        if action == "delete":
            os.unlink(path)
            return True
        destination = os.path.join(layout.ensure_directory(TARGET[action], queue_id), queue_id)
        os.rename(path, destination)
        if action == "release":
            now = time.time()
            os.utime(destination, (now, now))  # due at once
        return True
    except OSError:
        return False


def purge_temporary(layout: QueueLayout, older_than: float = 60.0) -> int:
    removed = 0
    now = time.time()
    for queue in ("incoming", "maildrop"):
        directory = layout.queue_dir(queue)
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for name in names:
            path = os.path.join(directory, name)
            try:
                if name.startswith("t.") and now - os.lstat(path).st_mtime > older_than:
                    os.unlink(path)
                    removed += 1
            except OSError:
                pass
    return removed


def rehash(layout: QueueLayout) -> int:
    moved = 0
    for queue in ("incoming", "active", "deferred", "hold", "corrupt", "maildrop"):
        for queue_id, path in list(layout.scan(queue)):
            wanted = layout.path(queue, queue_id)
            if path != wanted:
                layout.ensure_directory(queue, queue_id)
                try:
                    os.rename(path, wanted)
                    moved += 1
                except OSError:
                    pass
    return moved


ORDER = ("requeue", "delete", "hold", "release")  # Postfix's, whatever the command line order


def main(argv: list[str]) -> int:
    try:
        config, requests, purge, check = parse(argv[1:])
        settings = main_settings(config_directory(config))
    except Fatal as exc:
        print(f"postsuper: fatal: {exc}", file=sys.stderr)
        return 1
    layout = QueueLayout.from_settings(settings)
    log = tool_logger(settings, "postsuper")

    def say(text: str, warning: bool = False) -> None:
        print(f"postsuper: {'warning: ' if warning else ''}{text}", file=sys.stderr)
        (log.warning if warning else log.info)(text)

    counts: dict[str, int] = {}
    for action in ORDER:
        for requested, target, queues in requests:
            if requested != action:
                continue
            counts.setdefault(action, 0)
            for queue, queue_id, path, named in targets(
                    layout, action, target, queues, lambda text: say(text, warning=True)):
                if apply(layout, action, queue, queue_id, path):
                    counts[action] += 1
                    if named:
                        say(f"{queue_id}: {LOGGED[action]}")
    if purge:
        purge_temporary(layout)
    if check:
        rehash(layout)
    for action in ORDER:
        if action in counts:   # reported when asked for, even as 0 (Postfix does)
            count = counts[action]
            say(f"{SUMMARY[action]}: {count} message{'s' if count != 1 else ''}")
    if any(counts.values()):
        send_request(settings.get("queue_directory"), "A")
    return 0
