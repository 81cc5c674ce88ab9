// AVX2+FMA kernels (placeholder until the family is vectorised: the table keeps the reference).
#include "avx2_kernels.h"

namespace medconv {

void add_eltwise_avx2(KernelTable& t) {}

}  // namespace medconv
