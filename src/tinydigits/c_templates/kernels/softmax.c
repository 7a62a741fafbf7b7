/* ---- SOFTMAX ------------------------------------------------------------------------------ */
#if !TINYDIGITS_MATCH_LITERT
/* gemmlowp SaturatingRoundingMultiplyByPOT for a positive exponent: saturating x << exponent. */
static int32_t sat_shl(int32_t x, int exponent) {
    int32_t threshold = (int32_t)((UINT32_C(1) << (31 - exponent)) - 1);
    if (x > threshold) return INT32_MAX;
    if (x < -threshold) return INT32_MIN;
    return (int32_t)((uint32_t)x << exponent);
}

#endif

#if !TINYDIGITS_MATCH_LITERT && !TINYDIGITS_SOFTMAX_EXP_TABLE
/* gemmlowp fixed point: Q0.31 for FixedPoint<int32,0>, Q2.29 for FixedPoint<int32,2>, Q5.26 ... */
static int32_t exp_on_interval_between_negative_one_quarter_and_0_excl(int32_t a) {
    const int32_t constant_term = 1895147668;     /* exp(-1/8) in Q0.31 */
    const int32_t constant_1_over_3 = 715827883;  /* 1/3 in Q0.31 */
    int32_t x = a + (INT32_C(1) << 28);          /* a + 1/8 */
    int32_t x2 = srdhm(x, x), x3 = srdhm(x2, x), x4 = srdhm(x2, x2);
    int32_t x4_over_4 = rdbpot(x4, 2);
    int32_t poly = rdbpot(srdhm(x4_over_4 + x3, constant_1_over_3) + x2, 1);
    return constant_term + srdhm(constant_term, x + poly);
}

/* exp(a) for a <= 0 given in Q5.26, result in Q0.31 (gemmlowp exp_on_negative_values<int32, 5>). */
static int32_t exp_on_negative_values(int32_t a) {
    static const int32_t multipliers[7] TINYDIGITS_FLASH = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
    if (a == 0) return INT32_MAX;  /* exp(0): the largest logit; gemmlowp selects this at the end */
    const int32_t one_quarter = INT32_C(1) << 24;
    int32_t a_mod_quarter_minus_one_quarter = (a & (one_quarter - 1)) - one_quarter;
    int32_t result = exp_on_interval_between_negative_one_quarter_and_0_excl(sat_shl(a_mod_quarter_minus_one_quarter, 5));
    int32_t remainder = a_mod_quarter_minus_one_quarter - a;
    for (int i = 0; i < 7; ++i)  /* exponents -2..4: bits 24..30 of the remainder */
        if (remainder & (INT32_C(1) << (24 + i))) result = srdhm(result, read_i32(&multipliers[i]));
    return result;
}

#endif

#if !TINYDIGITS_MATCH_LITERT
/* 1 / (1 + x) for x in [0, 1), Q0.31 in and out: three Newton-Raphson steps in Q2.29. */
static int32_t one_over_one_plus_x_for_x_in_0_1(int32_t a) {
    int64_t sum = (int64_t)a + INT32_MAX;
    int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
    const int32_t constant_48_over_17 = 1515870810, constant_neg_32_over_17 = -1010580540;
    int32_t x = constant_48_over_17 + srdhm(half_denominator, constant_neg_32_over_17);
    for (int i = 0; i < 3; ++i) {
        int32_t one_minus_half_denominator_times_x = (INT32_C(1) << 29) - srdhm(half_denominator, x);
        x = x + sat_shl(srdhm(x, one_minus_half_denominator_times_x), 2);
    }
    return sat_shl(x, 1);
}

static int count_leading_zeros(uint32_t x) {
    int n = 0;
    while (n < 32 && !(x & (UINT32_C(0x80000000) >> n))) ++n;
    return n;
}

/* TFLite reference int8 softmax (output scale 1/256, zero point -128). On a Cortex-M0 the
   exponentials come from the generator's table (codegen/ops/dense.py exp_table: [-diff], 0 past its end). */
#if TINYDIGITS_SOFTMAX_EXP_TABLE
static void softmax(const int8_t *in, int8_t *out, int depth, const int32_t *exp_table, int exp_table_size) {
#else
static void softmax(const int8_t *in, int8_t *out, int depth, int32_t input_multiplier,
                    int input_left_shift, int32_t diff_min) {
#endif
    int8_t max_in = -128;
    for (int c = 0; c < depth; ++c) if (in[c] > max_in) max_in = in[c];
    int32_t sum_of_exps = 0;  /* Q12.19 */
    int32_t exps[TINYDIGITS_OUTPUT_SIZE];  /* the softmax is the model's output: depth is this size */
    for (int c = 0; c < depth; ++c) {
        int32_t diff = (int32_t)in[c] - max_in;
#if TINYDIGITS_SOFTMAX_EXP_TABLE
        exps[c] = -diff < exp_table_size ? read_i32(&exp_table[-diff]) : 0;
#else
        int32_t x = diff >= diff_min ? srdhm(diff * (INT32_C(1) << input_left_shift), input_multiplier) : INT32_MIN;
        /* exp(x) for x <= -15 is about 656 in Q0.31, well under 2^11: it adds 0 to the sum below
           (which drops 12 bits) and gives an output of -128, exactly as 0 does. So skip it. */
        exps[c] = x > -(INT32_C(15) << 26) ? exp_on_negative_values(x) : 0;  /* x in Q5.26 */
#endif
        sum_of_exps += rdbpot(exps[c], 12);
    }
    int headroom_plus_one = count_leading_zeros((uint32_t)sum_of_exps);
    int num_bits_over_unit = 12 - headroom_plus_one;
    int32_t shifted_sum_minus_one = (int32_t)(((uint32_t)sum_of_exps << headroom_plus_one) - (UINT32_C(1) << 31));
    int32_t shifted_scale = one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one);
    for (int c = 0; c < depth; ++c) {
#if TINYDIGITS_SOFTMAX_EXP_TABLE
        if (exps[c] != 0) {  /* an exponential of 0 gives -128 below, as a difference under diff_min does */
#else
        int32_t diff = (int32_t)in[c] - max_in;
        if (diff >= diff_min) {
#endif
            int32_t v = rdbpot(srdhm(shifted_scale, exps[c]), num_bits_over_unit + 31 - 8) - 128;
            out[c] = (int8_t)(v < -128 ? -128 : v > 127 ? 127 : v);
        } else {
            out[c] = -128;
        }
    }
}
#endif

#if TINYDIGITS_MATCH_LITERT
/* LiteRT's optimized int8 softmax: exp from a 256-entry float table, normalized in float.
   Float arithmetic, so only with TINYDIGITS_MATCH_LITERT; compile without contraction (-std=c99). */
static void softmax(const int8_t *in, int8_t *out, int depth, const float *table) {
    int max_in = -128;
    for (int c = 0; c < depth; ++c) if (in[c] > max_in) max_in = in[c];
    const float *row = table + 255 - max_in;  /* row[x] = exp(input_scale * (x - max)) */
    float sum = 0.0f;
    for (int c = 0; c < depth; ++c) sum += read_f32(&row[in[c]]);
    const float inverse = 1.0f / (sum * (1.0f / 256));
    for (int c = 0; c < depth; ++c) {
        int32_t v = (int32_t)(read_f32(&row[in[c]]) * inverse + 0.5f) - 128;
        out[c] = (int8_t)(v < -128 ? -128 : v > 127 ? 127 : v);
    }
}
#endif
