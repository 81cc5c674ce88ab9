#include "conv_plan.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

namespace medconv {
namespace {

using Key = std::vector<int64_t>;

Key make_key(int isa, int dtype_size, const ConvShape& s, bool relu) {
  return {isa, dtype_size, relu ? 1 : 0, s.N, s.C, s.D, s.H, s.W, s.OC, s.KD, s.KH, s.KW, s.OD, s.OH, s.OW,
          s.stride[0], s.stride[1], s.stride[2], s.pad[0], s.pad[1], s.pad[2],
          s.dilation[0], s.dilation[1], s.dilation[2], s.groups};
}

std::mutex g_mutex;
std::map<Key, ConvAlgo> g_plans;

bool autotune_enabled() {
  const char* env = std::getenv("MEDCONV_AUTOTUNE");
  return env != nullptr && std::strcmp(env, "1") == 0;
}

int forced_algo() {
  const char* env = std::getenv("MEDCONV_CONV_ALGO");
  if (env == nullptr) return -1;
  for (ConvAlgo a : {ConvAlgo::direct, ConvAlgo::gemm, ConvAlgo::winograd})
    if (std::strcmp(env, conv_algo_name(a)) == 0) return static_cast<int>(a);
  return -1;
}

}  // namespace

const char* conv_algo_name(ConvAlgo algo) {
  switch (algo) {
    case ConvAlgo::direct: return "direct";
    case ConvAlgo::gemm: return "gemm";
    case ConvAlgo::winograd: return "winograd";
  }
  return "?";
}

ConvAlgo conv_plan(int isa, int dtype_size, const ConvShape& s, bool relu, ConvAlgo rule,
                   const std::vector<ConvCandidate>& candidates) {
  const Key key = make_key(isa, dtype_size, s, relu);
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    auto it = g_plans.find(key);
    if (it != g_plans.end()) return it->second;
  }
  ConvAlgo choice = rule;
  const int forced = forced_algo();
  bool forced_applies = false;
  for (const auto& c : candidates) forced_applies |= static_cast<int>(c.algo) == forced;
  if (forced_applies) {
    choice = static_cast<ConvAlgo>(forced);
  } else if (autotune_enabled() && candidates.size() > 1) {
    double best = 1e300;
    for (const auto& c : candidates) {
      c.run();  // warm-up: caches, scratch buffers
      const auto t0 = std::chrono::steady_clock::now();
      c.run();
      const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (dt < best) {
        best = dt;
        choice = c.algo;
      }
    }
  }
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_plans.size() > 4096) g_plans.clear();  // bounded: a shape sweep must not grow it forever
  g_plans.emplace(key, choice);
  return choice;
}

std::string conv_plan_lookup(int isa, int dtype_size, const ConvShape& s, bool relu) {
  std::lock_guard<std::mutex> lock(g_mutex);
  auto it = g_plans.find(make_key(isa, dtype_size, s, relu));
  return it == g_plans.end() ? std::string() : std::string(conv_algo_name(it->second));
}

std::vector<std::pair<std::vector<int64_t>, std::string>> conv_plans() {
  std::lock_guard<std::mutex> lock(g_mutex);
  std::vector<std::pair<std::vector<int64_t>, std::string>> out;
  for (const auto& [key, algo] : g_plans) out.emplace_back(key, conv_algo_name(algo));
  return out;
}

void conv_plan_clear() {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_plans.clear();
}

int64_t conv_plan_size() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return static_cast<int64_t>(g_plans.size());
}

}  // namespace medconv
