"""Property-based fuzzing of the KQL front end and the telemetry readers (issue 13).

The strategies and the properties live in plain modules (``kql_grammar``, ``mutation``,
``properties``) so that ``bench/fuzz.py`` runs the very same checks for minutes with random
seeds, while the tests here run a few fixed-seed examples in CI.

``TRUSTWATCH_FUZZ=long`` makes the tests use the ``trustwatch-fuzz-long`` hypothesis profile
(random seeds, many examples) instead of their fixed seeds::

    TRUSTWATCH_FUZZ=long .venv/bin/python -m pytest -p no:xdist tests/fuzz
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

LONG_PROFILE = "trustwatch-fuzz-long"
LONG = os.environ.get("TRUSTWATCH_FUZZ") == "long"

settings.register_profile(
    LONG_PROFILE,
    max_examples=2_000,
    deadline=None,
    derandomize=False,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def fixed_seeds(max_examples: int) -> settings:
    """The CI settings of one fuzz test: ``max_examples`` fixed-seed examples, no deadline.

    Fixed seeds (``derandomize``) make a CI failure reproducible and the run's time stable; no
    example database is written into the checkout. Under ``TRUSTWATCH_FUZZ=long`` the long
    profile's settings instead.
    """
    if LONG:
        return settings(settings.get_profile(LONG_PROFILE))
    return settings(
        max_examples=max_examples,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
