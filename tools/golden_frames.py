"""Golden observation frames made the reference's way, for tests/test_reference_observations.py.

The reference is danijar/dreamerv3 e3f0224. Its observation recipes are
re-implemented here from its description, straight on the simulators and with
nothing of ``dreamerbench.suites``, so the test that replays the same actions
through our suites checks them against an independent implementation:

- DMC vision (``embodied/envs/dmc.py``): ``physics.render(64, 64, camera_id)``
  after every control step at MuJoCo's default visual quality (shadow maps and
  multisampling on); camera 0 for walker.
- Atari (``embodied/envs/atari.py``, ``resize: pillow``): ALE seeded with
  ``default_rng(seed).integers(0, 2**31)``, then ``integers(noops + 1)`` no-ops
  after the reset; the reset's screen fills every pooling buffer; each agent
  step repeats its action 4 times and keeps the screens of the last 2 frames;
  their elementwise max is resized by Pillow's bilinear filter to
  ``size`` x ``size``; grey is the float64 sum of R 0.299, G 0.587 and
  B 1 - (0.299 + 0.587), truncated to uint8.

Each file holds, per case, the agent's actions, the indices of the kept frames
(0 is the reset's observation, i the one after action i - 1) and those frames;
``meta`` records the simulator and Pillow versions that made them.

Run from the repository root (MUJOCO_GL=egl is set unless given)::

    python -m tools.golden_frames --out tests/data
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

# Case name -> settings: the suite whose default protocol it follows, the game or task,
# seed, agent steps, and every how many steps a frame is kept.
DMC_CASES = {"walker_walk": {"suite": "dmc_vision", "task": "walker_walk", "seed": 3, "steps": 40}}
ATARI_CASES = {
    # atari100k: 64x64 RGB, minimal action set, no sticky actions.
    "ms_pacman": {
        "suite": "atari100k",
        "game": "ms_pacman",
        "seed": 1,
        "steps": 120,
        "size": 64,
        "gray": False,
        "sticky": 0.0,
        "minimal": True,
    },
    # atari57: 96x96 grey, full action set, sticky actions 0.25.
    "pong": {
        "suite": "atari57",
        "game": "pong",
        "seed": 2,
        "steps": 120,
        "size": 96,
        "gray": True,
        "sticky": 0.25,
        "minimal": False,
    },
}
KEEP_EVERY = 10
NOOP_MAX = 30
REPEAT = 4
POOLING = 2
REFERENCE_GRAY = np.array([0.299, 0.587, 1 - (0.299 + 0.587)])


def dmc_actions(seed: int, steps: int, dims: int) -> np.ndarray:
    """[steps, dims] float32 actions, multiples of 1/8 in [-1, 1].

    Multiples of 1/8 survive any affine rescaling to [-1, 1] bounds exactly, so
    the suite and the reference hand dm_control bitwise the same actions.
    """
    rng = np.random.default_rng([seed, 1])
    return (rng.integers(-8, 9, (steps, dims)) / 8).astype(np.float32)


def dmc_case(task: str, seed: int, steps: int) -> dict[str, np.ndarray]:
    """Frames [N, 64, 64, 3] uint8 of ``task`` at MuJoCo's default render quality."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    from dm_control import suite

    domain, name = task.split("_", 1)
    env = suite.load(domain, name, task_kwargs={"random": seed})
    camera = 2 if domain == "quadruped" else 0
    actions = dmc_actions(seed, steps, env.action_spec().shape[0])
    env.reset()
    frames = [env.physics.render(64, 64, camera_id=camera)]
    for action in actions:
        env.step(action)
        frames.append(env.physics.render(64, 64, camera_id=camera))
    env.close()
    return _kept(actions, frames)


def atari_case(
    game: str, seed: int, steps: int, size: int, gray: bool, sticky: float, minimal: bool
) -> dict[str, np.ndarray]:
    """Frames [N, size, size, 1 or 3] uint8 of ``game`` under the reference's recipe."""
    import ale_py
    from ale_py import roms
    from PIL import Image

    rng = np.random.default_rng(seed)
    ale = ale_py.ALEInterface()
    ale.setLoggerMode(ale_py.LoggerMode.Error)
    ale.setInt("random_seed", int(rng.integers(0, 2**31)))
    ale.setFloat("repeat_action_probability", sticky)
    ale.loadROM(roms.get_rom_path(game))
    action_set = ale.getMinimalActionSet() if minimal else ale.getLegalActionSet()
    actions = np.random.default_rng([seed, 1]).integers(len(action_set), size=steps)

    def observe(screens):
        image = Image.fromarray(np.maximum.reduce(screens))
        image = np.array(image.resize((size, size), Image.Resampling.BILINEAR))
        if gray:
            channels = image.astype(np.float64)
            weighted = (
                channels[..., 0] * REFERENCE_GRAY[0]
                + channels[..., 1] * REFERENCE_GRAY[1]
                + channels[..., 2] * REFERENCE_GRAY[2]
            )
            image = np.floor(weighted).astype(np.uint8)[..., None]
        return image

    ale.reset_game()
    for _ in range(rng.integers(NOOP_MAX + 1)):
        ale.act(ale_py.Action.NOOP)
        if ale.game_over():
            ale.reset_game()
    screen = ale.getScreenRGB()
    frames = [observe([screen] * POOLING)]
    for action in actions:
        screens = []
        for repeat in range(REPEAT):
            ale.act(action_set[action])
            if repeat >= REPEAT - POOLING:
                screens.append(ale.getScreenRGB())
            if ale.game_over():
                raise RuntimeError(f"{game} ended inside the golden trajectory; pick fewer steps")
        frames.append(observe(screens))
    return _kept(actions, frames)


def _kept(actions, frames) -> dict[str, np.ndarray]:
    indices = np.arange(0, len(frames), KEEP_EVERY)
    return {"actions": np.asarray(actions), "indices": indices, "frames": np.stack(frames)[indices]}


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {name: version(name) for name in ("mujoco", "dm-control", "ale-py", "Pillow")}


def _save(path: Path, cases: dict[str, dict], results: dict[str, dict[str, np.ndarray]]) -> None:
    arrays = {
        f"{case}/{key}": value for case, result in results.items() for key, value in result.items()
    }
    meta = {"cases": cases, "keep_every": KEEP_EVERY, "versions": _versions()}
    np.savez_compressed(path, meta=np.array(json.dumps(meta)), **arrays)
    print(f"{path}: {path.stat().st_size / 1024:.0f} KiB, cases {sorted(results)}")


def main(argv: list[str] | None = None) -> None:
    """Write ``golden_dmc.npz`` and ``golden_atari.npz`` into ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("tests/data"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    dmc = {name: dmc_case(c["task"], c["seed"], c["steps"]) for name, c in DMC_CASES.items()}
    _save(args.out / "golden_dmc.npz", DMC_CASES, dmc)
    atari = {
        name: atari_case(
            c["game"], c["seed"], c["steps"], c["size"], c["gray"], c["sticky"], c["minimal"]
        )
        for name, c in ATARI_CASES.items()
    }
    _save(args.out / "golden_atari.npz", ATARI_CASES, atari)


if __name__ == "__main__":
    main()
