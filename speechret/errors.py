"""The root of every error speechret raises on bad input: ``except SpeechretError`` catches them all.

Each domain error keeps the builtin base it had (``ValueError`` for bad values, ``RuntimeError``
for a failed operation), so existing ``except ValueError`` handlers keep working:

* :class:`speechret.audio.AudioError` - one audio file or waveform;
* :class:`speechret.data.item.ManifestError` - a manifest or corpus layout;
* :class:`speechret.data.synthetic.espeak.SynthesisError` - espeak-ng synthesis;
* :class:`speechret.crypto.base.CipherError` (and ``AuthenticationError``, ``WrongKeyError``);
* :class:`speechret.library.store.LibraryError` (and ``IntegrityError``);
* :class:`ConfigError` - a configuration value that cannot work (names the key and the problem).

This module imports nothing from the package, so every layer can use it.
"""

from __future__ import annotations


class SpeechretError(Exception):
    """Base class of every error speechret raises on bad input or a failed operation."""


class ConfigError(SpeechretError, ValueError):
    """A configuration value that cannot work; the message names the key and the problem."""


__all__ = ["ConfigError", "SpeechretError"]
