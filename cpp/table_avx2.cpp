// The AVX2+FMA table: the reference table with this ISA's kernels in place.
#include "avx2_kernels.h"
#include "dispatch.h"

namespace medconv {

KernelTable avx2_table(const KernelTable& base) {
  KernelTable t = base;
  t.isa = Isa::avx2;
  return t;
}

}  // namespace medconv
