"""The on-disk encrypted speech library (manifest + SQLite rows + encrypted blobs + FAISS), its
writer lock, sealed metadata, and fsck / repair."""

from .store import (
    FORMAT_VERSION,
    IntegrityError,
    LibraryError,
    ModelMismatchError,
    SpeechLibrary,
    cipher_key_id,
    file_sha256,
)

__all__ = ["FORMAT_VERSION", "IntegrityError", "LibraryError", "ModelMismatchError", "SpeechLibrary",
           "cipher_key_id", "file_sha256"]
