#include "dispatch.h"

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <stdexcept>

#include "nn_kernels.h"
#include "ref_kernels.h"

namespace medconv {

template <class T>
Kernels<T> reference_kernels() {
  Kernels<T> k;
  k.conv_forward = conv_forward_ref<T>;
  k.max_pool = max_pool_ref<T>;
  k.avg_pool = avg_pool_ref<T>;
  k.adaptive_avg_pool = adaptive_avg_pool_ref<T>;
  k.pad = pad_ref<T>;
  k.unary = unary_ref<T>;
  k.softmax = softmax_ref<T>;
  k.maxout = maxout_ref<T>;
  k.linear = linear_ref<T>;
  k.linear_backward_input = linear_backward_input_ref<T>;
  k.linear_backward_weight = linear_backward_weight_ref<T>;
  k.batch_norm_stats = batch_norm_stats_ref<T>;
  k.batch_norm_apply = batch_norm_apply_ref<T>;
  k.batch_norm_backward = batch_norm_backward_ref<T>;
  k.interpolate = interpolate_ref<T>;
  k.interpolate_backward = interpolate_backward_ref<T>;
  k.conv_subpixel = nullptr;
  return k;
}
template Kernels<float> reference_kernels<float>();
template Kernels<double> reference_kernels<double>();

namespace {

bool cpu_has(Isa isa) {
#if defined(MEDCONV_X86)
  __builtin_cpu_init();
  switch (isa) {
    case Isa::scalar: return true;
    case Isa::avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("fma");
    case Isa::neon: return false;
  }
  return false;
#elif defined(MEDCONV_ARM64)
  return isa == Isa::scalar || isa == Isa::neon;
#else
  return isa == Isa::scalar;
#endif
}

KernelTable build_table(Isa isa) {
  KernelTable base{Isa::scalar, reference_kernels<float>(), reference_kernels<double>()};
  switch (isa) {
    case Isa::scalar: return base;
    case Isa::avx2: return avx2_table(base);
    case Isa::avx512: return avx512_table(avx2_table(base));
    case Isa::neon: return neon_table(base);
  }
  return base;
}

Isa parse_isa(const std::string& name) {
  if (name == "scalar" || name == "ref" || name == "reference") return Isa::scalar;
  if (name == "avx2") return Isa::avx2;
  if (name == "avx512") return Isa::avx512;
  if (name == "neon") return Isa::neon;
  throw std::invalid_argument("MEDCONV_ISA must be one of 'auto', 'scalar', 'avx2', 'avx512', 'neon', got '" + name + "'");
}

Isa best_isa() {
  auto isas = supported_isas();
  return isas.back();
}

std::mutex g_select_mutex;
std::atomic<const KernelTable*> g_active{nullptr};
KernelTable g_tables[4];
bool g_built[4] = {false, false, false, false};

const KernelTable* table_for(Isa isa) {
  int i = static_cast<int>(isa);
  if (!g_built[i]) {
    g_tables[i] = build_table(isa);
    g_built[i] = true;
  }
  return &g_tables[i];
}

}  // namespace

#if !defined(MEDCONV_X86)
KernelTable avx2_table(const KernelTable& base) { return base; }
KernelTable avx512_table(const KernelTable& base) { return base; }
#endif
#if !defined(MEDCONV_ARM64)
KernelTable neon_table(const KernelTable& base) { return base; }
#endif

std::string isa_name(Isa isa) {
  switch (isa) {
    case Isa::scalar: return "scalar";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
    case Isa::neon: return "neon";
  }
  return "?";
}

std::vector<Isa> compiled_isas() {
#if defined(MEDCONV_X86)
  return {Isa::scalar, Isa::avx2, Isa::avx512};
#elif defined(MEDCONV_ARM64)
  return {Isa::scalar, Isa::neon};
#else
  return {Isa::scalar};
#endif
}

std::vector<Isa> supported_isas() {
  std::vector<Isa> out;
  for (Isa isa : compiled_isas())
    if (cpu_has(isa)) out.push_back(isa);
  return out;
}

std::vector<std::string> cpu_features() {
  std::vector<std::string> out;
#if defined(MEDCONV_X86)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("sse4.2")) out.push_back("sse4.2");
  if (__builtin_cpu_supports("avx")) out.push_back("avx");
  if (__builtin_cpu_supports("avx2")) out.push_back("avx2");
  if (__builtin_cpu_supports("fma")) out.push_back("fma");
  if (__builtin_cpu_supports("avx512f")) out.push_back("avx512f");
  if (__builtin_cpu_supports("avx512bw")) out.push_back("avx512bw");
  if (__builtin_cpu_supports("avx512vl")) out.push_back("avx512vl");
  if (__builtin_cpu_supports("avx512dq")) out.push_back("avx512dq");
#elif defined(MEDCONV_ARM64)
  out.push_back("neon");
#endif
  return out;
}

void select_isa(const std::string& name) {
  std::lock_guard<std::mutex> lock(g_select_mutex);
  Isa isa = name == "auto" || name.empty() ? best_isa() : parse_isa(name);
  if (!cpu_has(isa)) {
    bool compiled = false;
    for (Isa c : compiled_isas()) compiled |= c == isa;
    throw std::invalid_argument("ISA '" + name + "' is " + (compiled ? "not supported by this CPU" : "not compiled into this build"));
  }
  g_active.store(table_for(isa));
}

const KernelTable& kernels() {
  const KernelTable* t = g_active.load();
  if (t == nullptr) {
    const char* env = std::getenv("MEDCONV_ISA");
    std::string name = env ? env : "auto";
    try {
      select_isa(name);
    } catch (const std::invalid_argument&) {
      select_isa("auto");  // an unusable MEDCONV_ISA is reported by medconv at import; run the best we have
    }
    t = g_active.load();
  }
  return *t;
}

template <> const Kernels<float>& kernels_for<float>() { return kernels().f32; }
template <> const Kernels<double>& kernels_for<double>() { return kernels().f64; }

}  // namespace medconv
