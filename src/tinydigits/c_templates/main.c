/* Classify raw images with the generated int8 model.
 *
 *   ./tinydigits                    the built-in sample images (export-c's tinydigits_samples.h)
 *   ./tinydigits digit.raw ...      each file: 784 bytes, uint8 pixels 0-255, MNIST layout (ink bright),
 *                                   e.g. samples/label7_test0.raw, or what
 *                                   `tinydigits predict RUN my.png --save-raw my.raw` writes
 *   ./tinydigits --batch in out     in: N*784 int8 inputs, out: N*10 int8 outputs (for verification)
 *   ./tinydigits --time in REPEAT   mean nanoseconds per inference over the images in `in`, REPEAT passes
 */
#define _POSIX_C_SOURCE 199309L
#include <math.h>
#include <stdlib.h>
#include <time.h>
#include <stdio.h>
#include <string.h>

#include "tinydigits_model.h"
#ifdef TINYDIGITS_SAMPLES
#include "tinydigits_samples.h"
#endif

static int8_t quantize_pixel(unsigned char pixel) {
    /* q = round(x / scale) + zero_point with x = pixel / 255; float only here, outside the model */
    long q = lroundf((float)pixel / 255.0f / TINYDIGITS_INPUT_SCALE) + TINYDIGITS_INPUT_ZERO_POINT;
    return (int8_t)(q < -128 ? -128 : q > 127 ? 127 : q);
}

/* One image of uint8 pixels -> the digit; its probability in *confidence. */
static int classify(const unsigned char *pixels, float *confidence) {
    int8_t input[TINYDIGITS_INPUT_SIZE], output[TINYDIGITS_OUTPUT_SIZE];
    for (int p = 0; p < TINYDIGITS_INPUT_SIZE; ++p) input[p] = quantize_pixel(pixels[p]);
    int digit = tinydigits_predict(input, output);
    *confidence = (output[digit] - TINYDIGITS_OUTPUT_ZERO_POINT) * TINYDIGITS_OUTPUT_SCALE;
    return digit;
}

static int batch(const char *in_path, const char *out_path) {
    FILE *in = fopen(in_path, "rb"), *out = fopen(out_path, "wb");
    if (!in || !out) { fprintf(stderr, "error: cannot open %s or %s\n", in_path, out_path); return 2; }
    int8_t input[TINYDIGITS_INPUT_SIZE], output[TINYDIGITS_OUTPUT_SIZE];
    while (fread(input, 1, sizeof input, in) == sizeof input) {
        tinydigits_predict(input, output);
        fwrite(output, 1, sizeof output, out);
    }
    fclose(in);
    return fclose(out) == 0 ? 0 : 2;
}

static int timing(const char *in_path, int repeat) {
    static int8_t images[10000][TINYDIGITS_INPUT_SIZE];
    FILE *in = fopen(in_path, "rb");
    if (!in || repeat < 1) { fprintf(stderr, "error: cannot open %s\n", in_path); return 2; }
    size_t n = fread(images, TINYDIGITS_INPUT_SIZE, 10000, in);
    fclose(in);
    if (n == 0) { fprintf(stderr, "error: %s holds no image\n", in_path); return 2; }
    int8_t output[TINYDIGITS_OUTPUT_SIZE];
    volatile int sink = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int r = 0; r < repeat; ++r)
        for (size_t i = 0; i < n; ++i) sink += tinydigits_predict(images[i], output);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ns = ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / ((double)n * repeat);
    printf("%.1f ns per inference over %zu images x %d\n", ns, n, repeat);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "--batch") == 0) return batch(argv[2], argv[3]);
    if (argc == 4 && strcmp(argv[1], "--time") == 0) return timing(argv[2], atoi(argv[3]));
    float confidence;
    if (argc < 2) {
#ifdef TINYDIGITS_SAMPLES
        for (int i = 0; i < TINYDIGITS_SAMPLE_COUNT; ++i) {
            int digit = classify(tinydigits_samples[i], &confidence);
            printf("test image %d (label %d): %d (%.4f)\n", tinydigits_sample_index[i], tinydigits_sample_label[i],
                   digit, confidence);
        }
        return 0;
#else
        fprintf(stderr, "usage: %s IMAGE.raw... | --batch IN OUT | --time IN REPEAT\n", argv[0]);
        return 2;
#endif
    }
    for (int i = 1; i < argc; ++i) {
        unsigned char pixels[TINYDIGITS_INPUT_SIZE + 1];
        FILE *f = fopen(argv[i], "rb");
        size_t n = f ? fread(pixels, 1, sizeof pixels, f) : 0;
        if (f) fclose(f);
        if (n != TINYDIGITS_INPUT_SIZE) {
            fprintf(stderr, "error: %s: expected %d bytes, got %zu\n", argv[i], TINYDIGITS_INPUT_SIZE, n);
            return 2;
        }
        int digit = classify(pixels, &confidence);
        printf("%s: %d (%.4f)\n", argv[i], digit, confidence);
    }
    return 0;
}
