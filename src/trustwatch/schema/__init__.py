"""Table schemas: the typed columns of every Defender and Sentinel table a query can read."""
