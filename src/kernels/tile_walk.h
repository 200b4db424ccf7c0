#pragma once
// The skeleton every GEMM kernel shares (dot_f_*, dot_q_*, kq_*, mq_*): the loop nest over
// column chunks (prefill only), token blocks, row tiles and token tiles; the table of a
// kernel's tile instances (tiles[rows - 1][tokens - 1]); the epilogue that stores or
// accumulates a tile's sums; and the arguments of one quantized tile. A kernel file then
// holds only its format traits and its inner product. Header-only, so each ISA's file
// inlines it with its own flags around its own tiles.
#include <array>
#include <cstdint>
#include <utility>

#include "kernels/kernels.h"

namespace mcmoe::kernels {

struct TileWalk {
  int64_t blocks;        // column blocks per row, in the kernel's unit
  int64_t chunk_blocks;  // with more than tok_tile tokens, rows are walked in column chunks
                         // of this many blocks so a token block's activations stay in L2;
                         // 0: always one pass
  int64_t row_tile, tok_tile, tok_block;
};

// Rows [r, r + rows) × tokens [t, t + tokens) × column blocks [b_begin, b_end).
struct Tile {
  int64_t r, rows, t, tokens;
  int64_t b_begin, b_end;
  bool accumulate;  // a later column chunk: add to y instead of storing
  // The first token tile of a row tile, with another row tile after it: the one to prefetch
  // the next rows (later token tiles find the rows in cache).
  bool prefetch;
};

// Calls on_token_block(t0, t_end) before the tiles of each token block, then on_tile(tile)
// for every tile of g's rows.
//
// Batch invariance: a token's sums must not depend on how many tokens share the call (the
// server decodes several sequences in one step and promises each the text it would get
// alone; tests/ops/batch_invariance_test.cpp). So rows wider than one column chunk are
// always summed chunk by chunk, partials added to y in chunk order, whatever n_tokens is.
// With one token tile (decode) the chunks of a row tile are walked one after the other
// before the next rows, so the weights are still read in file order; with more tokens the
// chunk loop is outermost, so a token block's activations of one chunk stay in L2.
template <typename TokenBlockFn, typename TileFn>
inline void walk_tiles(const GemmArgs& g, const TileWalk& w, TokenBlockFn&& on_token_block,
                       TileFn&& on_tile) {
  const int64_t chunk = w.chunk_blocks > 0 ? w.chunk_blocks : w.blocks;
  if (g.n_tokens <= w.tok_tile) {
    on_token_block(0, g.n_tokens);
    for (int64_t r = g.row_begin; r < g.row_end; r += w.row_tile) {
      const int64_t rows = r + w.row_tile < g.row_end ? w.row_tile : g.row_end - r;
      for (int64_t b0 = 0; b0 < w.blocks; b0 += chunk) {
        on_tile(Tile{.r = r,
                     .rows = rows,
                     .t = 0,
                     .tokens = g.n_tokens,
                     .b_begin = b0,
                     .b_end = b0 + chunk < w.blocks ? b0 + chunk : w.blocks,
                     .accumulate = b0 > 0,
                     .prefetch = b0 == 0 && r + w.row_tile < g.row_end});
      }
    }
    return;
  }
  for (int64_t b0 = 0; b0 < w.blocks; b0 += chunk) {
    const int64_t b_end = b0 + chunk < w.blocks ? b0 + chunk : w.blocks;
    for (int64_t t0 = 0; t0 < g.n_tokens; t0 += w.tok_block) {
      const int64_t t_end = t0 + w.tok_block < g.n_tokens ? t0 + w.tok_block : g.n_tokens;
      on_token_block(t0, t_end);
      for (int64_t r = g.row_begin; r < g.row_end; r += w.row_tile) {
        const int64_t rows = r + w.row_tile < g.row_end ? w.row_tile : g.row_end - r;
        for (int64_t t = t0; t < t_end; t += w.tok_tile) {
          const int64_t tokens = t + w.tok_tile < t_end ? w.tok_tile : t_end - t;
          on_tile(Tile{.r = r,
                       .rows = rows,
                       .t = t,
                       .tokens = tokens,
                       .b_begin = b0,
                       .b_end = b_end,
                       .accumulate = b0 > 0,
                       .prefetch = t == t0 && r + w.row_tile < g.row_end});
        }
      }
    }
  }
}

// tiles[R - 1][T - 1] = Kernel::fn<R, T> for R in 1..kRows, T in 1..kTokens, where Kernel is
// a struct with `template <int R, int T> static constexpr Fn fn = tile<..., R, T>;` naming
// the file's tile template for one format.
template <typename Args, int kRows, int kTokens>
using TileTable = std::array<std::array<void (*)(const Args&), kTokens>, kRows>;

template <typename Kernel, typename Args, int kRows, int kTokens>
constexpr TileTable<Args, kRows, kTokens> make_tile_table() {
  TileTable<Args, kRows, kTokens> table{};
  [&]<int... i>(std::integer_sequence<int, i...>) {
    ((table[i / kTokens][i % kTokens] = Kernel::template fn<i / kTokens + 1, i % kTokens + 1>),
     ...);
  }
  (std::make_integer_sequence<int, kRows * kTokens>{});
  return table;
}

// The epilogue of an R × T tile: y[t · ldy + r] = sum(r, t), or += for a later column chunk
// of the same rows (accumulate). sum reduces the tile's accumulator (r, t) to a float.
template <int R, int T, typename Sum>
[[gnu::always_inline]] inline void store_tile(float* y, int64_t ldy, bool accumulate, Sum&& sum) {
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) {
      const float s = sum(r, t);
      float& out = y[t * ldy + r];
      out = accumulate ? out + s : s;
    }
  }
}

