"""What kind of archive a file is, from its first bytes, never from its name.

``tarfile.open(path, "r:*")`` tries every decompressor in turn; on a zero-filled file named
``.tar.gz`` LZMA takes the zeros for padding and reads the whole file, twice, in one C call
that nothing can interrupt. Reading the magic bytes first and opening with the one matching
mode makes such a file a one-line refusal in microseconds.
"""
from __future__ import annotations

import os

#: magic bytes at the start of the file -> kind
MAGIC = {
    b"PK\x03\x04": "zip",
    b"PK\x05\x06": "zip",          # an empty zip
    b"\x1f\x8b": "gzip",
    b"BZh": "bz2",
    b"\xfd7zXZ\x00": "xz",
}
#: a plain (POSIX or GNU) tar has "ustar" at offset 257 of its first header
TAR_MAGIC_OFFSET = 257
#: tarfile's explicit mode for each compressed or plain tar kind
TAR_MODES = {"gzip": "r:gz", "bz2": "r:bz2", "xz": "r:xz", "tar": "r:"}


def archive_kind(path: str | os.PathLike) -> str:
    """``zip``, ``gzip``, ``bz2``, ``xz`` or ``tar``; ValueError (one line) for anything else."""
    with open(path, "rb") as f:
        head = f.read(512)
    if not head:
        raise ValueError(f"{path} is empty, not an archive")
    for magic, kind in MAGIC.items():
        if head.startswith(magic):
            return kind
    if head[TAR_MAGIC_OFFSET:TAR_MAGIC_OFFSET + 5] == b"ustar":
        return "tar"
    if not head.strip(b"\0"):
        raise ValueError(f"{path} is not an archive: it starts with {len(head)} zero bytes")
    raise ValueError(f"{path} is not a zip or tar archive (.zip, .tar, .tar.gz, .tar.bz2, .tar.xz): "
                     f"its first bytes match none of them")
