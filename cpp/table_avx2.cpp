// The AVX2+FMA table: the reference table with this ISA's kernels in place.
#include "avx2_kernels.h"

namespace medconv {

KernelTable avx2_table(const KernelTable& base) {
  KernelTable t = base;
  t.isa = Isa::avx2;
  add_conv_avx2(t);
  add_linear_avx2(t);
  add_eltwise_avx2(t);
  add_pool_avx2(t);
  add_adaptive_pool_avx2(t);
  add_batchnorm_avx2(t);
  add_interpolate_avx2(t);
  add_pad_avx2(t);
  return t;
}

}  // namespace medconv
