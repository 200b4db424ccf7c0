#pragma once
#include <string>
#include <vector>

namespace mcmoe::cli {

using Argv = std::vector<std::string>;
int cmd_run(const Argv& args);
int cmd_ppl(const Argv& args);
int cmd_inspect(const Argv& args);
int cmd_convert(const Argv& args);
int cmd_synth(const Argv& args);
int cmd_bench(const Argv& args);
int cmd_tokenize(const Argv& args);
int cmd_template(const Argv& args);
int cmd_dump(const Argv& args);
int cmd_calibrate(const Argv& args);
int cmd_quantize(const Argv& args);
int cmd_trace(const Argv& args);
int cmd_cachesim(const Argv& args);
int cmd_lowrank(const Argv& args);
int cmd_reduce(const Argv& args);
int cmd_odp_fit(const Argv& args);
int cmd_serve(const Argv& args);
int cmd_chat(const Argv& args);

}  // namespace mcmoe::cli
