"""The on-disk encrypted speech library (manifest + SQLite metadata + encrypted blobs + FAISS)."""

from .store import (
    FORMAT_VERSION,
    IntegrityError,
    LibraryError,
    SpeechLibrary,
    cipher_key_id,
    file_sha256,
)

__all__ = ["FORMAT_VERSION", "IntegrityError", "LibraryError", "SpeechLibrary", "cipher_key_id", "file_sha256"]
