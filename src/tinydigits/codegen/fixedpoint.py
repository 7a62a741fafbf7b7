"""TFLite's integer arithmetic in numpy, written as TFLM's reference code computes it.

These are the trusted references the op table's `reference` functions are built from (and what
the generator uses to compute constants): gemmlowp's SaturatingRoundingDoublingHighMul and
RoundingDivideByPOT, TFLite's QuantizeMultiplier and MultiplyByQuantizedMultiplier (the
double-rounding form TFLM runs), and the activation range of a fused ReLU/ReLU6. Arrays are int64
so that every intermediate is exact; results are what int32 C code gives.

    multiplier, shift = quantize_multiplier(0.0123)
    y = multiply_by_quantized_multiplier(acc, multiplier, shift)     # elementwise, int64 arrays
"""
from __future__ import annotations

import math

import numpy as np

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplier: real = multiplier * 2^(shift - 31), multiplier in [2^30, 2^31)."""
    if real == 0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = math.floor(q * (1 << 31) + 0.5)  # TfLiteRound, q > 0
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return int(q_fixed), shift


def wrap32(x) -> np.ndarray:
    """int64 values as the int32 C arithmetic leaves them (two's complement wrap-around)."""
    return ((np.asarray(x, np.int64) + (1 << 31)) % (1 << 32)) - (1 << 31)


def srdhm(a, b) -> np.ndarray:
    """gemmlowp SaturatingRoundingDoublingHighMul: round(a * b / 2^31), saturated at INT32_MIN * INT32_MIN."""
    a, b = np.broadcast_arrays(np.asarray(a, np.int64), np.asarray(b, np.int64))
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    total = ab + nudge
    quotient = np.where(total >= 0, total // (1 << 31), -((-total) // (1 << 31)))  # C division: toward zero
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, quotient)


def rdbpot(x, exponent) -> np.ndarray:
    """gemmlowp RoundingDivideByPOT: x / 2^exponent rounded half away from zero."""
    x, exponent = np.asarray(x, np.int64), np.asarray(exponent, np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(x, multiplier, shift) -> np.ndarray:
    """TFLite MultiplyByQuantizedMultiplier (TFLM's, rounding twice): x * multiplier * 2^(shift - 31)."""
    shift = np.asarray(shift, np.int64)
    left, right = np.maximum(shift, 0), np.maximum(-shift, 0)
    return rdbpot(srdhm(wrap32(np.asarray(x, np.int64) << left), multiplier), right)


def round_half_away(x) -> np.ndarray:
    """C's round() and TfLiteRound: halves away from zero (numpy's round goes to even)."""
    x = np.asarray(x, np.float64)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def quantize_float32(value: float, scale: float, zero_point: int) -> int:
    """TFLite's Quantize(scale, zero_point, f): zero_point + round(f / scale), the division in float32."""
    return int(zero_point + round_half_away(np.float32(value) / np.float32(scale)))


def activation_range(activation: str, scale: float, zero_point: int) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for an int8 output: the clamp of a fused NONE/RELU/RELU6/RELU_N1_TO_1."""
    low, high = -128, 127
    if activation in ("RELU", "RELU6", "RELU_N1_TO_1"):
        low = max(low, quantize_float32(-1.0 if activation == "RELU_N1_TO_1" else 0.0, scale, zero_point))
    if activation in ("RELU6", "RELU_N1_TO_1"):
        high = min(high, quantize_float32(6.0 if activation == "RELU6" else 1.0, scale, zero_point))
    return low, high


def trunc_div(a, b) -> np.ndarray:
    """C integer division (toward zero) of int64 arrays."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    q = np.abs(a) // np.abs(b)
    return np.where((a < 0) != (b < 0), -q, q)


# ---- gemmlowp's fixed-point exp and reciprocal: what the int8 softmax is built from ----------------
EXP_BARREL_SHIFTER = (1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242)  # exp(-2^k), k = -2..4


def sat_shl(x, exponent: int) -> np.ndarray:
    """gemmlowp SaturatingRoundingMultiplyByPOT for a positive exponent: x << exponent, saturated."""
    x = np.asarray(x, np.int64)
    threshold = (1 << (31 - exponent)) - 1
    return np.where(x > threshold, INT32_MAX, np.where(x < -threshold, INT32_MIN, x << exponent))


def exp_on_interval(a) -> np.ndarray:
    """exp(a) for a in [-1/4, 0) in Q0.31: gemmlowp's Taylor polynomial around -1/8."""
    constant_term, one_third = 1895147668, 715827883
    x = wrap32(np.asarray(a, np.int64) + (1 << 28))
    x2 = srdhm(x, x)
    x3, x4 = srdhm(x2, x), srdhm(x2, x2)
    poly = rdbpot(wrap32(srdhm(wrap32(rdbpot(x4, 2) + x3), one_third) + x2), 1)
    return wrap32(constant_term + srdhm(constant_term, wrap32(x + poly)))


def exp_on_negative_values(a) -> np.ndarray:
    """exp(a) for a <= 0 given in Q5.26, result in Q0.31 (gemmlowp exp_on_negative_values<int32, 5>)."""
    a = np.asarray(a, np.int64)
    quarter = 1 << 24
    a_mod_quarter_minus_quarter = (a & (quarter - 1)) - quarter
    result = exp_on_interval(sat_shl(a_mod_quarter_minus_quarter, 5))
    remainder = a_mod_quarter_minus_quarter - a
    for i, multiplier in enumerate(EXP_BARREL_SHIFTER):
        result = np.where(remainder & (1 << (24 + i)), srdhm(result, multiplier), result)
    return np.where(a == 0, INT32_MAX, result)


def one_over_one_plus_x_for_x_in_0_1(a) -> np.ndarray:
    """1 / (1 + x) for x in [0, 1), Q0.31 in and out: three Newton-Raphson steps in Q2.29."""
    a = np.asarray(a, np.int64)
    total = a + INT32_MAX
    half_denominator = trunc_div(total + np.where(total >= 0, 1, -1), 2)  # RoundingHalfSum
    x = wrap32(1515870810 + srdhm(half_denominator, -1010580540))     # 48/17 - 32/17 * d
    for _ in range(3):
        one_minus_half_denominator_times_x = wrap32((1 << 29) - srdhm(half_denominator, x))
        x = wrap32(x + sat_shl(srdhm(x, one_minus_half_denominator_times_x), 2))
    return sat_shl(x, 1)


def count_leading_zeros32(x) -> np.ndarray:
    x = np.asarray(x, np.int64) & 0xFFFFFFFF
    bits = np.where(x > 0, np.floor(np.log2(np.maximum(x, 1))).astype(np.int64) + 1, 0)
    return 32 - bits
