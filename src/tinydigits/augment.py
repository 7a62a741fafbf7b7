"""Random, label-preserving distortions of digit images, computed in JAX inside the training step.

Each image of a batch gets its own small random affine map (shift, rotation, zoom about the
centre, and a slant: rows sheared as a writer's hand slants them) and, optionally, an elastic
distortion (a random displacement field smoothed by a Gaussian, Simard et al. 2003); the
distorted image is read back with bilinear interpolation. Then, optionally, its strokes are made
thicker or thinner (`stroke_thickness`: grey dilation or erosion, by a fraction of a pixel to a
few pixels), as another pen would draw them. It
runs on the device, vectorized over the batch, inside the same compiled call as the update, so
augmentation costs no Python and no host-to-device copies. Evaluation never sees it: `train`
calls it on training batches only, and the saved model holds no augmentation layer.

    images = distort(jax.random.key(0), x, shift=2, rotate=10, scale=0.1, elastic=0)  # (B, 28, 28) float
    images = distort(key, x, slant=15, thickness=1.0)   # slanted up to 15 degrees, pen up to 1 px wider or thinner
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.scipy.ndimage import map_coordinates

ELASTIC_SIGMA = 4.0  # pixels: the smoothness of the elastic displacement field (Simard et al. 2003)


def gaussian_blur_matrix(size: int, sigma: float) -> jnp.ndarray:
    """(size, size) matrix G with G @ f @ G.T = f blurred by a normalized Gaussian (per-row sums 1)."""
    d = jnp.arange(size)[:, None] - jnp.arange(size)[None, :]
    g = jnp.exp(-0.5 * (d / sigma) ** 2)
    return g / g.sum(axis=1, keepdims=True)


def sample_grid(key, batch: int, size: int, shift: float, rotate: float, scale: float, elastic: float,
                slant: float = 0.0):
    """Where each output pixel reads from: (rows, cols), each (B, size, size), in input pixel units.

    Output pixel p reads input pixel centre + R(angle) S(slant) (p - centre) / zoom - offset + field(p),
    S shearing columns by tan(slant) per row. All zero: the identity grid.
    """
    k_angle, k_zoom, k_shift, k_field = jax.random.split(key, 4)
    angle = math.radians(rotate) * jax.random.uniform(k_angle, (batch, 1, 1), minval=-1, maxval=1)
    zoom = 1 + scale * jax.random.uniform(k_zoom, (batch, 1, 1), minval=-1, maxval=1)
    offset = shift * jax.random.uniform(k_shift, (2, batch, 1, 1), minval=-1, maxval=1)
    centre = (size - 1) / 2
    r, c = jnp.meshgrid(jnp.arange(size) - centre, jnp.arange(size) - centre, indexing="ij")  # (size, size)
    if slant:  # its own key, so that recipes without a slant keep their random numbers
        tilt = jnp.tan(math.radians(slant) * jax.random.uniform(jax.random.fold_in(key, 1), (batch, 1, 1), minval=-1, maxval=1))
        c = c + tilt * r  # (B, size, size)
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    rows = centre + (cos * r - sin * c) / zoom - offset[0]
    cols = centre + (sin * r + cos * c) / zoom - offset[1]
    if elastic:
        g = gaussian_blur_matrix(size, ELASTIC_SIGMA)
        field = jax.random.uniform(k_field, (2, batch, size, size), minval=-1, maxval=1)
        field = elastic * (g @ field @ g.T)  # smooth, then scale to pixels
        rows, cols = rows + field[0], cols + field[1]
    return rows, cols


def stroke_thickness(key, images: jnp.ndarray, pixels: float) -> jnp.ndarray:
    """(B, H, H) images -> the same, each one's strokes dilated or eroded by its own random amount in
    [-pixels, pixels]: whole pixels by 3x3 grey dilation (max) or erosion (min), fractions blended."""
    amount = pixels * jax.random.uniform(key, (images.shape[0], 1, 1), minval=-1, maxval=1)
    grow = lambda x: jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 3, 3), (1, 1, 1), "SAME")  # noqa: E731
    shrink = lambda x: -grow(-x)  # noqa: E731
    out, thicker, thinner = images, images, images
    for step in range(int(math.ceil(pixels))):  # blend between k and k+1 pixels of dilation (or erosion)
        thicker_next, thinner_next = grow(thicker), shrink(thinner)
        up = jnp.clip(amount - step, 0, 1)
        down = jnp.clip(-amount - step, 0, 1)
        out = out + up * (thicker_next - thicker) + down * (thinner_next - thinner)
        thicker, thinner = thicker_next, thinner_next
    return out


def distort(key, images: jnp.ndarray, shift: float = 0.0, rotate: float = 0.0, scale: float = 0.0,
            elastic: float = 0.0, slant: float = 0.0, thickness: float = 0.0) -> jnp.ndarray:
    """(B, H, H) float images -> (B, H, H), each moved by its own random distortion; outside is black (0)."""
    batch, size = images.shape[0], images.shape[1]
    rows, cols = sample_grid(key, batch, size, shift, rotate, scale, elastic, slant)
    bilinear = lambda image, r, c: map_coordinates(image, [r, c], order=1, mode="constant", cval=0.0)  # noqa: E731
    images = jax.vmap(bilinear)(images, rows, cols)
    return stroke_thickness(jax.random.fold_in(key, 2), images, thickness) if thickness else images
