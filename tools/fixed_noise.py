"""Sampling noise that is a fixed function of the sample's shape, for comparing two train steps.

The reference draws its noise from ninjax seeds inside its scans and we draw ours
from keys split per step, so the two can never share keys. Instead both sides
run with `jax.random.categorical` and `jax.random.normal` replaced, only while
the train step is traced (its parameters already exist), by:

- categorical(logits [..., K]) = argmax(logits + G), with G = `tables['gumbel', logits.shape]`
  (the Gumbel-max trick: the distribution of a categorical sample, with fixed noise);
- normal(shape) = `tables['normal', shape]`, so a normal sample mean + std * N uses a fixed N.

A table is one array per (kind, shape), drawn once with NumPy from
`default_rng([seed, kind, *shape])` (Gumbel(0, 1) or standard normal, float32)
and stored with the recorded step, so the replaying side reads the very same
numbers. Every call with the same shape gets the same noise: each step of a
scan, e.g. the 15 imagination steps, reuses it, while the rows of one call (the
B * T imagination starts, batch-major on both sides) get different noise.

The sampler is called on traced values; the tables enter the program as constants.
The module imports NumPy at the top and jax only inside `patched`, whichever jax
version the caller has (the reference's venv or ours).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np

KINDS = ("gumbel", "normal")


def table_name(kind: str, shape: tuple[int, ...]) -> str:
    """'gumbel', (16, 32, 4) -> 'noise/gumbel/16x32x4' (the key in the stored npz)."""
    return f"noise/{kind}/" + "x".join(str(int(n)) for n in shape)


class FixedNoise:
    """Noise tables by (kind, shape); `record=True` draws missing ones, otherwise they must exist.

    `tables` maps `table_name(kind, shape)` to float32 arrays (e.g. read from
    an npz). `used` lists the table names the sampler was asked for.
    """

    def __init__(
        self, tables: dict[str, np.ndarray] | None = None, seed: int = 0, record: bool = False
    ):
        self.tables = dict(tables or {})
        self.seed = seed
        self.record = record
        self.used: list[str] = []

    def get(self, kind: str, shape: tuple[int, ...]) -> np.ndarray:
        name = table_name(kind, shape)
        if name not in self.tables:
            if not self.record:
                raise KeyError(
                    f"no stored {kind} noise for shape {shape}; stored: {sorted(self.tables)}"
                )
            rng = np.random.default_rng([self.seed, KINDS.index(kind), *shape])
            draw = rng.gumbel(size=shape) if kind == "gumbel" else rng.standard_normal(shape)
            self.tables[name] = draw.astype(np.float32)
        if name not in self.used:
            self.used.append(name)
        return self.tables[name]

    @contextlib.contextmanager
    def patched(self, random_module) -> Iterator[FixedNoise]:
        """Replace `random_module.categorical` and `.normal` (i.e. `jax.random`) inside the
        block."""
        import jax.numpy as jnp

        def categorical(key, logits, axis=-1, shape=None, **unused):
            del key, unused
            if axis not in (-1, logits.ndim - 1):
                raise ValueError(
                    f"fixed-noise categorical samples the last axis only, got axis={axis}"
                )
            if shape is not None and tuple(shape) != tuple(logits.shape[:-1]):
                raise ValueError(
                    f"fixed-noise categorical needs shape=None or {logits.shape[:-1]}, got {shape}"
                )
            noise = self.get("gumbel", tuple(logits.shape))
            return jnp.argmax(logits + noise.astype(logits.dtype), -1)

        def normal(key, shape=(), dtype=np.float32, *unused, **unused_kw):
            del key, unused, unused_kw
            return jnp.asarray(self.get("normal", tuple(shape)), dtype)

        saved = random_module.categorical, random_module.normal
        random_module.categorical, random_module.normal = categorical, normal
        try:
            yield self
        finally:
            random_module.categorical, random_module.normal = saved


def min_margin(scores: np.ndarray) -> float:
    """Smallest gap between the largest and second-largest entry over the last axis.

    Applied to logits + Gumbel noise it says how far each fixed-noise categorical
    sample is from a tie: a gap well above float32 rounding means both
    implementations pick the same class.
    """
    top2 = np.sort(np.asarray(scores, np.float64), -1)[..., -2:]
    return float((top2[..., 1] - top2[..., 0]).min())
