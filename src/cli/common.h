#pragma once
// Helpers shared by the subcommands: model loading with a status line, progress bars,
// thread defaults, reading text files.
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "api/generate.h"
#include "api/open_model.h"
#include "cli/args.h"
#include "model/model.h"
#include "model/session.h"
#include "moe/odp.h"

namespace mcmoe::cli {

std::unique_ptr<model::Model> load_model_verbose(const std::string& path, const model::LoadOptions& o = {});
// --mmap / --no-mmap (both switches must be in the command's switch list).
model::LoadOptions load_options_flags(const Args& a);
int default_threads();
int threads_flag(const Args& a);
std::string read_text_file(const std::string& path);
// Prompt ids: BOS (when the tokenizer asks for it) + encode(text).
std::vector<int32_t> prompt_ids(const model::Model& m, const std::string& text);

// --cache-type f32|f16|q8_0 (KV cache element type; default f16), or another flag of the
// same values.
DType cache_type_flag(const Args& a, const std::string& flag = "--cache-type");

// Session flags of run / ppl / bench (list them in the command's flags):
//   --cache-type T, --threads N, --batch-size N (prefill runs in chunks of N tokens, which
//   bounds its scratch memory; default 512), --allow-long-context (switch: a context beyond
//   the model's trained length is refused without it).
FlagTable session_flag_table(const char* batch_default = "512");
// Sampling flags of run and chat (--temp, --top-k, --top-p, --seed) and their values.
const FlagTable& sampling_flag_table();
api::SamplerParams sampler_params(const Args& a);
// -m, as every inference command takes it.
inline constexpr FlagSpec kModelFlag{"-m", "MODEL", "",
                                     "model: a GGUF file or a Hugging Face directory"};
// --threads (threads_flag), in the session group and in every command that computes.
inline constexpr FlagSpec kThreadsFlag{"--threads", "N", "all cores", "compute threads"};
// Session options from those flags for a context of ctx tokens (0: the session's default);
// default_batch when --batch-size is not given. (The trained-length check is open_model's.)
model::SessionOptions session_options(const Args& a, int ctx, int default_batch = 512);

// Everything run, chat, serve, ppl and bench open a model with (api::open_model): -m's path,
// --mmap / --no-mmap, the offloading, ODP and session flags, for a context of ctx tokens;
// status lines go to stderr.
api::OpenOptions open_options(const Args& a, const std::string& path, int ctx,
                              int default_batch = 512);

// Calibration length is --seq in every command that samples calibration text (calibrate,
// quantize, reduce, lowrank); --ctx, which names a context window elsewhere, is refused there
// with a pointer to --seq (kCalibrationCtxFlag in the command's table lets it through to say
// so).
void calibration_length_flag(const Args& a);
inline constexpr FlagSpec kCalibrationCtxFlag{"--ctx", "N", "",
                                              "refused: the calibration length is --seq"};

// The calibration text flags of calibrate, quantize, reduce and lowrank: -f (the text),
// --samples (windows sampled evenly over it), --seq (tokens per window, BOS included), with
// the command's defaults as shown (compress::SampleOptions).
struct CalibrationDefaults {
  const char* text = "";  // "": -f is required
  const char* samples = "64";
  const char* seq = "512";
};
FlagTable calibration_flag_table(const CalibrationDefaults& d);

// "1,2,3" → {1, 2, 3}; fails naming the flag on anything else.
// A comma-separated list of non-empty items ("a,b,c"); an empty list or item is refused naming
// flag.
std::vector<std::string> split_list(const std::string& s, const std::string& flag);
std::vector<int> parse_int_list(const std::string& s, const std::string& flag);

// ODP flags shared by run / ppl / bench (list them in the command's flags):
//   --odp (switch), --odp-mu X (fixed threshold instead of the file's calibrated μ_l),
//   --odp-layers 0,5,7 (restrict to these layers), --odp-protect F (fraction of prefill
//   tokens protected, default 0.02).
const FlagTable& odp_flag_table();
// --mmap / --no-mmap.
const FlagTable& load_flag_table();
// A command's own flags followed by shared groups.
FlagTable with_groups(FlagTable own, std::initializer_list<FlagTable> groups);
// The ODP flags as the library's spec (thresholds come from the model's mcmoe.odp.mu metadata,
// written by mcmoe quantize, unless --odp-mu is given).
api::OdpSpec odp_spec(const Args& a);
void print_odp_summary(const moe::OdpCounters& c);

// A one-line progress bar on stderr, redrawn in place when stderr is a terminal and printed
// every ~10% otherwise (logs stay short). The total comes with each update because the
// library's jobs report it from their first callback.
class Progress {
 public:
  explicit Progress(std::string label);
  void update(int64_t done, int64_t total, const std::string& extra = "");
  void finish(const std::string& extra = "");

 private:
  std::string label_;
  int last_decile_ = -1;
  bool tty_;
};

}  // namespace mcmoe::cli
