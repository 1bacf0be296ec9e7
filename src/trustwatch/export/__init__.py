"""Rules out: Sentinel YAML and ARM, Defender XDR custom detections, Sigma, Splunk and Elastic.

Pure functions from :class:`trustwatch.rules.model.Rule` objects to file contents
(:class:`trustwatch.export.model.ExportFile`); the ``rules export`` command writes them.
"""
