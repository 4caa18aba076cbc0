"""Layers and the observation encoder/decoder.

Every layer keeps float32 parameters and computes in `dtype` (float32 on CPU,
bfloat16 on GPU). Weights use a truncated normal with standard deviation
outscale / sqrt(fan_in), where fan_in is the whole input width (for block-
diagonal kernels [g, i, o] too: g * i), as `Initializer('trunc_normal')` and
`_scaled_winit` in danijar/dreamerv3 `embodied/jax/nets.py` (e3f0224).
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dreamerbench.agent.distributions import symlog

f32 = jnp.float32


def fan_in_init(outscale: float = 1.0):
    """Truncated normal (cut at 2 std) with std = outscale / sqrt(fan_in); zeros for outscale 0.

    fan_in = shape[-2] times the product of the leading axes: the input width
    for a dense kernel [i, o], k * k * i for a convolution [k, k, i, o], and the
    whole input g * i for a block-diagonal kernel [g, i, o] (reference
    `Initializer.compute_fans`). The reference multiplies the initialised
    kernel by outscale, so the variance scales with outscale ** 2.
    """
    if outscale == 0.0:
        return nn.initializers.zeros
    return nn.initializers.variance_scaling(
        outscale**2, "fan_in", "truncated_normal", in_axis=-2, out_axis=-1
    )


class Linear(nn.Module):
    units: int
    dtype: jnp.dtype = f32
    outscale: float = 1.0

    @nn.compact
    def __call__(self, x):
        kernel = self.param("kernel", fan_in_init(self.outscale), (x.shape[-1], self.units), f32)
        bias = self.param("bias", nn.initializers.zeros, (self.units,), f32)
        return x.astype(self.dtype) @ kernel.astype(self.dtype) + bias.astype(self.dtype)


def block_matmul(x, kernel, blocks_first_out: bool = False):
    """x [..., g * i] times block-diagonal kernel [g, i, o] -> [..., g * o] (or [g, N, o]).

    The blocks are moved to the front before the batched matmul: XLA:CPU
    otherwise emits the product in a transposed layout that the following
    elementwise fusions read with strided access. `blocks_first_out` keeps the
    product as [g, N, o] for callers that work per block anyway.
    """
    g, i, o = kernel.shape
    lead = x.shape[:-1]
    y = jnp.einsum("gni,gio->gno", x.reshape(-1, g, i).transpose(1, 0, 2), kernel)
    return y if blocks_first_out else y.transpose(1, 0, 2).reshape(*lead, g * o)


class BlockLinear(nn.Module):
    """Block-diagonal linear map: `blocks` independent Linears on equal slices."""

    units: int
    blocks: int
    dtype: jnp.dtype = f32

    @nn.compact
    def __call__(self, x, blocks_first_parts: int = 0):
        """x [..., in] -> [..., units], or with `blocks_first_parts` = k the blocks-first product
        [g, N, units / g] cut into k equal slices of each block's outputs (a list of
        [g, N, units / (g k)]).

        The slices get their bias after slicing: XLA:CPU emits an elementwise
        fusion that slices a biased product as scalar code (the GRU gates ran
        4x slower that way).
        """
        g = self.blocks
        shape = (g, x.shape[-1] // g, self.units // g)
        kernel = self.param("kernel", fan_in_init(), shape, f32)
        bias = self.param("bias", nn.initializers.zeros, (self.units,), f32).astype(self.dtype)
        y = block_matmul(
            x.astype(self.dtype),
            kernel.astype(self.dtype),
            blocks_first_out=bool(blocks_first_parts),
        )
        if not blocks_first_parts:
            return y + bias
        parts = zip(
            jnp.split(y, blocks_first_parts, -1),
            jnp.split(bias.reshape(g, 1, -1), blocks_first_parts, -1),
        )
        return [part + part_bias for part, part_bias in parts]


class SharedBlockLinear(nn.Module):
    """BlockLinear over [per-block inputs, inputs shared by every block], without copying the
    shared part.

    Same parameters and result as `BlockLinear` applied to the concatenation of
    `grouped` [..., g, i] with `shared` [..., s] broadcast to every block; the
    shared part becomes one dense matmul instead of g copies.
    """

    units: int
    blocks: int
    dtype: jnp.dtype = f32

    @nn.compact
    def __call__(self, grouped, shared):
        g, own_size, shared_size = self.blocks, grouped.shape[-1], shared.shape[-1]
        shape = (g, own_size + shared_size, self.units // g)
        kernel = self.param("kernel", fan_in_init(), shape, f32).astype(self.dtype)
        bias = self.param("bias", nn.initializers.zeros, (self.units,), f32)
        own = block_matmul(
            grouped.reshape(*grouped.shape[:-2], -1).astype(self.dtype), kernel[:, :own_size]
        )
        common = shared.astype(self.dtype) @ kernel[:, own_size:].transpose(1, 0, 2).reshape(
            shared_size, self.units
        )
        return own + common + bias.astype(self.dtype)


class TwoInputLinear(nn.Module):
    """Linear on concat(a, b), split so that b's part can be computed ahead, e.g. for all time
    steps at once."""

    units: int
    a_size: int
    b_size: int
    dtype: jnp.dtype = f32

    def setup(self):
        self.kernel = self.param(
            "kernel", fan_in_init(), (self.a_size + self.b_size, self.units), f32
        )
        self.bias = self.param("bias", nn.initializers.zeros, (self.units,), f32)

    def project_b(self, b):
        return b.astype(self.dtype) @ self.kernel[self.a_size :].astype(
            self.dtype
        ) + self.bias.astype(self.dtype)

    def __call__(self, a, b_projected):
        return a.astype(self.dtype) @ self.kernel[: self.a_size].astype(self.dtype) + b_projected


class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * scale over the last axis, computed in float32.

    A learned scale and no shift, as the reference's `Norm('rms')`
    (danijar/dreamerv3 `embodied/jax/nets.py`, e3f0224).
    """

    eps: float = 1e-4
    dtype: jnp.dtype = f32

    @nn.compact
    def __call__(self, x):
        scale = self.param("scale", nn.initializers.ones, (x.shape[-1],), f32)
        x = f32(x)
        x = x * jax.lax.rsqrt(jnp.square(x).mean(-1, keepdims=True) + self.eps)
        return (x * scale).astype(self.dtype)


