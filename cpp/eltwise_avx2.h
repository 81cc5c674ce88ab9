// The AVX2+FMA elementwise family: act_avx2.cpp (activations, maxout) registers softmax_avx2.cpp's
// entries through this hook.
#pragma once
#include "dispatch.h"

namespace medconv {

void add_softmax_avx2(KernelTable& t);  // softmax_avx2.cpp

}  // namespace medconv
