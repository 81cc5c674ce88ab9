// The NEON table (arm64 only): the reference table (`base`) with this ISA's kernels in place.
#include "neon_kernels.h"

namespace medconv {

#if defined(MEDCONV_ARM64)
KernelTable neon_table(const KernelTable& base) {
  KernelTable t = base;
  t.isa = Isa::neon;
  add_conv_neon(t);
  add_linear_neon(t);
  add_eltwise_neon(t);
  return t;
}
#endif

}  // namespace medconv
