"""Synthetic replay batches: a moving square for images, phase-shifted sines for vectors."""

import numpy as np


def random_batch(agent, batch: int, length: int, seed: int = 0) -> dict[str, np.ndarray]:
    """A replay-shaped batch [batch, length + 1, ...] with learnable structure, for tests and
    benchmarks."""
    rng = np.random.default_rng(seed)
    T = length + 1
    out = {}
    for key, space in agent.obs_space.items():
        if space.is_image:
            # A moving bright square: learnable structure, not noise.
            frames = np.zeros((batch, T, *space.shape), np.uint8)
            for b in range(batch):
                for t in range(T):
                    x = (3 * t + 7 * b) % 56
                    frames[b, t, 8:16, x : x + 8] = 255
            out[key] = frames
        else:
            phase = rng.random((batch, 1, 1))
            steps = np.arange(T)[None, :, None]
            out[key] = np.sin(0.3 * steps + 6 * phase + np.arange(space.shape[0])).astype(
                np.float32
            )
    if agent.discrete:
        out["action"] = rng.integers(0, agent.action_size, (batch, T)).astype(np.int32)
    else:
        out["action"] = rng.uniform(-1, 1, (batch, T, agent.action_size)).astype(np.float32)
    out["reward"] = (out["action"].reshape(batch, T, -1)[..., 0] > 0).astype(np.float32)
    out["is_first"] = np.zeros((batch, T), bool)
    out["is_first"][:, 0] = True
    out["is_last"] = np.zeros((batch, T), bool)
    out["is_terminal"] = np.zeros((batch, T), bool)
    deter, stoch, _ = agent.latent_shape
    out["deter"] = np.zeros((batch, T, deter), np.float16)
    out["stoch"] = np.zeros((batch, T, stoch), np.uint8)
    return out
