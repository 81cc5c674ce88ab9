// The AVX-512 table: the AVX2 table (`base`) with this ISA's kernels in place.
#include "avx512_kernels.h"

namespace medconv {

KernelTable avx512_table(const KernelTable& base) {
  KernelTable t = base;
  t.isa = Isa::avx512;
  add_conv_avx512(t);
  add_linear_avx512(t);
  add_eltwise_avx512(t);
  add_softmax_avx512(t);
  return t;
}

}  // namespace medconv
