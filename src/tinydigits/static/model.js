// tinydigits.wasm in the browser: the ABI behind two calls. The module exports `memory`,
// tinydigits_input() and tinydigits_output() (addresses of the int8 input[784] and output[10]) and
// tinydigits_run() (one inference, returns the digit); `facts` is model.json's "wasm" entry.
//
//   const model = await loadWasmModel("tinydigits.wasm", facts.wasm);
//   model.classify(seen)   // Uint8Array(784) MNIST-like pixels -> {digit, probabilities}
"use strict";

import { quantize } from "./preprocess.js";

export async function loadWasmModel(url, facts) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  const { instance } = await WebAssembly.instantiate(await response.arrayBuffer(), {});
  const abi = instance.exports;
  for (const name of ["memory", "tinydigits_input", "tinydigits_output", "tinydigits_run"]) {
    if (!(name in abi)) throw new Error(`${url} lacks the export ${name}`);
  }
  const view = (address, size) => new Int8Array(abi.memory.buffer, address, size);
  return {
    // Int8Array(784) already quantized -> {digit, scores: Int8Array(10)}, exactly what the chip computes.
    runInt8(q) {
      view(abi.tinydigits_input(), facts.input_size).set(q);
      const digit = abi.tinydigits_run();
      return { digit, scores: Int8Array.from(view(abi.tinydigits_output(), facts.output_size)) };
    },
    classify(pixels) {
      const { digit, scores } = this.runInt8(quantize(pixels, facts.input_scale, facts.input_zero_point));
      return { digit, probabilities: Array.from(scores, (q) => (q - facts.output_zero_point) * facts.output_scale) };
    },
  };
}
