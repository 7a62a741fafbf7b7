/* ---- CONV_2D with int4 filters: im2col, then FULLY_CONNECTED with int4 weights over the patch -------
   conv_2d (conv_2d.c) on packed int4 filters: for each output pixel the k_h x k_w x in_c input values
   under the filter are copied into `patch` (row, column, channel), taps outside the image as the
   input's zero point (which, with input_offset * sum(w) folded into the bias, adds exactly nothing, as
   TFLite skips them), and the out_c filters are dotted with it by fully_connected_int4. A 1x1 stride-1
   convolution without padding dots the input pixel in place. */
static void conv_2d_int4(const int8_t *in, int8_t *out, int8_t *patch, int in_h, int in_w, int in_c,
                         int out_h, int out_w, int out_c, int k_h, int k_w, int stride_h, int stride_w,
                         int pad_top, int pad_left, int8_t pad_value, const uint8_t *weights, const int32_t *bias,
                         const int32_t *multiplier, const int8_t *shift, int per_channel,
                         int32_t output_offset, int32_t act_min, int32_t act_max) {
    int depth = k_h * k_w * in_c;
    int pointwise = k_h == 1 && k_w == 1 && stride_h == 1 && stride_w == 1 && pad_top == 0 && pad_left == 0;
    for (int oy = 0; oy < out_h; ++oy) {
        int y0 = oy * stride_h - pad_top;
        for (int ox = 0; ox < out_w; ++ox) {
            int x0 = ox * stride_w - pad_left;
            const int8_t *column = patch;
            if (pointwise) {
                column = in + (y0 * in_w + x0) * in_c;
            } else {
                int8_t *p = patch;
                for (int ky = 0; ky < k_h; ++ky) {
                    int y = y0 + ky;
                    for (int kx = 0; kx < k_w; ++kx) {
                        int x = x0 + kx;
                        if (y < 0 || y >= in_h || x < 0 || x >= in_w) {
                            for (int c = 0; c < in_c; ++c) *p++ = pad_value;
                        } else {
                            const int8_t *src = in + (y * in_w + x) * in_c;
                            for (int c = 0; c < in_c; ++c) *p++ = src[c];
                        }
                    }
                }
            }
            fully_connected_int4(column, out + (oy * out_w + ox) * out_c, depth, out_c, weights, bias, multiplier,
                                 shift, per_channel, output_offset, act_min, act_max);
        }
    }
}
