// Convolution, AVX2+FMA, float32: the plan, and the implicit GEMM (im2col columns packed straight
// from the input) for channel-rich convs; the direct kernel (conv_direct_avx2.cpp) for few channels
// (single-channel images, first layers, depthwise, 3D CT). float64: the implicit GEMM on the DGEMM
// for channel-rich convs, the reference loops for the others.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "aligned.h"
#include "avx2_kernels.h"
#include "conv_gemm.h"
#include "conv_direct_avx2.h"
#include "conv_plan.h"
#include "conv_subpixel.h"
#include "dgemm_avx2.h"
#include "gemm_avx2.h"
#include "parallel.h"
#include "range.h"
#include "ref_kernels.h"
#include "stream_avx2.h"
#include "winograd_avx2.h"
#include "winograd_s2_avx2.h"

namespace medconv {
namespace {

using gemm::NR;

// conv_gemm.h's column packer with AVX2 row fills (d: [16], 32-byte aligned).
struct Avx2Rows {
  static constexpr int64_t kStride2Overread = 1;  // copy_stride2 loads src[0..31]
  static void copy(float* d, const float* src) {  // d[t] = src[t]
    _mm256_store_ps(d, _mm256_loadu_ps(src));
    _mm256_store_ps(d + 8, _mm256_loadu_ps(src + 8));
  }
  static void copy_stride2(float* d, const float* src) {  // d[t] = src[2t]: the even lanes of 32 floats
    const __m256 e0 = _mm256_shuffle_ps(_mm256_loadu_ps(src), _mm256_loadu_ps(src + 8), _MM_SHUFFLE(2, 0, 2, 0));
    const __m256 e1 = _mm256_shuffle_ps(_mm256_loadu_ps(src + 16), _mm256_loadu_ps(src + 24), _MM_SHUFFLE(2, 0, 2, 0));
    _mm256_store_ps(d, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e0), _MM_SHUFFLE(3, 1, 2, 0))));
    _mm256_store_ps(d + 8, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e1), _MM_SHUFFLE(3, 1, 2, 0))));
  }
  static void edge(float* d, const float* row, int64_t iw0, int64_t W) {  // lanes outside [0, W) read as zero
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i lane8 = _mm256_add_epi32(lane, _mm256_set1_epi32(8));
    const __m256i lo = _mm256_set1_epi32(static_cast<int>(-iw0 - 1));
    const __m256i hi = _mm256_set1_epi32(static_cast<int>(W - iw0));
    const __m256i m0 = _mm256_and_si256(_mm256_cmpgt_epi32(lane, lo), _mm256_cmpgt_epi32(hi, lane));
    const __m256i m1 = _mm256_and_si256(_mm256_cmpgt_epi32(lane8, lo), _mm256_cmpgt_epi32(hi, lane8));
    _mm256_store_ps(d, _mm256_maskload_ps(row + iw0, m0));  // masked lanes never fault
    _mm256_store_ps(d + 8, _mm256_maskload_ps(row + iw0 + 8, m1));
  }
};

// conv_subpixel.h's rows of gx: stride 2 along W interleaves two rows of Z with unpacks, streamed
// where gx is large (stream_avx2.h); other strides as the plain loops.
struct Avx2Spread {
  static void row(const float* z, int64_t ldz, int64_t n, int64_t sw, float* dst, bool stream) {
    if (sw != 2 || !stream) return conv_subpixel::PlainSpread::row(z, ldz, n, sw, dst, stream);
    avx2::VectorStream run(dst);
    int64_t ow = 0;
    for (; ow + 8 <= n; ow += 8) {
      const __m256 a = _mm256_loadu_ps(z + ow), b = _mm256_loadu_ps(z + ldz + ow);
      const __m256 lo = _mm256_unpacklo_ps(a, b), hi = _mm256_unpackhi_ps(a, b);  // a0 b0 a1 b1 | a4 b4 a5 b5, ...
      run.put(_mm256_permute2f128_ps(lo, hi, 0x20));
      run.put(_mm256_permute2f128_ps(lo, hi, 0x31));
    }
    run.finish();
    conv_subpixel::PlainSpread::row(z + ow, ldz, n - ow, sw, dst + 2 * ow, false);
  }
  static void fence() { _mm_sfence(); }
};

// The implicit GEMM (conv_gemm.h's driver) with this file's packer.
void conv_gemm_f32(const ConvShape& s, const float* x, const float* w, const float* bias, float* y, bool relu) {
  conv_gemm::conv_gemm<gemm::Gemm>(s, x, w, bias, y, relu, conv_gemm::pack_conv_columns<NR, Avx2Rows>);
}

void conv_forward_avx2(const ConvShape& s, const float* x, const float* w, const float* bias, float* y,
                       Activation act) {
  conv_forward_planned_f32(Isa::avx2, conv_gemm_f32, s, x, w, bias, y, act == Activation::relu);
}

using ConvF64 = decltype(Kernels<double>::conv_forward);
ConvF64 g_base_conv_f64 = nullptr;  // the base table's float64 conv, set once when this table is built

