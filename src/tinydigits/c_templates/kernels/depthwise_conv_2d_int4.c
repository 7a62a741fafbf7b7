/* ---- DEPTHWISE_CONV_2D with int4 filters: depthwise_conv_2d (depthwise_conv_2d.c) on packed weights ---
   The weights are TFLite's (k_h, k_w, out_c) as TFLite packs them: two per byte over the flat filter,
   the low nibble first. Output channel oc = ic * multiplier + m filters input channel ic alone; taps
   outside the image are skipped, as TFLite does. */
#ifndef read_u8
#ifdef __AVR__
#define read_u8(p) ((uint8_t)pgm_read_byte(p))
#else
#define read_u8(p) (*(p))
#endif
#endif

static int32_t int4_at(const uint8_t *packed, int32_t i) {  /* the i-th int4 value, -8..7 */
    uint8_t b = read_u8(&packed[i >> 1]);
    int nibble = (i & 1) ? (b >> 4) & 0x0F : b & 0x0F;
    return (int32_t)((nibble ^ 0x08) - 8);
}

static void depthwise_conv_2d_int4(const int8_t *in, int8_t *out, int in_h, int in_w, int in_c, int out_h, int out_w,
                                   int multiplier_depth, int k_h, int k_w, int stride_h, int stride_w, int pad_top,
                                   int pad_left, int32_t input_offset, const uint8_t *weights, const int32_t *bias,
                                   const int32_t *multiplier, const int8_t *shift, int per_channel,
                                   int32_t output_offset, int32_t act_min, int32_t act_max) {
    int out_c = in_c * multiplier_depth;
    for (int oy = 0; oy < out_h; ++oy) {
        int y0 = oy * stride_h - pad_top;
        for (int ox = 0; ox < out_w; ++ox) {
            int x0 = ox * stride_w - pad_left;
            for (int oc = 0; oc < out_c; ++oc) {
                int ic = oc / multiplier_depth;
                int32_t acc = 0;
                for (int ky = 0; ky < k_h; ++ky) {
                    int y = y0 + ky;
                    if (y < 0 || y >= in_h) continue;
                    for (int kx = 0; kx < k_w; ++kx) {
                        int x = x0 + kx;
                        if (x < 0 || x >= in_w) continue;
                        acc += int4_at(weights, ((int32_t)ky * k_w + kx) * out_c + oc) *
                               ((int32_t)in[(y * in_w + x) * in_c + ic] + input_offset);
                    }
                }
                int c = per_channel ? oc : 0;
                int32_t v = requantize(acc + read_i32(&bias[oc]), read_i32(&multiplier[c]), read_i8(&shift[c])) + output_offset;
                out[(oy * out_w + ox) * out_c + oc] = clamp_i8(v, act_min, act_max);
            }
        }
    }
}
