"""Differential privacy for aggregate shares: discrete Laplace noise sampled with OpenDP.

Each aggregator adds noise to every coordinate of its aggregate share before committing. The noise
is discrete Laplace with scale `sensitivity_L1 * 2^f / epsilon`, where `sensitivity_L1 * 2^f` is
the L1 sensitivity of one owner's encoded output (`QuerySpec.encoded_l1_sensitivity`). Because the
noise is an integer in encoded units, it adds to a share in Z_2^64 without rounding. With K
aggregators the published result carries K independent noises, so the guarantee holds while any one
aggregator adds its noise.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import opendp.prelude as opendp
from numpy.typing import ArrayLike, NDArray

from .budget import MILLIONTHS_PER_EPSILON
from .errors import PrivacyError
from .spec import QuerySpec

__all__ = [
    "NOISE_TAIL_SCALES",
    "LaplaceNoise",
    "l1_sensitivity",
    "encoded_l1_sensitivity",
    "noise_scale",
    "make_noise",
    "add_noise",
    "check_noise_headroom",
    "discrete_laplace_variance",
    "result_noise_sd",
]

logger = logging.getLogger(__name__)

# Noise beyond this many scales has probability below 2 * e^-50 (about 4e-22) per coordinate, so the
# headroom check treats it as the largest noise an aggregator adds.
NOISE_TAIL_SCALES = 50

_SIGNED_LIMIT = 2**63

# Attempts to nudge the scale up until OpenDP's privacy map reports at most the spec's epsilon.
_SCALE_ADJUSTMENTS = 16


def l1_sensitivity(spec: QuerySpec) -> Fraction:
    """Return the L1 sensitivity of one owner's output in real units (from clip and contributionBound)."""
    return spec.l1_sensitivity


def encoded_l1_sensitivity(spec: QuerySpec) -> int:
    """Return the L1 sensitivity of one owner's encoded output, in units of 2^-fractionalBits."""
    return spec.encoded_l1_sensitivity


def noise_scale(spec: QuerySpec) -> float:
    """Return the discrete Laplace scale in encoded units, `encoded sensitivity / epsilon`.

    Raises:
        PrivacyError: the spec is exact (noise-free).
    """
    return make_noise(spec).scale


@dataclass(frozen=True)
class LaplaceNoise:
    """A discrete Laplace mechanism on integer vectors, built for one spec.

    `sensitivity` is in encoded units, `epsilon` in millionths and `scale` in encoded units.
    """

    sensitivity: int
    epsilon: int
    scale: float
    measurement: opendp.Measurement = field(repr=False, compare=False)

    def privacy_loss(self) -> float:
        """Return the epsilon that OpenDP's privacy map reports at `sensitivity` (as a real, not millionths)."""
        return float(self.measurement.map(self.sensitivity))

    def sample(self, length: int) -> NDArray[np.int64]:
        """Return `length` independent noise values, as signed integers in encoded units."""
        if length == 0:
            return np.zeros(0, dtype=np.int64)
        return np.asarray(self.measurement([0] * length), dtype=np.int64)

    def add_to(self, share: ArrayLike) -> NDArray[np.uint64]:
        """Return `share + noise` modulo 2^64, with fresh noise on every coordinate."""
        words = np.asarray(share)
        if words.dtype != np.uint64 or words.ndim != 1:
            raise PrivacyError(f"expected a one-dimensional uint64 share, got dtype {words.dtype} and shape {words.shape}")
        noise = self.sample(len(words)).view(np.uint64)
        # uint64 addition wraps modulo 2^64, which is the ring the shares live in.
        return words + noise


