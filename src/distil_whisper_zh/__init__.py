"""distil-whisper-zh: knowledge distillation and honest measurement of Whisper for Mandarin."""

__version__ = "0.1.0"
