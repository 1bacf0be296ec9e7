"""Investigation guides and response playbooks: per-rule content, filled with an alert's values."""
