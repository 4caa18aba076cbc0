"""dreamerbench suites: one benchmark protocol per :class:`dreamerbench.suites.base.Suite`.

Importing this package is cheap: environment libraries are imported inside
each suite's ``make_env``.
"""

from __future__ import annotations

from dreamerbench.suites.atari import ATARI57, ATARI100K
from dreamerbench.suites.base import Env, Space, Suite
from dreamerbench.suites.bsuite import BSUITE
from dreamerbench.suites.crafter import CRAFTER
from dreamerbench.suites.dmc import DMC_PROPRIO, DMC_VISION
from dreamerbench.suites.dmlab import DMLAB30
from dreamerbench.suites.gym import DM_ENV, GYM
from dreamerbench.suites.minecraft import MINECRAFT_DIAMOND
from dreamerbench.suites.procgen import PROCGEN

SUITES: dict[str, Suite] = {
    suite.name: suite
    for suite in (
        ATARI100K,
        ATARI57,
        DMC_PROPRIO,
        DMC_VISION,
        CRAFTER,
        MINECRAFT_DIAMOND,
        PROCGEN,
        DMLAB30,
        BSUITE,
        GYM,
        DM_ENV,
    )
}


def get_suite(name: str) -> Suite:
    """The suite called ``name``; ValueError listing the valid names otherwise."""
    if name not in SUITES:
        raise ValueError(f"suite={name!r} is unknown; allowed: {', '.join(SUITES)}")
    return SUITES[name]


__all__ = ["Env", "SUITES", "Space", "Suite", "get_suite"]
