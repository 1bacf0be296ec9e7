"""The Azure-Sentinel repository's rule schema, as data: keys, limits, enums, ATT&CK tactics,
entity identifiers, and the lint codes. Read by :mod:`trustwatch.rules.lint`.

Sources: ``reference/sentinel_rule_format.md`` (the repository's CI models under
``.script/tests/detectionTemplateSchemaValidation``) and MITRE ATT&CK for technique tactics.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import NamedTuple

from trustwatch.guides.model import GUIDE_CODES
from trustwatch.severity import SEVERITIES

# --- codes ------------------------------------------------------------------------------------

ERROR, WARNING, KNOWN = "error", "warning", "known"

#: code -> (severity, what it means). ``known`` is never a default: it is an error downgraded
#: because the rule's tests file documents it under ``known_defects``.
CODES: Mapping[str, tuple[str, str]] = {
    "RULE101": (ERROR, "a required key is missing"),
    "RULE102": (ERROR, "id is not a GUID"),
    "RULE103": (ERROR, "id is used by another rule"),
    "RULE104": (ERROR, "name is empty or longer than 256 characters"),
    "RULE105": (ERROR, "description is empty or longer than 5000 characters"),
    "RULE106": (ERROR, "severity is not Informational, Low, Medium or High"),
    "RULE107": (ERROR, "kind is not Scheduled or NRT"),
    "RULE108": (ERROR, "requiredDataConnectors is not a list of {connectorId, dataTypes}"),
    "RULE109": (ERROR, "connectorId is not a known data connector"),
    "RULE110": (ERROR, "queryFrequency/queryPeriod is not a duration"),
    "RULE111": (ERROR, "queryFrequency/queryPeriod is outside 5m..14d"),
    "RULE112": (ERROR, "queryPeriod is shorter than queryFrequency"),
    "RULE113": (ERROR, "queryPeriod is 2d or more but queryFrequency is under 1h"),
    "RULE114": (ERROR, "triggerOperator is not gt, lt, eq or ne"),
    "RULE115": (ERROR, "triggerThreshold is not an integer in 0..10000"),
    "RULE116": (ERROR, "a tactic is not an AttackTactic value"),
    "RULE117": (ERROR, "a technique is not written T1234 or T1234.567"),
    "RULE118": (ERROR, "a technique's ATT&CK tactic is not in tactics"),
    "RULE119": (WARNING, "a technique is not in trustwatch's table: tactic check skipped"),
    "RULE120": (ERROR, "query is empty or longer than 10000 characters"),
    "RULE121": (ERROR, "entityMappings is not a list of 1..10 entity mappings"),
    "RULE122": (ERROR, "entityType is not a known entity type"),
    "RULE123": (ERROR, "fieldMappings is not a list of 1..3 {identifier, columnName}"),
    "RULE124": (ERROR, "identifier is not valid for the entity type"),
    "RULE125": (ERROR, "identifier is mapped twice in one entity"),
    "RULE126": (ERROR, "an entity maps none of its required identifiers"),
    "RULE127": (ERROR, "columnName is not a column name (^[a-zA-Z_]+\\w*$, <= 500)"),
    "RULE128": (ERROR, "customDetails is not a mapping of at most 20 entries"),
    "RULE129": (ERROR, "a customDetails key is not ^[a-zA-Z]+\\w*$ (<= 20 characters)"),
    "RULE130": (ERROR, "a customDetails value is not a column name"),
    "RULE131": (ERROR, "an alertDetailsOverride format is empty or too long (256 / 5000)"),
    "RULE132": (ERROR, "an alertDetailsOverride format has more than 3 {{Column}} placeholders"),
    "RULE133": (ERROR, "eventGroupingSettings.aggregationKind is not SingleAlert/AlertPerResult"),
    "RULE134": (ERROR, "version is not X.Y.Z"),
    "RULE201": (ERROR, "a column named by the rule is not in the query's output"),
    "RULE202": (ERROR, "the alertSeverityColumnName column is not a string"),
    "RULE203": (ERROR, "the query with its run_with does not compile"),
    "RULE204": (ERROR, "a known defect is listed but the query compiles without it"),
    "RULE205": (WARNING, "a table the query reads is in no requiredDataConnectors dataTypes"),
    "RULE301": (ERROR, "the rule has no tests file"),
    "RULE302": (ERROR, "fewer than 2 'expect: alert' test cases"),
    "RULE303": (ERROR, "fewer than 2 'expect: no-alert' test cases"),
    "RULE401": (ERROR, "a non-ASCII character in the file"),
    "RULE402": (ERROR, "a key appears twice in one YAML mapping"),
    **{code: (ERROR, meaning) for code, meaning in GUIDE_CODES.items()},
}

# --- tables -----------------------------------------------------------------------------------

SCHEDULED_KEYS = (
    "id",
    "name",
    "description",
    "severity",
    "requiredDataConnectors",
    "queryFrequency",
    "queryPeriod",
    "triggerOperator",
    "triggerThreshold",
    "tactics",
    "relevantTechniques",
    "query",
    "entityMappings",
    "version",
    "kind",
)
_NRT_ONLY_SKIPS = {"queryFrequency", "queryPeriod", "triggerOperator", "triggerThreshold"}
NRT_KEYS = tuple(k for k in SCHEDULED_KEYS if k not in _NRT_ONLY_SKIPS)  # NRT runs every minute

#: key -> (code, maximum length); each must also be non-empty text.
TEXT_LIMITS: Mapping[str, tuple[str, int]] = {
    "name": ("RULE104", 256),
    "description": ("RULE105", 5000),
    "query": ("RULE120", 10000),
}

#: key -> (code, allowed values).
ENUM_KEYS: Mapping[str, tuple[str, tuple[str, ...]]] = {
    "severity": ("RULE106", SEVERITIES),
    "kind": ("RULE107", ("Scheduled", "NRT")),
}

# Partial: the connector ids this project's tables come from, and a few common ones. The real
# list is Azure-Sentinel's .script/tests/detectionTemplateSchemaValidation/ValidConnectorIds.json;
# add ids here when a rule needs one.
CONNECTOR_IDS = frozenset(
    {
        "MicrosoftThreatProtection",  # Defender XDR: Device* tables
        "MicrosoftDefenderAdvancedThreatProtection",
        "SecurityEvents",  # SecurityEvent (legacy agent)
        "WindowsSecurityEvents",  # SecurityEvent (AMA)
        "WindowsForwardedEvents",  # WindowsEvent
        "AzureActiveDirectory",
        "AzureActivity",
        "Office365",
        "Syslog",
        "CommonEventFormat",
        "ThreatIntelligence",
        "ThreatIntelligenceTaxii",
        "CorelightConnectorExporter",  # Corelight (Zeek): Corelight_v2_*_CL tables
        "CustomlogsviaAMA",  # custom text/JSON logs (Suricata EVE into Suricata_tls_CL)
    }
)

SCHEDULE_KEYS = ("queryFrequency", "queryPeriod")
MIN_SCHEDULE, MAX_SCHEDULE = timedelta(minutes=5), timedelta(days=14)
LONG_PERIOD, LONG_PERIOD_MIN_FREQUENCY = timedelta(days=2), timedelta(hours=1)
MAX_THRESHOLD = 10000

ATTACK_TACTICS = (
    "InitialAccess",
    "Execution",
    "Persistence",
    "PrivilegeEscalation",
    "DefenseEvasion",
    "CredentialAccess",
    "Discovery",
    "LateralMovement",
    "Collection",
    "Exfiltration",
    "CommandAndControl",
    "Impact",
    "Reconnaissance",
    "ResourceDevelopment",
    "ImpairProcessControl",
    "InhibitResponseFunction",
)

#: ATT&CK (Enterprise) technique -> its tactics, for the techniques this pack can use. A
#: sub-technique missing here falls back to its parent. A rule must list at least one of a
#: technique's tactics.
TECHNIQUE_TACTICS: Mapping[str, tuple[str, ...]] = {
    "T1036": ("DefenseEvasion",),  # Masquerading
    "T1036.003": ("DefenseEvasion",),  # Rename System Utilities
    "T1059": ("Execution",),  # Command and Scripting Interpreter
    "T1059.001": ("Execution",),  # PowerShell
    "T1071": ("CommandAndControl",),  # Application Layer Protocol
    "T1082": ("Discovery",),  # System Information Discovery
    "T1105": ("CommandAndControl",),  # Ingress Tool Transfer
    "T1140": ("DefenseEvasion",),  # Deobfuscate/Decode Files or Information
    "T1187": ("CredentialAccess",),  # Forced Authentication
    "T1222": ("DefenseEvasion",),  # File and Directory Permissions Modification
    "T1518": ("Discovery",),  # Software Discovery
    "T1552": ("CredentialAccess",),  # Unsecured Credentials
    "T1552.004": ("CredentialAccess",),  # Private Keys
    "T1553": ("DefenseEvasion",),  # Subvert Trust Controls
    "T1553.003": ("DefenseEvasion",),  # SIP and Trust Provider Hijacking
    "T1553.004": ("DefenseEvasion",),  # Install Root Certificate
    "T1562": ("DefenseEvasion",),  # Impair Defenses
    "T1562.002": ("DefenseEvasion",),  # Disable Windows Event Logging
    "T1557": ("CredentialAccess", "Collection"),  # Adversary-in-the-Middle
    "T1571": ("CommandAndControl",),  # Non-Standard Port
    "T1573": ("CommandAndControl",),  # Encrypted Channel
    "T1583": ("ResourceDevelopment",),  # Acquire Infrastructure
    "T1583.001": ("ResourceDevelopment",),  # Domains
    "T1587": ("ResourceDevelopment",),  # Develop Capabilities
    "T1587.003": ("ResourceDevelopment",),  # Digital Certificates
    "T1588": ("ResourceDevelopment",),  # Obtain Capabilities
    "T1588.004": ("ResourceDevelopment",),  # Digital Certificates
    "T1649": ("CredentialAccess",),  # Steal or Forge Authentication Certificates
}


class EntitySpec(NamedTuple):
    """An entity type's valid identifiers, and the combinations of which one must be mapped."""

    identifiers: frozenset[str]
    required: tuple[tuple[str, ...], ...]


