// Writes ggml reference data for mcmoe's i-quant, ternary and MXFP4 dequantization test
// (tests/quant/iquants_test.cpp). File <type>.bin:
//   header   "MCIQ", u32 rows (2), u32 row length (512), u32 coverage blocks C
//   part 1   2 rows of 512 weights quantized by ggml (row 0 with no importance matrix where
//            the type allows it, row 1 with one), then ggml's dequantization of those blocks
//            (1024 little-endian f32)
//   part 2   C blocks of random bytes with a sane scale field (so every grid entry, sign
//            pattern and scale code of the format occurs, not only the ones the quantizer
//            picks), then for each block the FNV-1a hash (u32) of the bits of ggml's
//            dequantization of it
// Build against a ggml built outside the repository, e.g.:
//   cc -O1 gen_fixture.c -I$GGML/include -L$GGML/build/src -lggml-base -lm \
//      -Wl,-rpath,$GGML/build/src && ./a.out .
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml.h"

enum { N = 512, ROWS = 2 };

static uint32_t state = 12345u;
static uint32_t next_u32(void) {
  state ^= state << 13;
  state ^= state >> 17;
  state ^= state << 5;
  return state;
}
static float uniform(void) { return ((next_u32() >> 8) + 0.5f) / 16777216.0f; }  // (0, 1)
static float gauss(void) { return sqrtf(-2.0f * logf(uniform())) * cosf(6.2831853f * uniform()); }

static void make_row(float* x) {
  for (int i = 0; i < N; ++i) x[i] = gauss();
  for (int i = 256; i < N; i += 37) x[i] *= 12.0f;  // outliers
  for (int i = 256; i < 288; ++i) x[i] = 0.0f;      // an all-zero sub-block
}

static uint32_t fnv1a(const float* v, int n) {
  uint32_t h = 2166136261u;
  const uint8_t* b = (const uint8_t*)v;
  for (int i = 0; i < 4 * n; ++i) h = (h ^ b[i]) * 16777619u;
  return h;
}

static void put_fp16(uint8_t* p, float v) {
  const ggml_fp16_t h = ggml_fp32_to_fp16(v);
  memcpy(p, &h, 2);
}

// Overwrites a random block's scale field with a finite value of either sign.
static void sane_scale(enum ggml_type t, uint8_t* b) {
  const float d = (uniform() < 0.5f ? -1.0f : 1.0f) * (0.001f + 0.1f * uniform());
  switch (t) {
    case GGML_TYPE_TQ1_0: put_fp16(b + 52, d); break;
    case GGML_TYPE_TQ2_0: put_fp16(b + 64, d); break;
    case GGML_TYPE_MXFP4: b[0] = (uint8_t)(100 + next_u32() % 50); break;
    case GGML_TYPE_IQ1_M: {  // d's 16 bits in the top nibbles of the four u16 scale words
      const ggml_fp16_t h = ggml_fp32_to_fp16(d);
      for (int i = 0; i < 4; ++i) {
        uint16_t w;
        memcpy(&w, b + 48 + 2 * i, 2);
        w = (uint16_t)((w & 0x0fff) | (((h >> (4 * i)) & 0xf) << 12));
        memcpy(b + 48 + 2 * i, &w, 2);
      }
      break;
    }
    default: put_fp16(b, d); break;
  }
}

int main(int argc, char** argv) {
  const char* dir = argc > 1 ? argv[1] : ".";
  struct ggml_init_params params = {1 << 20, NULL, false};
  struct ggml_context* ctx = ggml_init(params);
  // Coverage blocks: enough random draws that every grid entry occurs (expected misses
  // n · exp(-draws / n) < 0.01 for the largest grid of each type).
  const struct { enum ggml_type t; const char* name; int cov; } types[] = {
      {GGML_TYPE_IQ2_XXS, "iq2_xxs", 96}, {GGML_TYPE_IQ2_XS, "iq2_xs", 192},
      {GGML_TYPE_IQ2_S, "iq2_s", 384},    {GGML_TYPE_IQ3_XXS, "iq3_xxs", 48},
      {GGML_TYPE_IQ3_S, "iq3_s", 96},     {GGML_TYPE_IQ1_S, "iq1_s", 768},
      {GGML_TYPE_IQ1_M, "iq1_m", 768},    {GGML_TYPE_IQ4_NL, "iq4_nl", 64},
      {GGML_TYPE_IQ4_XS, "iq4_xs", 32},   {GGML_TYPE_TQ1_0, "tq1_0", 32},
      {GGML_TYPE_TQ2_0, "tq2_0", 32},     {GGML_TYPE_MXFP4, "mxfp4", 64},
  };
  float src[ROWS][N], imatrix[N], out[ROWS][N];
  for (int r = 0; r < ROWS; ++r) make_row(src[r]);
  for (int i = 0; i < N; ++i) imatrix[i] = 0.05f + uniform() * uniform() * 4.0f;
  for (size_t k = 0; k < sizeof(types) / sizeof(types[0]); ++k) {
    const enum ggml_type t = types[k].t;
    const size_t rb = ggml_row_size(t, N);
    const size_t bb = ggml_type_size(t);
    const int64_t bs = ggml_blck_size(t);
    uint8_t* blocks = calloc(ROWS, rb);
    ggml_quantize_chunk(t, src[0], blocks, 0, 1, N, ggml_quantize_requires_imatrix(t) ? imatrix : NULL);
    ggml_quantize_chunk(t, src[1], blocks + rb, 0, 1, N, imatrix);
    const struct ggml_type_traits* tr = ggml_get_type_traits(t);
    for (int r = 0; r < ROWS; ++r) tr->to_float(blocks + r * rb, out[r], N);

    const int cov = types[k].cov;
    uint8_t* cb = malloc(cov * bb);
    uint32_t* hashes = malloc(cov * sizeof(uint32_t));
    float* tmp = malloc(bs * sizeof(float));
    for (int i = 0; i < cov; ++i) {
      uint8_t* b = cb + i * bb;
      for (size_t j = 0; j < bb; ++j) b[j] = (uint8_t)next_u32();
      sane_scale(t, b);
      tr->to_float(b, tmp, bs);
      hashes[i] = fnv1a(tmp, (int)bs);
    }

    char path[512];
    snprintf(path, sizeof(path), "%s/%s.bin", dir, types[k].name);
    FILE* f = fopen(path, "wb");
    const uint32_t header[4] = {0x5149434du /* "MCIQ" */, ROWS, N, (uint32_t)cov};
    if (!f || fwrite(header, sizeof(header), 1, f) != 1 || fwrite(blocks, rb, ROWS, f) != ROWS ||
        fwrite(out, sizeof(out), 1, f) != 1 || fwrite(cb, bb, cov, f) != (size_t)cov ||
        fwrite(hashes, sizeof(uint32_t), cov, f) != (size_t)cov) {
      return 1;
    }
    fclose(f);
    free(blocks);
    free(cb);
    free(hashes);
    free(tmp);
    printf("%s: %zu bytes per row, %d coverage blocks\n", path, rb, cov);
  }
  ggml_free(ctx);
  return 0;
}
