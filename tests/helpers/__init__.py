"""Helpers shared by the test modules and the benchmarks: real servers on loopback, the test PKI,
the exporter as a process or an in-process app, and readers for what it exposes.

pytest puts ``tests/`` on ``sys.path`` (rootdir-relative imports), so a test imports
``from helpers.pki import TestPKI``; the benchmarks put ``tests/`` on ``sys.path`` themselves.
Test modules never import from each other: what two of them share lives here.
"""
