"""TLS: full handshakes, the raw hello codec, enumeration and the cipher-suite registry."""
