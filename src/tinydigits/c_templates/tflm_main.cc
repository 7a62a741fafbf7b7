// A minimal TFLite Micro program: one image through tflite::MicroInterpreter.
// Build it inside a TFLM tree or an Arduino sketch with model_data.h / model_data.cc beside it.
#include <cstdint>
#include <cstdio>

#include "model_data.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"

namespace {
alignas(16) uint8_t tensor_arena[kTensorArenaSize];
}

// Classifies a 28x28 image of uint8 pixels (0-255, ink bright as in MNIST); returns the digit or -1.
int ClassifyDigit(const uint8_t pixels[784], float probabilities[10]) {
  const tflite::Model* model = tflite::GetModel(g_model_data);
  // Only the ops this model uses are registered: the linker drops every other kernel.
  static tflite::MicroMutableOpResolver<{{N_OPS}}> resolver;
  static bool registered = false;
  if (!registered) {
{{REGISTRATIONS}}
    registered = true;
  }
  tflite::MicroInterpreter interpreter(model, resolver, tensor_arena, kTensorArenaSize);
  if (interpreter.AllocateTensors() != kTfLiteOk) return -1;

  TfLiteTensor* input = interpreter.input(0);
  for (int i = 0; i < 784; ++i) {  // q = round(x / scale) + zero_point, x = pixel / 255
    float q = pixels[i] / 255.0f / kInputScale + kInputZeroPoint;
    int v = static_cast<int>(q + (q >= 0 ? 0.5f : -0.5f));
    input->data.int8[i] = static_cast<int8_t>(v < -128 ? -128 : v > 127 ? 127 : v);
  }
  if (interpreter.Invoke() != kTfLiteOk) return -1;

  const TfLiteTensor* output = interpreter.output(0);
  int best = 0;
  for (int c = 0; c < 10; ++c) {
    probabilities[c] = (output->data.int8[c] - kOutputZeroPoint) * kOutputScale;
    if (output->data.int8[c] > output->data.int8[best]) best = c;
  }
  return best;
}

int main() {
  static uint8_t blank[784] = {0};
  float probabilities[10];
  int digit = ClassifyDigit(blank, probabilities);
  printf("digit %d (%.3f), arena %d bytes\n", digit, digit >= 0 ? probabilities[digit] : 0.0f, kTensorArenaSize);
  return digit < 0;
}
