"""What an uploaded file really is, judged by its content (no ORM, no storage).

The extension and the browser's Content-Type are the uploader's claims; the magic
bytes at the start of the content are what decides. Plain text has no magic, so it is
accepted only when the whole content is UTF-8 without control characters.
"""

import codecs
import hashlib
import os
from dataclasses import dataclass

PDF, PNG, JPEG, TIFF, TEXT = "application/pdf", "image/png", "image/jpeg", "image/tiff", "text/plain"

EXTENSIONS = {
    ".pdf": PDF,
    ".png": PNG,
    ".jpg": JPEG, ".jpeg": JPEG,
    ".tif": TIFF, ".tiff": TIFF,
    ".txt": TEXT, ".text": TEXT, ".csv": TEXT,
}
ALLOWED_TYPES = (PDF, PNG, JPEG, TIFF, TEXT)

_MAGIC = [
    (b"%PDF-", PDF),
    (b"\x89PNG\r\n\x1a\n", PNG),
    (b"\xff\xd8\xff", JPEG),
    (b"II*\x00", TIFF),
    (b"MM\x00*", TIFF),
]
# Control characters that do not occur in text a person typed (tab, LF, FF, CR do).
_CONTROL = set(range(0x00, 0x09)) | {0x0B} | set(range(0x0E, 0x20)) | {0x7F}


@dataclass(frozen=True)
class Sniffed:
    content_type: str | None  # None: not one of the allowed types
    size: int
    sha256: str


def sniff(chunks) -> Sniffed:
    """Read the content once: its type by magic bytes (or strict UTF-8 text), size and SHA-256."""
    digest = hashlib.sha256()
    size = 0
    head = b""
    decoder = codecs.getincrementaldecoder("utf-8")()
    is_text = True
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
        if len(head) < 16:
            head += chunk[: 16 - len(head)]
        if is_text:
            try:
                decoder.decode(chunk)
                if _CONTROL.intersection(chunk):
                    is_text = False
            except UnicodeDecodeError:
                is_text = False
    if is_text:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            is_text = False
    content_type = next((ctype for magic, ctype in _MAGIC if head.startswith(magic)), None)
    if content_type is None and is_text and size:
        content_type = TEXT
    return Sniffed(content_type, size, digest.hexdigest())


def claimed_type(filename: str) -> str | None:
    """The type the file name's extension claims, or None when it has no known extension."""
    return EXTENSIONS.get(os.path.splitext(filename or "")[1].lower())


def clean_filename(filename: str) -> str:
    """The last path component, without control characters, at most 200 characters."""
    name = os.path.basename((filename or "").replace("\\", "/")).strip()
    name = "".join(ch for ch in name if ch.isprintable() and ch not in '"')
    if len(name) > 200:
        stem, ext = os.path.splitext(name)
        name = stem[: 200 - len(ext)] + ext
    return name or "file"