def _entity(identifiers: str, required: str) -> EntitySpec:
    """An EntitySpec from space-separated identifiers and alternatives (``A B`` or ``A+B``)."""
    return EntitySpec(
        frozenset(identifiers.split()), tuple(tuple(r.split("+")) for r in required.split())
    )


# Sentinel's entity types (the common ones; mail cluster/message, submission mail and IoT device
# are not modelled and are reported as unknown).
ENTITY_TYPES: Mapping[str, EntitySpec] = {
    "Account": _entity(
        "Name FullName NTDomain DnsDomain UPNSuffix Sid AadTenantId AadUserId PUID "
        "IsDomainJoined DisplayName ObjectGuid CloudAppAccountId",
        "FullName Sid Name AadUserId PUID ObjectGuid",
    ),
    "Host": _entity(
        "DnsDomain NTDomain HostName FullName NetBiosName AzureID OMSAgentID OSFamily "
        "OSVersion IsDomainJoined",
        "FullName HostName NetBiosName AzureID OMSAgentID",
    ),
    "IP": _entity("Address", "Address"),
    "URL": _entity("Url", "Url"),
    "File": _entity("Directory Name", "Name"),
    "FileHash": _entity("Algorithm Value", "Algorithm+Value"),
    "Process": _entity(
        "ProcessId CommandLine ElevationToken CreationTimeUtc", "CommandLine ProcessId"
    ),
    "RegistryKey": _entity("Hive Key", "Key Hive"),
    "RegistryValue": _entity("Name Value ValueType", "Name"),
    "DNS": _entity("DomainName", "DomainName"),
    "Mailbox": _entity(
        "MailboxPrimaryAddress DisplayName Upn ExternalDirectoryObjectId RiskLevel",
        "MailboxPrimaryAddress",
    ),
    "CloudApplication": _entity("AppId Name InstanceName", "AppId Name"),
    "AzureResource": _entity("ResourceId", "ResourceId"),
    "SecurityGroup": _entity(
        "DistinguishedName SID ObjectGuid", "DistinguishedName SID ObjectGuid"
    ),
    "Malware": _entity("Name Category", "Name"),
}
MAX_ENTITIES, MAX_FIELD_MAPPINGS, MAX_COLUMN_NAME = 10, 3, 500
MAX_CUSTOM_DETAILS, MAX_DETAIL_KEY = 20, 20

#: alertDetailsOverride format key -> maximum length
OVERRIDE_FORMATS: Mapping[str, int] = {
    "alertDisplayNameFormat": 256,
    "alertDescriptionFormat": 5000,
}
OVERRIDE_COLUMNS = ("alertTacticsColumnName", "alertSeverityColumnName")
MAX_PLACEHOLDERS = 3
AGGREGATION_KINDS = ("SingleAlert", "AlertPerResult")
MIN_CASES = 2  # of each expectation in the tests file

GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
TECHNIQUE = re.compile(r"^T\d{4}(\.\d{3})?$")
COLUMN_NAME = re.compile(r"^[a-zA-Z_]+\w*$")
DETAIL_KEY = re.compile(r"^[a-zA-Z]+\w*$")
VERSION = re.compile(r"^\d+\.\d+\.\d+$")
MAX_VERSION = 20
PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
