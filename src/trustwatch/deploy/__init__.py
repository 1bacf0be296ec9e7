"""Deploy the rule pack to Microsoft Sentinel and Defender XDR through their REST APIs.

Plan first (read what exists, compare with what would be sent), then act, by rule id:
:mod:`trustwatch.deploy.sentinel` (alertRules, watchlists), :mod:`trustwatch.deploy.defender`
(Graph custom detection rules); HTTP through azure-core (:mod:`trustwatch.deploy.rest`).
"""