class Dense(nn.Module):
    """Linear -> RMSNorm -> SiLU, the building block of every MLP."""

    units: int
    eps: float = 1e-4
    dtype: jnp.dtype = f32

    @nn.compact
    def __call__(self, x):
        x = Linear(self.units, self.dtype)(x)
        return jax.nn.silu(RMSNorm(self.eps, self.dtype)(x))


class MLP(nn.Module):
    layers: int
    units: int
    eps: float = 1e-4
    dtype: jnp.dtype = f32

    @nn.compact
    def __call__(self, x):
        for _ in range(self.layers):
            x = Dense(self.units, self.eps, self.dtype)(x)
        return x


class Conv(nn.Module):
    """Same-padded stride-1 convolution (NHWC) with fan-in init, optionally of the 2x
    nearest-upsampled input.

    With `upsample=True` the result equals the convolution of the nearest 2x
    upsampled input `x.repeat(2, -3).repeat(2, -2)` (the reference decoder's
    upsampling then `Conv2D`, danijar/dreamerv3 e3f0224 `dreamerv3/rssm.py`
    L336-337), computed on the small grid by `upsample_conv`.
    """

    features: int
    kernel: int
    dtype: jnp.dtype = f32
    outscale: float = 1.0
    upsample: bool = False

    @nn.compact
    def __call__(self, x):
        k = self.kernel
        w = self.param(
            "kernel", fan_in_init(self.outscale), (k, k, x.shape[-1], self.features), f32
        )
        b = self.param("bias", nn.initializers.zeros, (self.features,), f32)
        if self.upsample:
            return upsample_conv(x.astype(self.dtype), w.astype(self.dtype)) + b.astype(self.dtype)
        y = jax.lax.conv_general_dilated(
            x.astype(self.dtype),
            w.astype(self.dtype),
            (1, 1),
            "SAME",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )
        return y + b.astype(self.dtype)


