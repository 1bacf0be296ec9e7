"""Microsoft Sentinel's alert severities, lowest first: shared by rules, alerts and certificates."""

from __future__ import annotations

# a rule's `severity` and a SecurityAlert's AlertSeverity take one of these
# (reference/sentinel_rule_format.md)
SEVERITIES = ("Informational", "Low", "Medium", "High")
