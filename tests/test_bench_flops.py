"""The FLOP count behind the benchmarks' share of matmul peak."""

import jax
import jax.numpy as jnp

from bench.train_step import matmul_flops


def count(fn, *args):
    return matmul_flops(jax.make_jaxpr(fn)(*args).jaxpr)


def test_scan_bodies_count_once_per_step_and_gradients_add_their_products():
    def rollout(x):
        return jax.lax.scan(lambda carry, _: (jnp.tanh(carry @ carry), None), x, None, length=5)[0]

    x = jnp.ones((4, 4))
    assert count(rollout, x) == 5 * 2 * 4**3
    # The backward pass of each product carry @ carry holds two more products of the same size.
    assert count(jax.grad(lambda x: rollout(x).sum()), x) == 3 * 5 * 2 * 4**3


def test_convolutions_count_output_elements_times_the_kernel_fan_in():
    def conv(image, kernel):
        return jax.lax.conv_general_dilated(
            image,
            kernel,
            (2, 2),
            "SAME",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            feature_group_count=1,
        )

    image, kernel = jnp.ones((2, 8, 8, 3)), jnp.ones((4, 4, 3, 5))
    assert count(conv, image, kernel) == 2 * (2 * 4 * 4 * 5) * (4 * 4 * 3)


def test_cond_counts_its_costliest_branch():
    def either(flag, x):
        return jax.lax.cond(flag, lambda x: x @ x @ x, lambda x: x @ x, x)

    assert count(either, True, jnp.ones((3, 3))) == 2 * 2 * 3**3
