"""Model loading, import from CTranslate2, and the non-weight assets of a Whisper model dir."""

from .loading import LoadedWhisper, load_whisper, resolve_model

__all__ = ["LoadedWhisper", "load_whisper", "resolve_model"]
