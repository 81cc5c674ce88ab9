// The convolution plan: which algorithm runs a given shape, chosen once per shape and cached.
// By default the choice is a fixed rule (so results are reproducible run to run); with
// MEDCONV_AUTOTUNE=1 the first call on a shape times every applicable algorithm and keeps the
// fastest; MEDCONV_CONV_ALGO=direct|gemm|winograd forces one where it applies.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "kernels.h"

namespace medconv {

enum class ConvAlgo : int { direct = 0, gemm = 1, winograd = 2 };

const char* conv_algo_name(ConvAlgo algo);

struct ConvCandidate {
  ConvAlgo algo;
  std::function<void()> run;  // computes the whole output
};

// The cached algorithm for (isa, dtype, shape); on a miss, `rule` (or timing every candidate,
// under MEDCONV_AUTOTUNE) decides. `candidates` lists what applies to this shape, the rule's
// choice among them.
ConvAlgo conv_plan(int isa, int dtype_size, const ConvShape& s, bool relu, ConvAlgo rule,
                   const std::vector<ConvCandidate>& candidates);

// The algorithm a previous call on this shape used, or "" if none yet (for tests and info).
std::string conv_plan_lookup(int isa, int dtype_size, const ConvShape& s, bool relu);
// Every cached plan: the key (isa, dtype size, relu, N, C, D, H, W, OC, KD, KH, KW, OD, OH, OW,
// stride x3, pad x3, dilation x3, groups) and the algorithm's name.
std::vector<std::pair<std::vector<int64_t>, std::string>> conv_plans();
void conv_plan_clear();
int64_t conv_plan_size();

}  // namespace medconv
