"""The int8 softmax's exponentials, exactly as kernels.c (TFLite's reference softmax) computes them.

The softmax exponentiates the difference d = x - max(x) of two int8 values, so d is in [-255, 0]
and its exponential depends only on d and the model's three softmax constants. On a Cortex-M0
(no 32 x 32 -> 64-bit multiply) computing it costs ~300 instructions per class; the generator
instead emits this table, computed here in Python integers with gemmlowp's fixed-point arithmetic
step for step (tests/test_kernels.py checks it against the C on every d), and the M0 build reads it.

    >>> table = exp_table(1542223360, 25, -62)   # a lesson run's softmax constants (codegen.plan)
    >>> table[:2], len(table)                    # exp(0), exp(-1 * input scale) in Q0.31; 0 past the end
    ([2147483647, 1499632238], 42)
"""
INT32_MIN, INT32_MAX = -2**31, 2**31 - 1
EXP_CUTOFF = -(15 << 26)  # kernels.c skips exp(x) for x <= -15 in Q5.26: it is too small to count
EXP_BARREL_SHIFTER = (1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242)  # exp(-2^k), k = -2..4


def srdhm(a: int, b: int) -> int:
    """gemmlowp SaturatingRoundingDoublingHighMul: (a * b * 2 + 2^31) >> 32 on int32."""
    return INT32_MAX if a == b == INT32_MIN else (a * b + (1 << 30)) >> 31


def rdbpot(x: int, exponent: int) -> int:
    """gemmlowp RoundingDivideByPOT: x / 2^exponent rounded half away from zero."""
    mask = (1 << exponent) - 1
    return (x >> exponent) + ((x & mask) > (mask >> 1) + (x < 0))


def sat_shl(x: int, exponent: int) -> int:
    """gemmlowp SaturatingRoundingMultiplyByPOT for a positive exponent."""
    threshold = (1 << (31 - exponent)) - 1
    return INT32_MAX if x > threshold else INT32_MIN if x < -threshold else x << exponent


def exp_on_interval(a: int) -> int:
    """exp(a) for a in [-1/4, 0) in Q0.31: a Taylor polynomial around -1/8."""
    constant_term, one_third = 1895147668, 715827883
    x = a + (1 << 28)
    x2 = srdhm(x, x)
    x3, x4 = srdhm(x2, x), srdhm(x2, x2)
    poly = rdbpot(srdhm(rdbpot(x4, 2) + x3, one_third) + x2, 1)
    return constant_term + srdhm(constant_term, x + poly)


def exp_on_negative_values(a: int) -> int:
    """exp(a) for a <= 0 in Q5.26, result in Q0.31 (gemmlowp exp_on_negative_values<int32, 5>)."""
    if a == 0:
        return INT32_MAX
    quarter = 1 << 24
    a_mod_quarter_minus_quarter = (a & (quarter - 1)) - quarter
    result = exp_on_interval(sat_shl(a_mod_quarter_minus_quarter, 5))
    remainder = a_mod_quarter_minus_quarter - a
    for i, multiplier in enumerate(EXP_BARREL_SHIFTER):
        if remainder & (1 << (24 + i)):
            result = srdhm(result, multiplier)
    return result


def exp_of_difference(diff: int, input_multiplier: int, input_left_shift: int, diff_min: int) -> int:
    """What kernels.c's softmax stores in exps[] for the int8 difference `diff` (0 when it skips it)."""
    x = srdhm(diff * (1 << input_left_shift), input_multiplier) if diff >= diff_min else INT32_MIN
    return exp_on_negative_values(x) if x > EXP_CUTOFF else 0


def exp_table(input_multiplier: int, input_left_shift: int, diff_min: int) -> list[int]:
    """table[-d] = exps of the difference d, for d = 0, -1, ... down to the last nonzero one."""
    table = [exp_of_difference(-k, input_multiplier, input_left_shift, diff_min) for k in range(256)]
    while table and table[-1] == 0:
        table.pop()
    return table
