/* ---- RELU and RELU6 as their own ops: TFLM's kernels ---------------------------------------------
   RELU requantizes (input and output may differ in scale) and clamps at the output's zero; RELU6
   keeps the quantization and clamps between the zero point and 6. */
#if TINYDIGITS_USES_RELU
static void relu(const int8_t *in, int8_t *out, int count, int32_t input_zero_point, int32_t multiplier, int shift,
                 int32_t output_offset, int32_t act_min, int32_t act_max) {
    for (int i = 0; i < count; ++i)
        out[i] = clamp_i8(output_offset + requantize((int32_t)in[i] - input_zero_point, multiplier, shift), act_min, act_max);
}
#endif
#if TINYDIGITS_USES_RELU6
static void relu6(const int8_t *in, int8_t *out, int count, int32_t low, int32_t high) {
    for (int i = 0; i < count; ++i) out[i] = clamp_i8(in[i], low, high);
}
#endif
