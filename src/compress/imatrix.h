#pragma once
// llama.cpp's importance-matrix file (llama-imatrix -o FILE, llama-quantize --imatrix FILE), read
// and written, so statistics from either engine can drive either quantizer. The format is
// llama.cpp's legacy binary one (the one the llama.cpp version we compare with reads and
// writes), little-endian:
//   i32 n_entries
//   n_entries × { i32 name_len, name bytes, i32 ncall, i32 nval, f32 values[nval] }
//   i32 chunks, i32 dataset_len, dataset bytes        (optional trailer)
// An entry is a weight tensor (its GGUF name) and one value per input column: the mean square
// of that input over the calibration tokens, times ncall (so value / ncall is the mean). A
// stacked expert tensor has n_expert × n_cols values, expert by expert, each expert's means
// over the tokens routed to it.
// No well-kept library reads this format: it is llama.cpp's own, so it is written here.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace mcmoe::compress {

struct ImportanceMatrix {
  // name → mean squared input per column (expert by expert for stacked experts): the file's
  // values divided by their ncall.
  std::map<std::string, std::vector<float>> means;
  int chunks = 0;       // calibration windows the statistics came from
  std::string dataset;  // the calibration text's name
};

// Fails naming the file, the entry and the expected versus found value on a malformed file
// (truncated, negative or oversized lengths, a non-finite or negative value, a duplicate name).
ImportanceMatrix read_imatrix(const std::string& path);

// Writes atomically (temp file, fsync, rename); ncall of every entry is `chunks` (at least 1).
void write_imatrix(const std::string& path, const ImportanceMatrix& m);

}  // namespace mcmoe::compress
