/* The tinydigits WebAssembly ABI: the generated model (tinydigits_model.c, unchanged) plus three
 * exports. A caller writes 784 int8 pixels at tinydigits_input(), calls tinydigits_run(), which
 * returns the digit, and reads the 10 int8 scores at tinydigits_output(). The input scale and zero
 * point are the model's (TINYDIGITS_INPUT_SCALE/_ZERO_POINT; the web folder's model.json).
 * Built with: clang --target=wasm32 -nostdlib -Wl,--no-entry (no libc, no heap). */
#include "tinydigits_model.h"

#define EXPORT(name) __attribute__((export_name(#name)))

/* The model's own zero-copy API, exported under the names the page calls. */
EXPORT(tinydigits_input) int8_t *wasm_input(void) { return tinydigits_input(); }
EXPORT(tinydigits_output) const int8_t *wasm_output(void) { return tinydigits_output(); }
EXPORT(tinydigits_run) int wasm_run(void) { return tinydigits_invoke(); }
