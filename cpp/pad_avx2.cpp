// Padding, AVX2: the reference's rows (pad_rows.h), with a large output written through L1 with
// streaming stores (stream_avx2.h), float32 and float64.
#include "avx2_kernels.h"
#include "pad_rows.h"
#include "parallel.h"
#include "stream_avx2.h"

namespace medconv {
namespace {

template <class T>
void pad_avx2(const PadShape& s, const T* x, T* y, PadMode mode, T value) {
  const PadRows g = pad_rows(s);
  const int64_t rows = s.outer * g.OD * g.OH;
  const bool stream = rows * g.OW * int64_t(sizeof(T)) >= kStreamStoreBytes;
  parallel_for(rows, 16, [&](int64_t begin, int64_t end) {
    avx2::write_rows(y, g.OW, begin, end, stream, [&](int64_t r, T* out) { pad_row(s, g, x, r, out, mode, value); });
    if (stream) _mm_sfence();
  });
}

}  // namespace

void add_pad_avx2(KernelTable& t) {
  t.f32.pad = pad_avx2<float>;
  t.f64.pad = pad_avx2<double>;
}

}  // namespace medconv
