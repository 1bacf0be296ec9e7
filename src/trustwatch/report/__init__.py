"""The report a person reads: ``hunt --report`` and ``investigate --report``, HTML or Markdown.

``gather`` asks the session what the report needs (a data summary, each incident investigated),
``build`` turns the results into plain values (``model``; ``charts`` lays out the SVG charts),
``html`` and ``markdown`` render them, each making every value from the logs inert in its own
way. ``render(report, path)`` picks the format from the file's extension.
"""