// float64: the implicit GEMM on the DGEMM (dgemm_avx2.h) where each output sums at least kMinTaps
// products and a group has at least kMinOutputs channels; the base table's direct loops elsewhere
// (single-channel filters, depthwise, first layers).
void conv_forward_f64_avx2(const ConvShape& s, const double* x, const double* w, const double* bias, double* y,
                           Activation act) {
  constexpr int64_t kMinTaps = 16, kMinOutputs = 4;
  const bool empty = s.N == 0 || s.OC == 0 || s.C == 0 || s.OD * s.OH * s.OW == 0;
  const int64_t taps = s.C / s.groups * s.KD * s.KH * s.KW;
  if (empty || taps < kMinTaps || s.OC / s.groups < kMinOutputs) return g_base_conv_f64(s, x, w, bias, y, act);
  conv_gemm::conv_gemm<dgemm::Gemm>(s, x, w, bias, y, act == Activation::relu);
}

}  // namespace

// The plan, cached per shape (conv_plan.h): Winograd for the 3x3 stride-1 convs it takes; the
// direct kernels where a GEMM would spend its time packing or waste its tile (few input or output
// channels per group; 1D rows; W strided only for the 1D tiles and the phase rows); the implicit
// GEMM everywhere else.
void conv_forward_planned_f32(Isa isa, ConvGemmF32 gemm_conv, const ConvShape& s, const float* x, const float* w,
                              const float* bias, float* y, bool relu) {
  const int64_t Cg = s.C / s.groups;
  const int64_t taps = Cg * s.KD * s.KH * s.KW;
  // (measured against AVX2's GEMM: the AVX-512 GEMM keeps these until measured there; the 1D tiles
  // have an AVX-512 tile, 1.4x faster than its GEMM on 16x64x2500 -> 64, kernel 7)
  const bool tiles1d = conv_tiles1d_applies(s);  // any stride along W
  // one input channel per group, W strided: any GEMM runs these as one-row GEMMs (AVX-512's too)
  const bool phase_rows = conv_phase_rows_applies(s);
  const bool direct_fits = s.stride[2] == 1 || tiles1d || phase_rows;
  // A GEMM with fewer output channels than its tile has rows wastes most of each tile; the direct
  // kernel's channel tiles have the GEMM's register tile without its packing (4 and 6 input
  // channels -> 32 at 128x128: 1.6-1.7x faster than the GEMM; 8 go to Winograd). So do 5x5 and 7x7
  // convs with up to 64 output channels per group, whose GEMM packs each column for few rows:
  // 16-64 channels 1.07-1.9x faster (3D 5x5x5 1.6-1.7x); with 128 or 256 the GEMM is as fast or faster.
  const int64_t OCg = s.OC / s.groups;
  const bool direct_wins =
      direct_fits && (Cg <= 2 || taps <= 27 || OCg <= 4 || (Cg <= 6 && conv_rows_channel_tiles(s)) ||
                      (s.KH >= 5 && OCg <= 64 && conv_rows_channel_tiles(s)) || tiles1d || phase_rows ||
                      (isa == Isa::avx2 && conv_pointwise_applies(s)));
  const bool strided_winograd = winograd_s2_applicable(s);
  const PackedGemm& winograd_gemm = panel16_gemm(isa);
  auto run_winograd = [&] {  // false from Winograd (non-finite values): redo exactly
    const bool ok = strided_winograd ? conv_winograd_s2_f32(s, x, w, bias, y, relu, winograd_gemm)
                                     : conv_winograd_f32(s, x, w, bias, y, relu, winograd_gemm);
    if (!ok) gemm_conv(s, x, w, bias, y, relu);
  };
  auto run_direct = [&] { conv_direct_avx2_f32(s, x, w, bias, y, relu, isa); };
  auto run_gemm = [&] { gemm_conv(s, x, w, bias, y, relu); };
  std::vector<ConvCandidate> candidates{{ConvAlgo::gemm, run_gemm}};
  if (direct_fits) candidates.push_back({ConvAlgo::direct, run_direct});
  const bool winograd_fits = strided_winograd || winograd_applicable(s);
  if (winograd_fits) candidates.push_back({ConvAlgo::winograd, run_winograd});
  const ConvAlgo rule = winograd_fits ? ConvAlgo::winograd : direct_wins ? ConvAlgo::direct : ConvAlgo::gemm;
  switch (conv_plan(static_cast<int>(isa), sizeof(float), s, relu, rule, candidates)) {
    case ConvAlgo::winograd: run_winograd(); break;
    case ConvAlgo::direct: run_direct(); break;
    case ConvAlgo::gemm: run_gemm(); break;
  }
}

void add_conv_avx2(KernelTable& t) {
  if (!g_base_conv_f64) g_base_conv_f64 = t.f64.conv_forward;
  t.f64.conv_forward = conv_forward_f64_avx2;
  t.f32.conv_forward = conv_forward_avx2;
  t.f32.conv_subpixel = [](const ConvShape& s, const float* gy, const float* w, const float* bias, float* gx) {
    conv_subpixel::subpixel_f32<gemm::Gemm, Avx2Spread>(s, gy, w, bias, gx, conv_gemm::pack_conv_columns<NR, Avx2Rows>);
  };
}

}  // namespace medconv