def phase_taps(kernel: int) -> np.ndarray:
    """0/1 array [2, K, kernel]: which taps of a `kernel`-wide same-padded filter on a 2x
    nearest-upsampled axis read small-grid offset `o - K // 2`, for output phase `a` (output
    index 2 i + a), K = 2 ceil(p / 2) + 1.

    Upsampled index 2 i + a + d (tap d in [-p, p], p = kernel // 2) holds small-grid
    index i + floor((a + d) / 2); zero padding maps to zero padding.
    """
    p = kernel // 2
    half = -(-p // 2)
    taps = np.zeros((2, 2 * half + 1, kernel), np.float32)
    for a in range(2):
        for d in range(-p, p + 1):
            taps[a, (a + d) // 2 + half, d + p] = 1.0
    return taps


def upsample_conv(x, w):
    """conv_SAME(nearest 2x upsampled x, w) for x [N, H, W, I], odd-sized w [k, k, I, O]
    -> [N, 2H, 2W, O], without bias.

    Nearest upsampling makes each of the four output phases (row parity a,
    column parity b) a same-padded convolution of the small grid with the taps
    that read the same small-grid pixel summed: one K x K convolution
    (K = 3 for k = 5) with 4 O outputs, then depth-to-space. The same products
    in a different summation order; (K / k)^2 x 4 / 4 = 9/25 of the FLOPs for k = 5.
    """
    n, h, wd, _ = x.shape
    k, _, i, o = w.shape
    taps = jnp.asarray(phase_taps(k), w.dtype)
    kernel_size = taps.shape[1]
    phases = jnp.einsum("ayd,bxe,deio->yxiabo", taps, taps, w).reshape(
        kernel_size, kernel_size, i, 4 * o
    )
    y = jax.lax.conv_general_dilated(
        x, phases, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    return y.reshape(n, h, wd, 2, 2, o).transpose(0, 1, 3, 2, 4, 5).reshape(n, 2 * h, 2 * wd, o)


def max_pool_2x2(x):
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c).max((2, 4))


def token_size(image_shape, vector_keys, depth, mults, units) -> int:
    """Width of the encoder's output: MLP units for vectors plus the flattened final CNN grid."""
    size = units if vector_keys else 0
    if image_shape:
        factor = 2 ** len(mults)
        size += (image_shape[0] // factor) * (image_shape[1] // factor) * depth * mults[-1]
    return size


class Encoder(nn.Module):
    """Observation dict -> token vector.

    Images (uint8 [..., H, W, C]) go through a CNN of stride-1 convolutions each
    followed by 2x2 max-pooling down to 4x4; the `vector` key goes through an MLP
    on symlog inputs. Leading axes are kept.
    """

    image_keys: Sequence[str]
    vector_keys: Sequence[str]
    depth: int
    mults: Sequence[int]
    kernel: int
    units: int
    layers: int
    eps: float = 1e-4
    dtype: jnp.dtype = f32

    @nn.compact
    def __call__(self, obs):
        outputs = []
        lead = None
        if self.vector_keys:
            x = jnp.concatenate([f32(obs[k]) for k in self.vector_keys], -1)
            lead = x.shape[:-1]
            outputs.append(MLP(self.layers, self.units, self.eps, self.dtype)(symlog(x)))
        if self.image_keys:
            x = jnp.concatenate([obs[k] for k in self.image_keys], -1)
            lead = x.shape[:-3]
            x = x.reshape(-1, *x.shape[-3:]).astype(self.dtype) / 255.0 - 0.5
            for mult in self.mults:
                x = max_pool_2x2(Conv(self.depth * mult, self.kernel, self.dtype)(x))
                x = jax.nn.silu(RMSNorm(self.eps, self.dtype)(x))
            outputs.append(x.reshape(*lead, -1))
        return jnp.concatenate([o.astype(self.dtype) for o in outputs], -1)


class Decoder(nn.Module):
    """Latent features -> reconstructions: image means in [0, 1], vector means in symlog space.

    Vector keys share an MLP on concat(stoch, deter); each key has its own output
    layer (`vector_sizes`: flat sizes in the encoder's sorted key order), as the
    reference's per-key heads (danijar/dreamerv3 e3f0224 `dreamerv3/rssm.py`
    L302-305), so adaptive gradient clipping bounds each key's layer on its own.
    The outputs are returned concatenated as `out["vector"]` [..., sum(vector_sizes)].

    The image path mirrors the encoder: the deterministic state is mapped by a
    block-linear layer (cheap for wide states) and the stochastic state by an
    MLP to a 4x4 grid, then each stage upsamples 2x and convolves.
    """

    image_shape: tuple[int, ...] | None
    vector_sizes: tuple[int, ...]
    depth: int
    mults: Sequence[int]
    kernel: int
    units: int
    layers: int
    blocks: int
    eps: float = 1e-4
    dtype: jnp.dtype = f32

    @nn.compact
    def __call__(self, deter, stoch_flat):
        out = {}
        lead = deter.shape[:-1]
        if self.vector_sizes:
            x = jnp.concatenate([stoch_flat.astype(self.dtype), deter.astype(self.dtype)], -1)
            x = MLP(self.layers, self.units, self.eps, self.dtype)(x)
            out["vector"] = jnp.concatenate(
                [f32(Linear(size, self.dtype)(x)) for size in self.vector_sizes], -1
            )
        if self.image_shape:
            out["image"] = self._image(deter, stoch_flat, lead)
        return out

    def _image(self, deter, stoch_flat, lead):
        depths = [self.depth * m for m in self.mults]
        height, width, channels = self.image_shape
        factor = 2 ** len(depths)
        h, w, c = height // factor, width // factor, depths[-1]
        g = self.blocks
        deter = deter.reshape(-1, deter.shape[-1])
        stoch_flat = stoch_flat.reshape(-1, stoch_flat.shape[-1])
        x0 = BlockLinear(h * w * c, g, self.dtype)(deter)
        # Each block fills a slice of channels over the whole grid.
        x0 = x0.reshape(-1, g, h, w, c // g).transpose(0, 2, 3, 1, 4).reshape(-1, h, w, c)
        x1 = Dense(2 * self.units, self.eps, self.dtype)(stoch_flat)
        x1 = Linear(h * w * c, self.dtype)(x1).reshape(-1, h, w, c)
        x = jax.nn.silu(RMSNorm(self.eps, self.dtype)(x0 + x1))
        for depth in reversed(depths[:-1]):
            x = Conv(depth, self.kernel, self.dtype, upsample=True)(x)
            x = jax.nn.silu(RMSNorm(self.eps, self.dtype)(x))
        x = Conv(channels, self.kernel, self.dtype, upsample=True)(x)
        return jax.nn.sigmoid(f32(x)).reshape(*lead, height, width, channels)