def make_noise(spec: QuerySpec) -> LaplaceNoise:
    """Build the discrete Laplace mechanism for `spec`.

    Raises:
        PrivacyError: the spec is exact, so it must not be noised.
    """
    if spec.exact or spec.epsilon == 0:
        raise PrivacyError(f"spec is exact (epsilon {spec.epsilon}); exact queries get no noise, so do not build a mechanism")
    sensitivity = spec.encoded_l1_sensitivity
    epsilon = spec.epsilon / MILLIONTHS_PER_EPSILON
    scale = sensitivity * MILLIONTHS_PER_EPSILON / spec.epsilon
    measurement = _build_measurement(scale)
    # OpenDP rounds its privacy map up, so the float scale can report slightly more than epsilon.
    # Raise the scale by one ulp at a time until the reported loss is within the spec's epsilon.
    for _ in range(_SCALE_ADJUSTMENTS):
        if measurement.map(sensitivity) <= epsilon:
            break
        scale = math.nextafter(scale, math.inf)
        measurement = _build_measurement(scale)
    else:
        raise PrivacyError(f"OpenDP reports a privacy loss above epsilon {epsilon} at scale {scale}; this is a bug")
    logger.debug("discrete Laplace noise: sensitivity %d, epsilon %s, scale %.6g", sensitivity, epsilon, scale)
    return LaplaceNoise(sensitivity=sensitivity, epsilon=spec.epsilon, scale=scale, measurement=measurement)


def add_noise(spec: QuerySpec, share: ArrayLike) -> NDArray[np.uint64]:
    """Return an aggregate share with the spec's noise added, or an unchanged copy for an exact spec."""
    words = np.asarray(share)
    if words.dtype != np.uint64 or words.shape != (spec.output_length,):
        raise PrivacyError(
            f"expected a uint64 share of length {spec.output_length}, got dtype {words.dtype} and shape {words.shape}"
        )
    if spec.exact:
        return words.copy()
    return make_noise(spec).add_to(words)


def check_noise_headroom(spec: QuerySpec, max_owners: int, aggregators: int) -> None:
    """Check that the owners' sum plus K noises stays below 2^63 and so decodes with the right sign.

    The contract only checks `max_owners * maxAbsEncoded < 2^62`; the noise of each aggregator is
    counted here at `NOISE_TAIL_SCALES` scales.

    Raises:
        PrivacyError: the noise could wrap the signed range; lower fractionalBits or the clip bounds,
            or raise epsilon.
    """
    spec.validate_for_market(max_owners)
    if spec.exact:
        return
    noise_bound = math.ceil(noise_scale(spec) * NOISE_TAIL_SCALES) * aggregators
    total = max_owners * spec.max_abs_encoded + noise_bound
    if total >= _SIGNED_LIMIT:
        raise PrivacyError(
            f"{aggregators} aggregators' noise (up to {noise_bound} encoded units) plus {max_owners} owners' values "
            f"(up to {max_owners * spec.max_abs_encoded}) could reach 2^63 and wrap; lower fractionalBits or "
            "the clip bounds, or raise epsilon"
        )


def discrete_laplace_variance(scale: float) -> float:
    """Return the variance of discrete Laplace noise of `scale`: 2e^(-1/scale) / (1 - e^(-1/scale))^2."""
    if scale <= 0:
        return 0.0
    # expm1 keeps 1 - e^(-1/scale) accurate when the scale is large and e^(-1/scale) rounds to 1.
    gap = -math.expm1(-1.0 / scale)
    return 2.0 * math.exp(-1.0 / scale) / gap**2


def result_noise_sd(spec: QuerySpec, aggregators: int) -> float:
    """Return the standard deviation of the noise on each published coordinate, in real units.

    Each of `aggregators` adds its own noise, so the variances add. An exact spec has none.
    """
    if spec.exact:
        return 0.0
    variance = aggregators * discrete_laplace_variance(noise_scale(spec))
    return math.sqrt(variance) / 2**spec.fractional_bits


def _build_measurement(scale: float) -> opendp.Measurement:
    # The integer Laplace mechanism on vectors is behind OpenDP's "contrib" flag in 0.16 because its
    # proof has not been vetted upstream yet. We accept it because the discrete Laplace sampler is
    # exact (no floating-point sampling) and draws its bits from OpenDP's CSPRNG, which in the 0.16
    # wheel is OpenSSL's RAND_bytes.
    opendp.enable_features("contrib")
    space = opendp.vector_domain(opendp.atom_domain(T=opendp.i64)), opendp.l1_distance(T=opendp.i64)
    return opendp.m.make_laplace(*space, scale=scale)
