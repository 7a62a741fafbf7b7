/* ---- MAX_POOL_2D and AVERAGE_POOL_2D: TFLite's reference -----------------------------------------
   The window is clipped to the image (SAME padding adds no values); the average divides by the
   number of values inside, rounding half away from zero. Input and output share their quantization. */
#define POOL_WINDOW                                                                        \
    int y0 = oy * stride_h - pad_top, x0 = ox * stride_w - pad_left;                      \
    int fy0 = y0 < 0 ? -y0 : 0, fy1 = in_h - y0 < f_h ? in_h - y0 : f_h;                  \
    int fx0 = x0 < 0 ? -x0 : 0, fx1 = in_w - x0 < f_w ? in_w - x0 : f_w;

#if TINYDIGITS_USES_MAX_POOL_2D
static void max_pool_2d(const int8_t *in, int8_t *out, int in_h, int in_w, int channels, int out_h, int out_w,
                        int f_h, int f_w, int stride_h, int stride_w, int pad_top, int pad_left,
                        int32_t act_min, int32_t act_max) {
    for (int oy = 0; oy < out_h; ++oy)
        for (int ox = 0; ox < out_w; ++ox) {
            POOL_WINDOW
            for (int c = 0; c < channels; ++c) {
                int8_t m = -128;
                for (int fy = fy0; fy < fy1; ++fy)
                    for (int fx = fx0; fx < fx1; ++fx) {
                        int8_t v = in[((y0 + fy) * in_w + x0 + fx) * channels + c];
                        if (v > m) m = v;
                    }
                out[(oy * out_w + ox) * channels + c] = clamp_i8(m, act_min, act_max);
            }
        }
}
#endif

#if TINYDIGITS_USES_AVERAGE_POOL_2D
static void average_pool_2d(const int8_t *in, int8_t *out, int in_h, int in_w, int channels, int out_h, int out_w,
                            int f_h, int f_w, int stride_h, int stride_w, int pad_top, int pad_left,
                            int32_t act_min, int32_t act_max) {
    for (int oy = 0; oy < out_h; ++oy)
        for (int ox = 0; ox < out_w; ++ox) {
            POOL_WINDOW
            int16_t count = (int16_t)((fy1 - fy0) * (fx1 - fx0));
            for (int c = 0; c < channels; ++c) {
                int32_t acc = 0;
                for (int fy = fy0; fy < fy1; ++fy)
                    for (int fx = fx0; fx < fx1; ++fx) acc += in[((y0 + fy) * in_w + x0 + fx) * channels + c];
                acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;  /* C: toward zero */
                out[(oy * out_w + ox) * channels + c] = clamp_i8(acc, act_min, act_max);
            }
        }
}
#endif
#undef POOL_WINDOW
