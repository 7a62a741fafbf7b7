/* ---- MEAN over height and width (global average pooling): TFLM's integer mean --------------------
   sum over the `count` pixels of each channel, less count * the input zero point, times the
   generator's multiplier (input / output scale, divided by count as TFLM divides it: shifted by
   floor(log2(count)) first), plus the output zero point. */
static void mean_hw(const int8_t *in, int8_t *out, int count, int channels, int32_t zero_sum, int32_t multiplier,
                    int shift, int32_t output_offset) {
    for (int c = 0; c < channels; ++c) {
        int32_t sum = 0;
        for (int i = 0; i < count; ++i) sum += in[i * channels + c];
        out[c] = clamp_i8(requantize(sum - zero_sum, multiplier, shift) + output_offset, -128, 127);
    }
}