// One tile of a quantized kernel: its rows × tokens over the column blocks [b_begin, b_end).
struct QTileArgs {
  const uint8_t* w;  // first row of the tile
  size_t w_stride;
  int64_t nb;              // blocks per row, in the kernel's unit
  int64_t b_begin, b_end;  // the column chunk
  bool accumulate;         // add to y (a later column chunk) instead of storing
  const uint8_t* x;        // first token's act row
  size_t x_stride;
  size_t d_off, sd_off, dx4_off, nq4_off;  // parts of an act row (kernels.h)
  float* y;                                // y of (first token, first row)
  int64_t ldy;
  // Bytes from a row of this tile to the same column of the next tile's row (0: no
  // prefetch). Rows of a few KB are too short for the hardware prefetcher to ramp up on each
  // of the tile's 4 interleaved streams, so the kernel prefetches the next tile itself, one
  // tile (4 rows: 9 KB of Q4_0 at 4096 columns) ahead of use.
  size_t prefetch;
};
using QTileFn = void (*)(const QTileArgs&);

// All of g: tiles[rows - 1][tokens - 1] for every tile of the walk.
template <typename Table>  // a TileTable<QTileArgs, ...>
inline void run_qtiles(const GemmArgs& g, const TileWalk& walk, const Table& tiles) {
  const ActRowLayout l = act_row_layout(g.cols);
  QTileArgs a{.w = nullptr,
              .w_stride = g.w_stride,
              .nb = walk.blocks,
              .b_begin = 0,
              .b_end = 0,
              .accumulate = false,
              .x = nullptr,
              .x_stride = g.x_stride,
              .d_off = l.d_off,
              .sd_off = l.sd_off,
              .dx4_off = l.dx4_off,
              .nq4_off = l.nq4_off,
              .y = nullptr,
              .ldy = g.ldy,
              .prefetch = 0};
  const auto* x = static_cast<const uint8_t*>(g.x);
  walk_tiles(
      g, walk, [](int64_t, int64_t) {},
      [&](const Tile& tl) {
        a.w = g.w + tl.r * g.w_stride;
        a.b_begin = tl.b_begin;
        a.b_end = tl.b_end;
        a.accumulate = tl.accumulate;
        a.x = x + tl.t * g.x_stride;
        a.y = g.y + tl.t * g.ldy + tl.r;
        a.prefetch = tl.prefetch ? walk.row_tile * g.w_stride : 0;
        tiles[tl.rows - 1][tl.tokens - 1](a);
      });
}

}  // namespace mcmoe::kernels
