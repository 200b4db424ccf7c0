// Writes ggml reference data for mcmoe's dequantization test (tests/quant/kquants_test.cpp).
// For each type: 2 rows of 512 weights quantized by ggml (row 0 without, row 1 with an
// importance matrix, so both of ggml's quantizer paths produce blocks), then ggml's own
// dequantization of those blocks. File <type>.bin = the raw blocks of both rows followed by
// the 1024 dequantized floats (little-endian f32).
// Build: cc -O1 gen_fixture.c -I/tmp/llama.cpp/ggml/include
//          -L/tmp/llama.cpp/build/bin -lggml-base -lm -Wl,-rpath,/tmp/llama.cpp/build/bin
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml.h"

enum { N = 512, ROWS = 2 };

static uint32_t state = 12345u;
static float uniform(void) {  // (0, 1)
  state = state * 1664525u + 1013904223u;
  return ((state >> 8) + 0.5f) / 16777216.0f;
}
static float gauss(void) {
  return sqrtf(-2.0f * logf(uniform())) * cosf(6.2831853f * uniform());
}

// Superblock 0: Gaussian. Superblock 1: Gaussian, every 37th element an outlier (x 12),
// its first 32 all zero, and values with a positive mean (mins matter) after 128.
static void make_row(float* x) {
  for (int i = 0; i < N; ++i) x[i] = gauss();
  for (int i = 256; i < N; i += 37) x[i] *= 12.0f;
  for (int i = 256; i < 288; ++i) x[i] = 0.0f;
  for (int i = 384; i < N; ++i) x[i] = 2.0f + 0.5f * x[i];
}

int main(int argc, char** argv) {
  const char* dir = argc > 1 ? argv[1] : ".";
  // ggml_init fills ggml's fp16 -> f32 table, which quantization and dequantization read.
  struct ggml_init_params params = {1 << 20, NULL, false};
  struct ggml_context* ctx = ggml_init(params);
  const struct { enum ggml_type t; const char* name; } types[] = {
      {GGML_TYPE_Q4_1, "q4_1"}, {GGML_TYPE_Q5_0, "q5_0"}, {GGML_TYPE_Q5_1, "q5_1"},
      {GGML_TYPE_Q2_K, "q2_k"}, {GGML_TYPE_Q3_K, "q3_k"}, {GGML_TYPE_Q4_K, "q4_k"},
      {GGML_TYPE_Q5_K, "q5_k"}, {GGML_TYPE_Q6_K, "q6_k"},
  };
  float src[ROWS][N], imatrix[N], out[ROWS][N];
  for (int r = 0; r < ROWS; ++r) make_row(src[r]);
  for (int i = 0; i < N; ++i) imatrix[i] = 0.05f + uniform() * uniform() * 4.0f;
  for (size_t k = 0; k < sizeof(types) / sizeof(types[0]); ++k) {
    const size_t rb = ggml_row_size(types[k].t, N);
    uint8_t* blocks = calloc(ROWS, rb);
    ggml_quantize_chunk(types[k].t, src[0], blocks, 0, 1, N, NULL);
    ggml_quantize_chunk(types[k].t, src[1], blocks + rb, 0, 1, N, imatrix);
    for (int r = 0; r < ROWS; ++r) ggml_get_type_traits(types[k].t)->to_float(blocks + r * rb, out[r], N);
    char path[512];
    snprintf(path, sizeof(path), "%s/%s.bin", dir, types[k].name);
    FILE* f = fopen(path, "wb");
    if (!f || fwrite(blocks, rb, ROWS, f) != ROWS || fwrite(out, sizeof(out), 1, f) != 1) return 1;
    fclose(f);
    free(blocks);
    printf("%s: %zu block bytes per row\n", path, rb);
  }
  ggml_free(ctx);
  return 0;
}
