"""certscope: prove that cryptographic controls work."""

__version__ = "0.1.0"
