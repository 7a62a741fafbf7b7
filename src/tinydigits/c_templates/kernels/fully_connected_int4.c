/* ---- FULLY_CONNECTED with int4 weights (and the per-pixel step of CONV_2D's int4 kernel) ---------
   fully_connected (fully_connected.c) on packed int4 weights: out[u] = requantize(sum_d w[u][d] * in[d]
   + bias'[u]), 4 rows at a time through block_dot_int4 (dot_int4.c); bias' = bias + input_offset *
   sum_d w[u][d], folded in by the generator. */
static void fully_connected_int4(const int8_t *in, int8_t *out, int depth, int units, const uint8_t *weights,
                                 const int32_t *bias, const int32_t *multiplier, const int8_t *shift,
                                 int per_channel, int32_t output_offset, int32_t act_min, int32_t act_max) {
    const uint8_t *block = weights;
    for (int first = 0; first < units; first += 4) {
        int rows = units - first < 4 ? units - first : 4;
        int32_t acc[4];
        acc[0] = acc[1] = acc[2] = acc[3] = 0;
        block_dot_int4(in, depth, block, rows, acc);
        block += (depth + 7) / 8 * 4 * rows;
        for (int r = 0; r < rows; ++r) {
            int c = per_channel ? first + r : 0;
            int32_t v = requantize(acc[r] + read_i32(&bias[first + r]), read_i32(&multiplier[c]), read_i8(&shift[c])) + output_offset;
            out[first + r] = clamp_i8(v, act_min, act_max);
        }
    }
}
