"""Where the benchmarks put their private spools, so that file creation is measured fairly.

On this machine's ext4 (no journal) every inode allocation scans past the inodes freed in the
last minutes in the parent directory's block group (fs/ext4/ialloc.c, recently_deleted()).
Test suites churn /tmp's group, and each benchmark run's own clean-up churns the group it
used, so a create can cost ~0.5 ms of system CPU instead of ~0.02 ms: more than the rest of
an SMTP transaction, and the same for any server measured there. The benchmarks therefore
work under BASE_DIR, a directory with the ext4 "top directory" flag (chattr +T): each new
base directory below it is placed in a fresh block group, as top-level directories are.
"""

from __future__ import annotations

import fcntl
import os
import struct
import tempfile

BASE_DIR = "/var/tmp/roost-bench"
FS_IOC_GETFLAGS = 0x80086601
FS_IOC_SETFLAGS = 0x40086602
FS_TOPDIR_FL = 0x00020000


def make_base(prefix: str, parent: str = BASE_DIR) -> str:
    """A new private directory under `parent` (made with the top-directory flag when the
    file system has one; elsewhere it is just a directory)."""
    os.makedirs(parent, mode=0o755, exist_ok=True)
    fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        flags = struct.unpack("l", fcntl.ioctl(fd, FS_IOC_GETFLAGS, struct.pack("l", 0)))[0]
        if not flags & FS_TOPDIR_FL:
            fcntl.ioctl(fd, FS_IOC_SETFLAGS, struct.pack("l", flags | FS_TOPDIR_FL))
    except OSError:
        pass  # not ext2/3/4: nothing to do
    finally:
        os.close(fd)
    return tempfile.mkdtemp(prefix=prefix, dir=parent)
