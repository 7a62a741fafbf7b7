/* ---- ADD of two tensors of one shape (a residual connection): TFLite's reference -----------------
   Each input, offset by its zero point, is shifted left by 20 bits and scaled to the larger input
   scale (times 1/2), the two are added, and the sum is scaled to the output. */
static void add(const int8_t *a, const int8_t *b, int8_t *out, int count, int32_t a_offset, int32_t b_offset,
                int left_shift, int32_t a_multiplier, int a_shift, int32_t b_multiplier, int b_shift,
                int32_t out_multiplier, int out_shift, int32_t output_offset, int32_t act_min, int32_t act_max) {
    for (int i = 0; i < count; ++i) {
        int32_t x = requantize(((int32_t)a[i] + a_offset) * (INT32_C(1) << left_shift), a_multiplier, a_shift);
        int32_t y = requantize(((int32_t)b[i] + b_offset) * (INT32_C(1) << left_shift), b_multiplier, b_shift);
        out[i] = clamp_i8(requantize(x + y, out_multiplier, out_shift) + output_offset, act_min, act_max);
    }
}
