"""Score references and benchmark score functions.

Atari: random and human ("gamer") scores (episode returns) of the 57
games exactly as DreamerV3 uses them (danijar/dreamerv3 ``baselines.yaml``,
key ``atari57_gamer``); DeepMind's dqn_zoo ``dqn_zoo/atari_data.py`` holds
the same values. They go back to the DQN line of work (Mnih et al. 2015,
Nature) and its follow-ups that added the remaining games.

Video Pinball conflict: the random score is 16256.9 in dqn_zoo and in
DreamerV3's baselines.yaml, but 0.0 in other tables (e.g.
google-research/reincarnating_rl ``reincarnating_rl/atari_scores.py``).
We use 16256.9 so that our human-normalised scores are comparable with the
published DreamerV3 results; note that with it the random-to-human gap is
only 1411 points, so Video Pinball normalised scores are large.

DMC returns lie in [0, 1000] (Tassa et al. 2018: reward in [0, 1] per control
step, 1000 steps). Crafter's score is the geometric-style mean of achievement
success rates (Hafner 2021, arXiv 2109.06780, Eq. 1), in percent, so it lies
in [0, 100]. Minecraft ObtainDiamond is reported as the share of episodes that
collect a diamond, and its return (12 milestones at +1 each, DreamerV3
``minecraft_flat.py``) normalises by 12.

This module and the suite records (``Suite.tasks``, ``score_refs``,
``action_repeat``, ``budget_frames``) are the only home of these numbers;
``analysis`` imports them from here.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from dreamerbench.suites.base import PublishedScores

# danijar/dreamerv3 at the commit this project reproduces; its scores/ folder
# holds SUITE-METHOD.json.gz per-run score curves (May 2024 data).
DREAMERV3_REPO, DREAMERV3_COMMIT = "danijar/dreamerv3", "e3f02248693a79dc8b0ebd62c93683888ddaccfe"


def dreamerv3_scores(stem: str, methods: Iterable[str]) -> PublishedScores:
    """The published ``scores/STEM-METHOD.json.gz`` files of danijar/dreamerv3."""
    return PublishedScores(
        DREAMERV3_REPO, DREAMERV3_COMMIT, "scores", {m: f"{stem}-{m}.json.gz" for m in methods}
    )


# game -> (random, human) episode return. Order and values as in the sources above.
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
    "video_pinball": (16256.9, 17667.9),
    "wizard_of_wor": (563.5, 4756.5),
    "yars_revenge": (3092.9, 54576.9),
    "zaxxon": (32.5, 9173.3),
}


# (low, high) of a DMC episode return, the range every DMC task normalises by.
DMC_RETURN_RANGE: tuple[float, float] = (0.0, 1000.0)
# (low, high) of the Crafter score (percent).
CRAFTER_SCORE_RANGE: tuple[float, float] = (0.0, 100.0)


def human_normalized(game: str, score: float) -> float:
    """``(score - random) / (human - random)`` for one Atari game."""
    if game not in ATARI_RANDOM_HUMAN:
        raise ValueError(
            f"game={game!r} has no random/human reference; allowed: {', '.join(ATARI_RANDOM_HUMAN)}"
        )
    random, human = ATARI_RANDOM_HUMAN[game]
    return (score - random) / (human - random)


def success_rates(flags: np.ndarray) -> np.ndarray:
    """Per-column success rate in percent of ``flags[episodes, items]`` (0/1 per episode)."""
    flags = np.asarray(flags, np.float64)
    if flags.ndim != 2 or flags.shape[0] == 0:
        raise ValueError(f"flags has shape {flags.shape}; expected [episodes > 0, items]")
    if not np.isin(flags, (0.0, 1.0)).all():
        raise ValueError("flags must be 0 or 1 (unlocked in the episode or not)")
    return 100.0 * flags.mean(0)


def crafter_score(rates_percent: np.ndarray) -> float:
    """Crafter score ``exp(mean(ln(1 + s_i))) - 1`` of the success rates ``s_i`` in percent.

    ``s_i`` is the percentage of episodes in which achievement i was unlocked
    (see :func:`success_rates`); the +1 keeps never-unlocked achievements
    from zeroing the score.
    """
    rates = np.asarray(rates_percent, np.float64)
    if rates.ndim != 1 or rates.size == 0 or (rates < 0).any() or (rates > 100).any():
        raise ValueError(f"rates_percent={rates!r} must be a non-empty vector in [0, 100]")
    return float(np.exp(np.mean(np.log1p(rates))) - 1)


def diamond_success(diamond_flags: np.ndarray) -> float:
    """Percent of Minecraft episodes whose ``log/milestone_diamond`` flag is 1."""
    return float(success_rates(np.asarray(diamond_flags).reshape(-1, 1))[0])


# ProcGen, hard distribution mode: per-game (min, max) episode returns that normalise a return
# to (score - min) / (max - min), exactly as danijar/dreamerv3 baselines.yaml (key `procgen_hard`)
# has them: the hard-mode normalisation constants of Cobbe et al. 2020 (arXiv 1912.01588).
PROCGEN_HARD_MIN_MAX: dict[str, tuple[float, float]] = {
    "bigfish": (0.0, 40.0),
    "bossfight": (0.5, 13.0),
    "caveflyer": (2.0, 13.4),
    "chaser": (0.5, 14.2),
    "climber": (1.0, 12.6),
    "coinrun": (5.0, 10.0),
    "dodgeball": (1.5, 19.0),
    "fruitbot": (-0.5, 27.2),
    "heist": (2.0, 10.0),
    "jumper": (1.0, 10.0),
    "leaper": (1.5, 10.0),
    "maze": (4.0, 10.0),
    "miner": (1.5, 20.0),
    "ninja": (2.0, 10.0),
    "plunder": (3.0, 30.0),
    "starpilot": (1.5, 35.0),
}

# DMLab-30: per-level (random, human) episode returns, as danijar/dreamerv3 baselines.yaml (key
# `dmlab30`) has them: the random and human scores that DMLab-30's human-normalised score uses
# (Espeholt et al. 2018, IMPALA, arXiv 1802.01561).
DMLAB30_RANDOM_HUMAN: dict[str, tuple[float, float]] = {
    "explore_goal_locations_large": (3.14, 194.5),
    "explore_goal_locations_small": (7.66, 267.5),
    "explore_object_locations_large": (4.673, 65.65),
    "explore_object_locations_small": (3.575, 74.45),
    "explore_object_rewards_few": (2.073, 77.7),
    "explore_object_rewards_many": (2.438, 106.7),
    "explore_obstructed_goals_large": (2.61, 119.5),
    "explore_obstructed_goals_small": (6.76, 206.0),
    "language_answer_quantitative_question": (-0.33, 184.5),
    "language_execute_random_task": (-5.913, 254.05),
    "language_select_described_object": (-0.07, 389.5),
    "language_select_located_object": (1.929, 280.7),
    "lasertag_one_opponent_large": (-0.083, 18.6),
    "lasertag_one_opponent_small": (-0.224, 12.65),
    "lasertag_three_opponents_large": (-0.102, 31.5),
    "lasertag_three_opponents_small": (-0.214, 18.55),
    "natlab_fixed_large_map": (2.173, 36.9),
    "natlab_varying_map_randomized": (7.346, 42.35),
    "natlab_varying_map_regrowth": (2.989, 24.45),
    "psychlab_arbitrary_visuomotor_mapping": (0.163, 58.75),
    "psychlab_continuous_recognition": (0.224, 58.3),
    "psychlab_sequential_comparison": (0.129, 39.5),
    "psychlab_visual_search": (0.085, 78.5),
    "rooms_collect_good_objects_test": (0.073, 10.0),
    "rooms_exploit_deferred_effects_test": (8.501, 85.65),
    "rooms_keys_doors_puzzle": (4.135, 53.8),
    "rooms_select_nonmatching_object": (0.312, 65.9),
    "rooms_watermaze": (4.065, 54.0),
    "skymaze_irreversible_path_hard": (0.1, 100.0),
    "skymaze_irreversible_path_varied": (14.4, 100.0),
}
