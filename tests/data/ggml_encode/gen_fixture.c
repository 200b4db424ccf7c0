// Writes ggml reference data for mcmoe's ggml encoder test (tests/quant/ggml_encode_test.cpp).
//   gen quantize DIR:   inputs.bin = 4 rows of 512 floats, then a 512-float importance vector;
//                       <type>.ggml.bin = ggml_quantize_chunk's blocks of the 4 rows without
//                       importance (IQ2_XXS, which requires one: with all ones), then of the 4
//                       rows with it.
//   gen dequantize DIR: reads <type>.mcmoe.bin (blocks written by mcmoe, see the README) and
//                       writes <type>.mcmoe.f32 = ggml's to_float of all of them.
// Build: cc -O1 gen_fixture.c -I$LLAMA/ggml/include -L$LLAMA/build/bin -lggml-base -lm
//          -Wl,-rpath,$LLAMA/build/bin -o gen
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml.h"

enum { N = 512, ROWS = 4 };

static const struct {
  enum ggml_type t;
  const char* name;
} kTypes[] = {
    {GGML_TYPE_Q4_0, "q4_0"}, {GGML_TYPE_Q4_1, "q4_1"},     {GGML_TYPE_Q5_0, "q5_0"},
    {GGML_TYPE_Q5_1, "q5_1"}, {GGML_TYPE_Q8_0, "q8_0"},
    {GGML_TYPE_Q2_K, "q2_k"}, {GGML_TYPE_Q3_K, "q3_k"},     {GGML_TYPE_Q4_K, "q4_k"},
    {GGML_TYPE_Q5_K, "q5_k"}, {GGML_TYPE_Q6_K, "q6_k"},     {GGML_TYPE_IQ4_NL, "iq4_nl"},
    {GGML_TYPE_IQ4_XS, "iq4_xs"}, {GGML_TYPE_IQ2_XXS, "iq2_xxs"}, {GGML_TYPE_IQ3_XXS, "iq3_xxs"},
};
enum { NTYPES = sizeof(kTypes) / sizeof(kTypes[0]) };

static uint32_t state = 2024u;
static float uniform(void) {  // (0, 1)
  state = state * 1664525u + 1013904223u;
  return ((state >> 8) + 0.5f) / 16777216.0f;
}
static float gauss(void) {
  return sqrtf(-2.0f * logf(uniform())) * cosf(6.2831853f * uniform());
}

// Row 0: Gaussian. Row 1: Gaussian with an outlier (x 12) every 37th element and two runs of
// 32 zeros. Row 2: positive means (2 + 0.5 g, then 0.3 + |g|). Row 3: magnitudes ~1e-6, then
// ~1e3.
static void make_rows(float x[ROWS][N]) {
  for (int r = 0; r < ROWS; ++r)
    for (int i = 0; i < N; ++i) x[r][i] = gauss();
  for (int i = 0; i < N; i += 37) x[1][i] *= 12.0f;
  for (int i = 0; i < 32; ++i) x[1][i] = x[1][288 + i] = 0.0f;
  for (int i = 0; i < N; ++i) x[2][i] = i < N / 2 ? 2.0f + 0.5f * x[2][i] : 0.3f + fabsf(x[2][i]);
  for (int i = 0; i < N; ++i) x[3][i] *= i < N / 2 ? 1e-6f : 1e3f;
}

static int write_file(const char* dir, const char* name, const char* ext, const void* a, size_t na,
                      const void* b, size_t nb) {
  char path[512];
  snprintf(path, sizeof(path), "%s/%s%s", dir, name, ext);
  FILE* f = fopen(path, "wb");
  if (!f || fwrite(a, 1, na, f) != na || (nb && fwrite(b, 1, nb, f) != nb)) return 1;
  fclose(f);
  printf("%s: %zu bytes\n", path, na + nb);
  return 0;
}

static int quantize(const char* dir) {
  static float src[ROWS][N], imatrix[N], ones[N];
  make_rows(src);
  for (int i = 0; i < N; ++i) imatrix[i] = 0.05f + uniform() * uniform() * 4.0f;
  for (int i = 0; i < N; ++i) ones[i] = 1.0f;
  if (write_file(dir, "inputs", ".bin", src, sizeof(src), imatrix, sizeof(imatrix))) return 1;
  for (int k = 0; k < NTYPES; ++k) {
    const size_t rb = ggml_row_size(kTypes[k].t, N);
    uint8_t* blocks = calloc(2 * ROWS, rb);
    for (int r = 0; r < ROWS; ++r) {
      // IQ2_XXS requires an importance matrix: its rows "without" take a uniform one.
      const float* none = ggml_quantize_requires_imatrix(kTypes[k].t) ? ones : NULL;
      ggml_quantize_chunk(kTypes[k].t, src[r], blocks + r * rb, 0, 1, N, none);
      ggml_quantize_chunk(kTypes[k].t, src[r], blocks + (ROWS + r) * rb, 0, 1, N, imatrix);
    }
    if (write_file(dir, kTypes[k].name, ".ggml.bin", blocks, 2 * ROWS * rb, NULL, 0)) return 1;
    free(blocks);
  }
  return 0;
}

static int dequantize(const char* dir) {
  for (int k = 0; k < NTYPES; ++k) {
    char path[512];
    snprintf(path, sizeof(path), "%s/%s.mcmoe.bin", dir, kTypes[k].name);
    FILE* f = fopen(path, "rb");
    if (!f) return 1;
    static uint8_t bytes[1 << 16];
    const size_t n = fread(bytes, 1, sizeof(bytes), f);
    fclose(f);
    const size_t bb = ggml_type_size(kTypes[k].t);
    const int64_t bs = ggml_blck_size(kTypes[k].t);
    if (n == 0 || n % bb != 0) return 1;
    const int64_t count = (int64_t)(n / bb) * bs;
    float* out = malloc(count * sizeof(float));
    ggml_get_type_traits(kTypes[k].t)->to_float(bytes, out, count);
    if (write_file(dir, kTypes[k].name, ".mcmoe.f32", out, count * sizeof(float), NULL, 0)) return 1;
    free(out);
  }
  return 0;
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: gen quantize|dequantize DIR\n");
    return 2;
  }
  // ggml_init fills ggml's fp16 -> f32 table, which quantization and dequantization read.
  struct ggml_init_params params = {1 << 20, NULL, false};
  struct ggml_context* ctx = ggml_init(params);
  const int rc = strcmp(argv[1], "quantize") == 0     ? quantize(argv[2])
                 : strcmp(argv[1], "dequantize") == 0 ? dequantize(argv[2])
                                                      : 2;
  ggml_free(ctx);
  return rc;
}
