"""Score references for normalisation: one home, importing nothing from the project.

The ``suites`` package may import from here (it must not restate these numbers).

Sources
-------
- Atari random and human ("gamer") scores: ``baselines.yaml`` published with DreamerV3
  (github.com/danijar/dreamerv3, commit e3f0224, key ``atari57_gamer``), which are the
  random scores of Mnih et al. 2015 (Nature DQN) and the human scores of Badia et al.
  2020 (Agent57, Table H.1), the same numbers as dqn_zoo ``atari_data.py``.
- DMC: returns lie in [0, 1000] (Tassa et al. 2018: reward in [0, 1] per step, 1000 steps).
- Crafter: score ``exp(mean_i ln(1 + s_i)) - 1`` over the 22 achievements, ``s_i`` the
  success rate in percent (Hafner 2021, arXiv 2109.06780, Eq. 1).
- Minecraft Diamond: 12 milestones, +1 reward the first time each item enters the
  inventory per episode, plus 0.01 x health change (DreamerV3 ``minecraft_flat.py``).
- Task lists, action repeats and budgets: the published score files
  (``SUITE-METHOD.json.gz``; ``xs`` are environment frames) and the DreamerV3 paper
  (arXiv 2301.04104).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# game -> (random, human). Keys carry no "atari_" prefix (our task names).
ATARI_RANDOM_HUMAN: dict[str, tuple[float, float]] = {
    "alien": (227.8, 7127.7),
    "amidar": (5.8, 1719.5),
    "assault": (222.4, 742.0),
    "asterix": (210.0, 8503.3),
    "asteroids": (719.1, 47388.7),
    "atlantis": (12850.0, 29028.1),
    "bank_heist": (14.2, 753.1),
    "battle_zone": (2360.0, 37187.5),
    "beam_rider": (363.9, 16926.5),
    "berzerk": (123.7, 2630.4),
    "bowling": (23.1, 160.7),
    "boxing": (0.1, 12.1),
    "breakout": (1.7, 30.5),
    "centipede": (2090.9, 12017.0),
    "chopper_command": (811.0, 7387.8),
    "crazy_climber": (10780.5, 35829.4),
    "defender": (2874.5, 18688.9),
    "demon_attack": (152.1, 1971.0),
    "double_dunk": (-18.6, -16.4),
    "enduro": (0.0, 860.5),
    "fishing_derby": (-91.7, -38.7),
    "freeway": (0.0, 29.6),
    "frostbite": (65.2, 4334.7),
    "gopher": (257.6, 2412.5),
    "gravitar": (173.0, 3351.4),
    "hero": (1027.0, 30826.4),
    "ice_hockey": (-11.2, 0.9),
    "jamesbond": (29.0, 302.8),
    "kangaroo": (52.0, 3035.0),
    "krull": (1598.0, 2665.5),
    "kung_fu_master": (258.5, 22736.3),
    "montezuma_revenge": (0.0, 4753.3),
    "ms_pacman": (307.3, 6951.6),
    "name_this_game": (2292.3, 8049.0),
    "phoenix": (761.4, 7242.6),
    "pitfall": (-229.4, 6463.7),
    "pong": (-20.7, 14.6),
    "private_eye": (24.9, 69571.3),
    "qbert": (163.9, 13455.0),
    "riverraid": (1338.5, 17118.0),
    "road_runner": (11.5, 7845.0),
    "robotank": (2.2, 11.9),
    "seaquest": (68.4, 42054.7),
    "skiing": (-17098.1, -4336.9),
    "solaris": (1236.3, 12326.7),
    "space_invaders": (148.0, 1668.7),
    "star_gunner": (664.0, 10250.0),
    "surround": (-10.0, 6.5),
    "tennis": (-23.8, -8.3),
    "time_pilot": (3568.0, 5229.2),
    "tutankham": (11.4, 167.6),
    "up_n_down": (533.4, 11693.2),
    "venture": (0.0, 1187.5),
    # Conflict: Mnih et al. 2015 (and baselines.yaml, dqn_zoo) give 16256.9 for the random
    # agent; Badia et al. 2020 (Agent57), rliable and reincarnating_rl use 0.0. We keep
    # 16256.9 because the published DreamerV3 aggregates were computed with baselines.yaml.
    # Video Pinball is not in Atari100k, so only atari57 aggregates depend on this choice.
    "video_pinball": (16256.9, 17667.9),
    "wizard_of_wor": (563.5, 4756.5),
    "yars_revenge": (3092.9, 54576.9),
    "zaxxon": (32.5, 9173.3),
}

# The 26 games of Atari100k (Kaiser et al. 2019), as in atari100k-*.json.gz.
ATARI100K_GAMES: tuple[str, ...] = (
    "alien", "amidar", "assault", "asterix", "bank_heist", "battle_zone", "boxing",
    "breakout", "chopper_command", "crazy_climber", "demon_attack", "freeway", "frostbite",
    "gopher", "hero", "jamesbond", "kangaroo", "krull", "kung_fu_master", "ms_pacman",
    "pong", "private_eye", "qbert", "road_runner", "seaquest", "up_n_down",
)

DMC_PROPRIO_TASKS: tuple[str, ...] = (
    "acrobot_swingup", "ball_in_cup_catch", "cartpole_balance", "cartpole_balance_sparse",
    "cartpole_swingup", "cartpole_swingup_sparse", "cheetah_run", "finger_spin",
    "finger_turn_easy", "finger_turn_hard", "hopper_hop", "hopper_stand",
    "pendulum_swingup", "reacher_easy", "reacher_hard", "walker_run", "walker_stand",
    "walker_walk",
)
# DMC vision adds the two quadruped tasks (dmc_vision-*.json.gz).
DMC_VISION_TASKS: tuple[str, ...] = tuple(
    sorted(DMC_PROPRIO_TASKS + ("quadruped_run", "quadruped_walk"))
)
DMC_MIN, DMC_MAX = 0.0, 1000.0

CRAFTER_ACHIEVEMENTS: tuple[str, ...] = (
    "collect_coal", "collect_diamond", "collect_drink", "collect_iron", "collect_sapling",
    "collect_stone", "collect_wood", "defeat_skeleton", "defeat_zombie", "eat_cow",
    "eat_plant", "make_iron_pickaxe", "make_iron_sword", "make_stone_pickaxe",
    "make_stone_sword", "make_wood_pickaxe", "make_wood_sword", "place_furnace",
    "place_plant", "place_stone", "place_table", "wake_up",
)

# In the order of the tech tree; every item before "diamond" is needed to mine it.
MINECRAFT_MILESTONES: tuple[str, ...] = (
    "log", "planks", "stick", "crafting_table", "wooden_pickaxe", "cobblestone",
    "stone_pickaxe", "iron_ore", "furnace", "iron_ingot", "iron_pickaxe", "diamond",
)


@dataclass(frozen=True)
class SuiteReference:
    """What the analysis needs to know about one suite."""

    name: str
    tasks: tuple[str, ...]
    """Task names without the suite prefix (``pong``, ``cartpole_balance``)."""
    published_prefix: str
    """Prefix of task names in the published files (``atari_pong``)."""
    action_repeat: int
    """Environment frames per agent step; frames = agent steps x action_repeat."""
    budget_frames: int
    """Training budget in environment frames."""
    final_window_frames: int
    """Final score = mean of episodes ending in (budget - window, budget] frames."""
    normalizer: str
    """One of ``atari``, ``dmc``, ``crafter``, ``minecraft`` (see analysis.scores)."""


SUITES: dict[str, SuiteReference] = {
    # 100k agent steps x 4 = 400k frames; the final window is the rule
    # (episodes ending between 390k and 400k frames).
    "atari100k": SuiteReference(
        "atari100k", ATARI100K_GAMES, "atari_", 4, 400_000, 10_000, "atari"
    ),
    # 200M frames (xs of atari57-*.json.gz end at 2e8); last 1% of the budget.
    "atari57": SuiteReference(
        "atari57", tuple(ATARI_RANDOM_HUMAN), "atari_", 4, 200_000_000, 2_000_000, "atari"
    ),
    # Budgets 5e5 / 1e6 frames (published xs). DMC episodes are 1000 frames (control
    # steps) whatever the repeat: the published per-episode files hold ~1000 episodes
    # per 1e6 frames, so xs count frames, not agent steps. Our protocol repeats each
    # action twice (Hafner et al. 2019); the window is the last 5% of the budget.
    "dmc_proprio": SuiteReference(
        "dmc_proprio", DMC_PROPRIO_TASKS, "dmc_", 2, 500_000, 25_000, "dmc"
    ),
    "dmc_vision": SuiteReference(
        "dmc_vision", DMC_VISION_TASKS, "dmc_", 2, 1_000_000, 50_000, "dmc"
    ),
    # Crafter success rates are over all episodes of the 1M-step budget (Hafner 2021).
    "crafter": SuiteReference(
        "crafter", ("reward",), "crafter_", 1, 1_000_000, 1_000_000, "crafter"
    ),
    # 100M steps, no action repeat (xs of minecraft_diamond-*.json.gz end at 1e8).
    "minecraft_diamond": SuiteReference(
        "minecraft_diamond", ("diamond",), "minecraft_", 1, 100_000_000, 5_000_000,
        "minecraft",
    ),
}


def get_suite(name: str) -> SuiteReference:
    """The reference of suite ``name``; unknown names raise naming what is allowed."""
    if name not in SUITES:
        raise ValueError(f"suite={name!r} is unknown; allowed: {', '.join(SUITES)}")
    return SUITES[name]


def atari_normalized(game: str, score: float) -> float:
    """Human-normalised score ``(score - random) / (human - random)``."""
    if game not in ATARI_RANDOM_HUMAN:
        raise ValueError(
            f"task={game!r} has no Atari random/human score; allowed: "
            f"{', '.join(ATARI_RANDOM_HUMAN)}"
        )
    random, human = ATARI_RANDOM_HUMAN[game]
    return (score - random) / (human - random)


def crafter_score(success_rates_percent) -> float:
    """Crafter score ``exp(mean_i ln(1 + s_i)) - 1``, ``s_i`` success rates in percent."""
    rates = list(success_rates_percent)
    return math.exp(sum(math.log1p(s) for s in rates) / len(rates)) - 1
