"""Telemetry ingest: readers (I/O) -> normalisers (KQL field maps run in DuckDB) -> workspace."""
