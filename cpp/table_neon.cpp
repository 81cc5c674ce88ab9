// The NEON table (arm64 only): the reference table with this ISA's kernels in place.
#include "dispatch.h"

namespace medconv {

#if defined(MEDCONV_ARM64)
KernelTable neon_table(const KernelTable& base) {
  KernelTable t = base;
  t.isa = Isa::neon;
  return t;
}
#endif

}  // namespace medconv
