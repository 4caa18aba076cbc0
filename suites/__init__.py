"""dreamerbench suites: one benchmark protocol per :class:`suites.base.Suite`.

Importing this package is cheap: environment libraries are imported inside
each suite's ``make_env``.
"""

from __future__ import annotations

from suites.base import Env, Space, Suite
from suites.crafter import CRAFTER
from suites.dmc import DMC_PROPRIO, DMC_VISION

SUITES: dict[str, Suite] = {
    suite.name: suite
    for suite in (DMC_PROPRIO, DMC_VISION, CRAFTER)
}


def get_suite(name: str) -> Suite:
    """The suite called ``name``; ValueError listing the valid names otherwise."""
    if name not in SUITES:
        raise ValueError(f"suite={name!r} is unknown; allowed: {', '.join(SUITES)}")
    return SUITES[name]


__all__ = ["Env", "SUITES", "Space", "Suite", "get_suite"]
