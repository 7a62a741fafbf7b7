/* ---- STRIDED_SLICE ------------------------------------------------------------------------ */
/* STRIDED_SLICE with stride 1: the (out_h, out_w) window of a (height, width, channels) tensor at (top, left) */
static void crop(const int8_t *in, int8_t *out, int width, int channels, int top, int left, int out_h, int out_w) {
    for (int y = 0; y < out_h; ++y)
        for (int i = 0; i < out_w * channels; ++i)
            out[y * out_w * channels + i] = in[((y + top) * width + left) * channels + i];
}

