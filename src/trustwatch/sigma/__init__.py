"""Sigma rules in trustwatch: converted by pySigma's Kusto backend, run by trustwatch's engine.

``convert`` turns Sigma files into KQL over the Defender tables (cached), ``document`` makes
each a Sentinel scheduled rule, ``load`` gathers the rules that convert and compile and
accounts for the others, ``coverage`` says which columns a rule reads that ingest does not
fill, and ``regression`` runs SigmaHQ's regression cases (an EVTX per rule) through a hunt.
"""
