"""The mail queue: queue IDs, directories, the queue file format, its writer and reader.

Modules: ids (Postfix short/long queue IDs), layout (queue_directory tree and hashing),
records (typed record format), writer (durable creation: fsync file + directory before
finish returns), reader (validation, envelope, content streaming, in-place done marks),
recovery (ready files, moves between queues, start-up recovery).
Security: nothing here follows symlinks out of the queue or trusts a file's claimed sizes.
"""

from roost.queue.ids import is_queue_id, make_queue_id
from roost.queue.layout import QueueLayout
from roost.queue.reader import QueueFile, QueueFileError, Recipient, iter_content, mark_done, read_envelope
from roost.queue.writer import DirectorySync, QueueFileWriter

__all__ = ["QueueLayout", "QueueFile", "QueueFileError", "Recipient", "QueueFileWriter", "DirectorySync",
           "read_envelope", "iter_content", "mark_done", "is_queue_id", "make_queue_id"]
