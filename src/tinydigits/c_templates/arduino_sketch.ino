/* Classify handwritten digits on the board: the int8 model, plain C, no runtime.
 *
 * At boot it classifies the test digit it carries (test_digit.h), so it prints something with
 * nothing attached. Then send it 784 bytes over Serial (115200 baud): one 28x28 image, row by
 * row, pixels 0-255, light ink on a dark background (as MNIST). It answers with one line:
 *   digit 7 probabilities 0.0000 0.0000 0.0000 0.0000 0.0000 0.0000 0.0000 0.9961 0.0000 0.0000
 * Send the next image after the answer (the board's receive buffer holds 64 bytes, and it does
 * not read while it classifies). If an image's bytes stop for a second, it starts over.
 *
 * Python, to send an image from a PC:  serial.Serial(PORT, 115200).write(pixels.tobytes())
 */
#include <Arduino.h>

#include <tinydigits_model.h>

#include "test_digit.h"

/* The model's activations (its arena, input and output included) live in RAM; on an AVR say so at
   compile time when they cannot fit beside the sketch, rather than fail at run time. */
#if defined(RAMEND) && defined(RAMSTART) && (TINYDIGITS_ARENA_BYTES + 512 > RAMEND - RAMSTART + 1)
#error "tinydigits: this model's activations (TINYDIGITS_ARENA_BYTES in tinydigits_model.h) do not fit this board's RAM; pick a smaller model (tinydigits boards shows what fits)"
#endif

static const unsigned long BAUD = 115200;
static const unsigned long RESYNC_MS = 1000;

static int8_t *input;  /* the model's own input buffer (its zero-copy API): no copy, no RAM of ours */
static int received = 0;
static unsigned long last_byte_ms = 0;

/* q = round(pixel / 255 / scale) + zero_point: the model's int8 input for a 0-255 pixel */
static int8_t quantize(uint8_t pixel) {
  long q = lroundf((float)pixel / 255.0f / TINYDIGITS_INPUT_SCALE) + TINYDIGITS_INPUT_ZERO_POINT;
  return (int8_t)(q < -128 ? -128 : q > 127 ? 127 : q);
}

static void classify_and_print(void) {
  int digit = tinydigits_invoke();
  const int8_t *output = tinydigits_output();
  Serial.print("digit ");
  Serial.print(digit);
  Serial.print(" probabilities");
  for (int c = 0; c < TINYDIGITS_OUTPUT_SIZE; ++c) {
    Serial.print(' ');
    Serial.print((output[c] - TINYDIGITS_OUTPUT_ZERO_POINT) * TINYDIGITS_OUTPUT_SCALE, 4);
  }
  Serial.println();
}

void setup() {
  Serial.begin(BAUD);
  while (!Serial) {}  /* boards with native USB wait for the port to open */
  input = tinydigits_input();
  for (int i = 0; i < TINYDIGITS_INPUT_SIZE; ++i) input[i] = quantize(pgm_read_byte(&test_digit[i]));
  Serial.print("test digit (a ");
  Serial.print(TEST_DIGIT_LABEL);
  Serial.print("): ");
  classify_and_print();
}

void loop() {
  while (Serial.available() > 0) {
    unsigned long now = millis();
    if (received > 0 && now - last_byte_ms > RESYNC_MS) received = 0;
    last_byte_ms = now;
    ((uint8_t *)input)[received++] = (uint8_t)Serial.read();  /* pixels first, quantized in place below */
    if (received == TINYDIGITS_INPUT_SIZE) {
      for (int i = 0; i < TINYDIGITS_INPUT_SIZE; ++i) input[i] = quantize(((uint8_t *)input)[i]);
      classify_and_print();
      received = 0;
    }
  }
}
