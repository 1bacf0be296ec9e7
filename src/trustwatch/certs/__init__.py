"""Certificates: registry Blob decoding, .reg exports and hives, trust stores, certificate files.

Parsing lives in ``blob``, ``regfile``, ``hive``, ``stores`` and ``files``; deciding what a
certificate *is* (public root, Microsoft lookalike, known-bad) lives beside them. Nothing here
touches the network: every input is a file or bytes the user gave.
"""
