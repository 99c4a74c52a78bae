"""The exporter's HTTP edge: who may ask for what (allow-list, lifecycle, authentication, TLS)."""
