// Run-time choice of kernel variants from the CPU's features, made once.
#pragma once
#include <string>
#include <vector>

#include "kernels.h"

namespace medconv {

enum class Isa : int { scalar = 0, avx2 = 1, avx512 = 2, neon = 3 };

struct KernelTable {
  Isa isa;
  Kernels<float> f32;
  Kernels<double> f64;
};

const KernelTable& kernels();                // the active table
template <class T> const Kernels<T>& kernels_for();
std::string isa_name(Isa isa);
std::vector<Isa> compiled_isas();            // built into this binary
std::vector<Isa> supported_isas();           // compiled and runnable on this CPU
std::vector<std::string> cpu_features();
void select_isa(const std::string& name);    // "auto", "scalar", "avx2", ...; throws if unavailable

// Defined by each ISA's files: the table with that ISA's specialisations over `base`.
KernelTable avx2_table(const KernelTable& base);
KernelTable avx512_table(const KernelTable& base);
KernelTable neon_table(const KernelTable& base);

}  // namespace medconv
