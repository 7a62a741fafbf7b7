/* ---- integer kernels: TFLite's reference int8 arithmetic, operation for operation ----------- */
/* Portable to 8-, 16- and 32-bit targets: every constant and intermediate that needs 32 bits is
   int32_t or written INT32_C/UINT32_C, since `int` may be 16 bits (AVR). */

/* Constant tables live in flash. On AVR (Harvard: flash is not in the data address space) that
   takes PROGMEM and explicit reads, else avr-gcc copies every const table into SRAM at start-up;
   elsewhere const data already stays in flash and a read is a plain load. */
#ifdef __AVR__
#include <avr/pgmspace.h>
#define TINYDIGITS_FLASH PROGMEM
#define read_i8(p) ((int8_t)pgm_read_byte(p))
#define read_i32(p) ((int32_t)pgm_read_dword(p))
#else
#define TINYDIGITS_FLASH
#define read_i8(p) (*(p))
#define read_i32(p) (*(p))
#endif
#if TINYDIGITS_MATCH_LITERT
#ifdef __AVR__
#define read_f32(p) pgm_read_float(p)
#else
#define read_f32(p) (*(p))
#endif
#endif

/* gemmlowp SaturatingRoundingDoublingHighMul: (a * b * 2) >> 32, rounded, saturated. */
static inline int32_t srdhm(int32_t a, int32_t b) {
    if (a == b && a == INT32_MIN) return INT32_MAX;
    int64_t ab = (int64_t)a * (int64_t)b;
    int32_t nudge = ab >= 0 ? (INT32_C(1) << 30) : (1 - (INT32_C(1) << 30));
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

/* gemmlowp RoundingDivideByPOT: x / 2^exponent, rounded half away from zero. */
static inline int32_t rdbpot(int32_t x, int exponent) {
    int32_t mask = (int32_t)((1ll << exponent) - 1);
    int32_t remainder = x & mask;
    int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

#if TINYDIGITS_MATCH_LITERT
/* LiteRT's CPU kernels (TFLITE_SINGLE_ROUNDING): x * multiplier * 2^shift with one rounding, in 64 bits. */
static int32_t requantize(int32_t x, int32_t multiplier, int shift) {
    int total = 31 - shift;
    return (int32_t)(((int64_t)x * multiplier + ((int64_t)1 << (total - 1))) >> total);
}
#else
/* TFLite MultiplyByQuantizedMultiplier, rounding twice as the reference kernels and TFLM do:
   x * multiplier * 2^shift. */
static int32_t requantize(int32_t x, int32_t multiplier, int shift) {
    int left = shift > 0 ? shift : 0;
    int right = shift > 0 ? 0 : -shift;
    return rdbpot(srdhm((int32_t)((uint32_t)x << left), multiplier), right);
}
#endif

#if TINYDIGITS_USES_SOFTMAX && !TINYDIGITS_MATCH_LITERT
/* gemmlowp SaturatingRoundingMultiplyByPOT for a positive exponent: saturating x << exponent. */
static int32_t sat_shl(int32_t x, int exponent) {
    int32_t threshold = (int32_t)((UINT32_C(1) << (31 - exponent)) - 1);
    if (x > threshold) return INT32_MAX;
    if (x < -threshold) return INT32_MIN;
    return (int32_t)((uint32_t)x << exponent);
}

#endif

#if TINYDIGITS_USES_FULLY_CONNECTED
static void fully_connected(const int8_t *in, int8_t *out, int depth, int units, const int8_t *weights,
                            const int32_t *bias, const int32_t *multiplier, const int8_t *shift,
                            int per_channel, int32_t output_offset, int32_t act_min, int32_t act_max) {
    for (int u = 0; u < units; ++u) {
        const int8_t *w = weights + u * depth;
        int32_t acc = read_i32(&bias[u]);  /* the generator folded input_offset * sum(w) into the bias: exact */
        for (int d = 0; d < depth; ++d) acc += read_i8(&w[d]) * in[d];  /* int8 * int8 fits a 16-bit int */
        int c = per_channel ? u : 0;
        acc = requantize(acc, read_i32(&multiplier[c]), read_i8(&shift[c])) + output_offset;
        out[u] = (int8_t)(acc < act_min ? act_min : acc > act_max ? act_max : acc);
    }
}

#endif

#if TINYDIGITS_USES_AVERAGE_POOL_2D
static void average_pool(const int8_t *in, int8_t *out, int height, int width, int channels, int pool,
                         int stride, int32_t act_min, int32_t act_max) {
    int out_h = (height - pool) / stride + 1, out_w = (width - pool) / stride + 1;
    for (int y = 0; y < out_h; ++y)
        for (int x = 0; x < out_w; ++x)
            for (int ch = 0; ch < channels; ++ch) {
                int32_t acc = 0, count = 0;
                for (int dy = 0; dy < pool; ++dy)
                    for (int dx = 0; dx < pool; ++dx) {
                        acc += in[((y * stride + dy) * width + (x * stride + dx)) * channels + ch];
                        ++count;
                    }
                acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                out[(y * out_w + x) * channels + ch] = (int8_t)(acc < act_min ? act_min : acc > act_max ? act_max : acc);
            }
}

#endif

#if TINYDIGITS_USES_SOFTMAX && !TINYDIGITS_MATCH_LITERT
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
    const int32_t one_quarter = INT32_C(1) << 24;
    int32_t a_mod_quarter_minus_one_quarter = (a & (one_quarter - 1)) - one_quarter;
    int32_t result = exp_on_interval_between_negative_one_quarter_and_0_excl(sat_shl(a_mod_quarter_minus_one_quarter, 5));
    int32_t remainder = a_mod_quarter_minus_one_quarter - a;
    for (int i = 0; i < 7; ++i)  /* exponents -2..4: bits 24..30 of the remainder */
        if (remainder & (INT32_C(1) << (24 + i))) result = srdhm(result, read_i32(&multipliers[i]));
    return a == 0 ? INT32_MAX : result;
}

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

/* TFLite reference int8 softmax (output scale 1/256, zero point -128). */
static void softmax(const int8_t *in, int8_t *out, int depth, int32_t input_multiplier,
                    int input_left_shift, int32_t diff_min) {
    int8_t max_in = -128;
    for (int c = 0; c < depth; ++c) if (in[c] > max_in) max_in = in[c];
    int32_t sum_of_exps = 0;  /* Q12.19 */
    for (int c = 0; c < depth; ++c) {
        int32_t diff = (int32_t)in[c] - max_in;
        if (diff >= diff_min)
            sum_of_exps += rdbpot(exp_on_negative_values(srdhm(diff * (INT32_C(1) << input_left_shift), input_multiplier)), 12);
    }
    int headroom_plus_one = count_leading_zeros((uint32_t)sum_of_exps);
    int num_bits_over_unit = 12 - headroom_plus_one;
    int32_t shifted_sum_minus_one = (int32_t)(((uint32_t)sum_of_exps << headroom_plus_one) - (UINT32_C(1) << 31));
    int32_t shifted_scale = one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one);
    for (int c = 0; c < depth; ++c) {
        int32_t diff = (int32_t)in[c] - max_in;
        if (diff >= diff_min) {
            int32_t e = exp_on_negative_values(srdhm(diff * (INT32_C(1) << input_left_shift), input_multiplier));
            int32_t v = rdbpot(srdhm(shifted_scale, e), num_bits_over_unit + 31 - 8) - 128;
            out[c] = (int8_t)(v < -128 ? -128 : v > 127 ? 127 : v);
        } else {
            out[c] = -128;
        }
    }
}
#endif

#if TINYDIGITS_USES_SOFTMAX && TINYDIGITS_MATCH_LITERT
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
