// Convolution forward, input gradient (also the transposed convolution's forward) and weight
// gradient, as cpp/conv_ref.cpp, cpp/conv_backward_ref.cpp and cpp/conv_transpose_ref.cpp.
// Layouts: x [N, C, D, H, W], w [OC, C/groups, KD, KH, KW], y [N, OC, OD, OH, OW]; 1d and 2d
// convs run as 3d with size-1 dims. Padding here is the leading zero padding (other modes are
// applied beforehand by pad.cu).
//
// Two families:
// - direct kernels, one thread per output element (for few channels per group, depthwise, and
//   shapes the tiled kernels' grid cannot hold); the forward of groups of at most 4 output
//   channels runs tiled (conv_direct_tiled_forward: the input an output tile reads is staged in
//   shared memory, the sums are the direct kernel's);
// - tiled implicit-GEMM kernels: BM x BN output tiles of a (pixels x channels) GEMM whose
//   operand tiles are gathered (im2col on the fly) into shared memory, BK = 16 deep, 256 threads
//   each holding a (BM/16) x (BN/16) register tile.
// The weight gradient reduces over N*OD*OH*OW: it is split into `splits` fixed ranges that
// write partial sums to a workspace, then added in order (conv_reduce_splits): deterministic,
// no atomics.
#include "common.cuh"

struct ConvGeom {
  i64 N, C, D, H, W, OC, OD, OH, OW;
  int KD, KH, KW, sd, sh, sw, pd, ph, pw, dd, dh, dw, groups;
  i64 Cg, OCg, DHW, OSP;
  int kvol;
};

__device__ __forceinline__ ConvGeom conv_geom(i64 N, i64 C, i64 D, i64 H, i64 W, i64 OC, i64 OD, i64 OH, i64 OW,
                                              int KD, int KH, int KW, int sd, int sh, int sw, int pd, int ph, int pw,
                                              int dd, int dh, int dw, int groups) {
  ConvGeom g;
  g.N = N; g.C = C; g.D = D; g.H = H; g.W = W; g.OC = OC; g.OD = OD; g.OH = OH; g.OW = OW;
  g.KD = KD; g.KH = KH; g.KW = KW; g.sd = sd; g.sh = sh; g.sw = sw; g.pd = pd; g.ph = ph; g.pw = pw;
  g.dd = dd; g.dh = dh; g.dw = dw; g.groups = groups;
  g.Cg = C / groups; g.OCg = OC / groups; g.DHW = D * H * W; g.OSP = OD * OH * OW;
  g.kvol = KD * KH * KW;
  return g;
}

template <class T>
__device__ __forceinline__ T apply_act(T v, int act) {
  return act == 1 ? (v > T(0) ? v : (v != v ? v : T(0))) : v;  // relu keeps NaN
}

// The output o (of n_out) with o*stride - pad + offset == i, or -1 when there is none.
__device__ __forceinline__ i64 source_output(i64 i, int stride, int pad, i64 offset, i64 n_out) {
  const i64 t = i + pad - offset;
  if (t < 0 || t % stride != 0) return -1;
  const i64 o = t / stride;
  return o < n_out ? o : -1;
}

// The range [lo, hi) of outputs o with 0 <= o*stride - pad + offset < n_in.
__device__ __forceinline__ void valid_outputs(i64 n_out, i64 n_in, int stride, int pad, i64 offset, i64& lo,
                                              i64& hi) {
  lo = mc_max<i64>(0, mc_floordiv(pad - offset + stride - 1, stride));
  hi = mc_min<i64>(n_out, mc_floordiv(n_in - 1 + pad - offset, stride) + 1);
  if (hi < lo) hi = lo;
}

// ------------------------------------------------------------------ direct kernels

// One thread per (output position, block of OCB output channels of one group):
// y[n, oc, o] = act(bias[oc] + sum_{ic, k} w[oc, ic, k] * x[n, g*Cg + ic, o*stride - pad + k*dilation])
template <class T, int OCB>
__device__ void conv_direct_forward(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ bias,
                                    T* __restrict__ y, const ConvGeom g, int act) {
  const i64 nob = (g.OCg + OCB - 1) / OCB;
  const i64 wstride = g.Cg * g.kvol;  // between two output channels' filters
  MC_FOR(e, g.N * g.groups * nob * g.OSP) {
    const i64 sp = e % g.OSP;
    i64 r = e / g.OSP;
    const i64 ob = r % nob;
    r /= nob;
    const i64 grp = r % g.groups, n = r / g.groups;
    const i64 ow = sp % g.OW, oh = (sp / g.OW) % g.OH, od = sp / (g.OW * g.OH);
    const i64 oc0 = grp * g.OCg + ob * OCB;
    const int nq = static_cast<int>(mc_min<i64>(OCB, g.OCg - ob * OCB));
    T acc[OCB];
#pragma unroll
    for (int q = 0; q < OCB; ++q) acc[q] = (bias && q < nq) ? bias[oc0 + q] : T(0);
    const T* xg = x + (n * g.C + grp * g.Cg) * g.DHW;
    const T* wq = w + oc0 * wstride;
    for (i64 c = 0; c < g.Cg; ++c) {
      const T* xc = xg + c * g.DHW;
      const T* wc = wq + c * g.kvol;
      for (int kd = 0; kd < g.KD; ++kd) {
        const i64 id = od * g.sd - g.pd + (i64)kd * g.dd;
        if (id < 0 || id >= g.D) continue;
        for (int kh = 0; kh < g.KH; ++kh) {
          const i64 ih = oh * g.sh - g.ph + (i64)kh * g.dh;
          if (ih < 0 || ih >= g.H) continue;
          const T* row = xc + (id * g.H + ih) * g.W;
          for (int kw = 0; kw < g.KW; ++kw) {
            const i64 iw = ow * g.sw - g.pw + (i64)kw * g.dw;
            if (iw < 0 || iw >= g.W) continue;
            const T v = row[iw];
            const int tap = (kd * g.KH + kh) * g.KW + kw;
#pragma unroll
            for (int q = 0; q < OCB; ++q)
              if (q < nq) acc[q] += v * wc[q * wstride + tap];
          }
        }
      }
    }
#pragma unroll
    for (int q = 0; q < OCB; ++q)
      if (q < nq) y[((n * g.OC + oc0 + q) * g.OSP) + sp] = apply_act(acc[q], act);
  }
}

#define MC_HALO_BYTES 16384  // the tiled direct kernel's staged input, per block
#define MC_HALO_BATCH 4      // global loads a thread has in flight while staging them

// conv_direct_forward for groups of at most OCB output channels, each input element read from
// global memory about once per block: a block computes a tile_w x (256 / tile_w * RPT) tile of
// output positions of one (n, group, od), for all the group's output channels; thread t computes
// column t % tile_w, rows t / tile_w + i * 256 / tile_w (i < RPT). For each input channel and kd
// the block stages the input rows and columns the tile's taps read (zeros outside x) in shared
// memory, as many (channel, kd) slices at a time as fit, then adds the taps in
// conv_direct_forward's order.
// grid: (tiles of the output plane * OD, groups, N); 256 threads. conv_forward launches it only
// when OCg <= OCB and one slice fits MC_HALO_BYTES.
template <class T, int OCB, int RPT>
__device__ void conv_direct_tiled_forward(const T* __restrict__ x, const T* __restrict__ w,
                                          const T* __restrict__ bias, T* __restrict__ y, const ConvGeom g, int act,
                                          int tile_w) {
  __shared__ T halo[MC_HALO_BYTES / sizeof(T)];
  const int step = MC_THREADS / tile_w;  // rows between a thread's outputs
  const int tile_h = step * RPT;
  const int tx = threadIdx.x % tile_w, ty = threadIdx.x / tile_w;
  const int rows = (tile_h - 1) * g.sh + (g.KH - 1) * g.dh + 1;
  const int cols = (tile_w - 1) * g.sw + (g.KW - 1) * g.dw + 1;
  const int plane = rows * cols;  // staged elements per (input channel, kd): at least 256
  const unsigned tiles_w = static_cast<unsigned>((g.OW + tile_w - 1) / tile_w);
  const unsigned tiles_h = static_cast<unsigned>((g.OH + tile_h - 1) / tile_h);
  const unsigned tile_x = blockIdx.x % tiles_w, tile_y = (blockIdx.x / tiles_w) % tiles_h;
  const i64 od = blockIdx.x / tiles_w / tiles_h, grp = blockIdx.y, n = blockIdx.z;
  const i64 ow = (i64)tile_x * tile_w + tx, oh0 = (i64)tile_y * tile_h + ty;
  const i64 ih0 = (i64)tile_y * tile_h * g.sh - g.ph, iw0 = (i64)tile_x * tile_w * g.sw - g.pw;
  const i64 id0 = od * g.sd - g.pd;
  i64 kd_lo, kd_hi;  // the kd whose input plane exists
  valid_outputs(g.KD, g.D, g.dd, 0, id0, kd_lo, kd_hi);
  const int nkd = static_cast<int>(kd_hi - kd_lo);
  const int slices = static_cast<int>(g.Cg) * nkd;  // (input channel, kd) pairs, in the sum's order
  const int per_pass = static_cast<int>(MC_HALO_BYTES / sizeof(T)) / plane;
  const i64 oc0 = grp * g.OCg;
  const int nq = static_cast<int>(g.OCg);
  const i64 wstride = g.Cg * g.kvol;  // between two output channels' filters
  const T* xg = x + (n * g.C + grp * g.Cg) * g.DHW;
  const T* hbase = halo + ty * g.sh * cols + tx * g.sw;  // this thread's first tap
  const int hstep = step * g.sh * cols;                  // between its output rows' taps
  T acc[RPT][OCB];
#pragma unroll
  for (int j = 0; j < RPT; ++j)
#pragma unroll
    for (int q = 0; q < OCB; ++q) acc[j][q] = (bias && q < nq) ? bias[oc0 + q] : T(0);
  // Each pass stages up to per_pass slices; element e of a pass is slice e / plane, row
  // e % plane / cols, column e % cols. This thread's elements are threadIdx.x + i * 256.
  for (int s0 = 0; s0 < slices; s0 += per_pass) {
    const int count = mc_min(per_pass, slices - s0) * plane;
    int hr = threadIdx.x / cols, hc = threadIdx.x % cols, c = s0 / nkd, kd = static_cast<int>(kd_lo) + s0 % nkd;
    for (int e0 = threadIdx.x; e0 < count; e0 += MC_HALO_BATCH * MC_THREADS) {
      T v[MC_HALO_BATCH];
#pragma unroll
      for (int b = 0; b < MC_HALO_BATCH; ++b) {
        const i64 ih = ih0 + hr, iw = iw0 + hc;
        v[b] = (e0 + b * MC_THREADS < count && ih >= 0 && ih < g.H && iw >= 0 && iw < g.W)
                   ? xg[((c * g.D + id0 + (i64)kd * g.dd) * g.H + ih) * g.W + iw]
                   : T(0);
        hr += MC_THREADS / cols;
        hc += MC_THREADS % cols;
        if (hc >= cols) hc -= cols, ++hr;
        if (hr >= rows) {
          hr -= rows;
          if (++kd == kd_hi) kd = static_cast<int>(kd_lo), ++c;
        }
      }
#pragma unroll
      for (int b = 0; b < MC_HALO_BATCH; ++b)
        if (e0 + b * MC_THREADS < count) halo[e0 + b * MC_THREADS] = v[b];
    }
    __syncthreads();
    for (int s = s0; s < s0 + count / plane; ++s) {
      const T* hs = hbase + (s - s0) * plane;
      const T* wk = w + oc0 * wstride + (s / nkd) * g.kvol + (kd_lo + s % nkd) * g.KH * g.KW;
#pragma unroll
      for (int q = 0; q < OCB; ++q) {
        if (q >= nq) break;
        for (int kh = 0; kh < g.KH; ++kh) {
          const T* hk = hs + kh * g.dh * cols;
          const T* wq = wk + q * wstride + kh * g.KW;
          for (int kw = 0; kw < g.KW; ++kw) {
            const T wv = wq[kw];
#pragma unroll
            for (int j = 0; j < RPT; ++j) acc[j][q] += hk[j * hstep + kw * g.dw] * wv;
          }
        }
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int j = 0; j < RPT; ++j) {
    const i64 oh = oh0 + j * step;
    if (oh >= g.OH || ow >= g.OW) continue;
    const i64 sp = (od * g.OH + oh) * g.OW + ow;
#pragma unroll
    for (int q = 0; q < OCB; ++q)
      if (q < nq) y[(n * g.OC + oc0 + q) * g.OSP + sp] = apply_act(acc[j][q], act);
  }
}

// One thread per input element (no atomics):
// gx[n, c, i] = sum_{oc in c's group, k, o: o*stride - pad + k*dilation = i} gy[n, oc, o] * w[oc, c % Cg, k]
// (+ bias[c] when given: the transposed convolution's forward).
template <class T>
__device__ void conv_direct_backward_input(const T* __restrict__ gy, const T* __restrict__ w,
                                           const T* __restrict__ bias, T* __restrict__ gx, const ConvGeom g) {
  MC_FOR(e, g.N * g.C * g.DHW) {
    const i64 iw = e % g.W;
    i64 r = e / g.W;
    const i64 ih = r % g.H;
    r /= g.H;
    const i64 id = r % g.D;
    r /= g.D;
    const i64 c = r % g.C, n = r / g.C;
    const i64 grp = c / g.Cg, ic = c % g.Cg;
    T acc = T(0);
    for (i64 oc = grp * g.OCg; oc < (grp + 1) * g.OCg; ++oc) {
      const T* gyc = gy + (n * g.OC + oc) * g.OSP;
      const T* wc = w + (oc * g.Cg + ic) * g.kvol;
      for (int kd = 0; kd < g.KD; ++kd) {
        const i64 od = source_output(id, g.sd, g.pd, (i64)kd * g.dd, g.OD);
        if (od < 0) continue;
        for (int kh = 0; kh < g.KH; ++kh) {
          const i64 oh = source_output(ih, g.sh, g.ph, (i64)kh * g.dh, g.OH);
          if (oh < 0) continue;
          for (int kw = 0; kw < g.KW; ++kw) {
            const i64 ow = source_output(iw, g.sw, g.pw, (i64)kw * g.dw, g.OW);
            if (ow < 0) continue;
            acc += wc[(kd * g.KH + kh) * g.KW + kw] * gyc[(od * g.OH + oh) * g.OW + ow];
          }
        }
      }
    }
    gx[e] = bias ? acc + bias[c] : acc;
  }
}

// One thread per (split, weight element): the sum over its range of output rows (n, od, oh) of
// gy[n, oc, od, oh, ow] * x[n, g*Cg + ic, od*sd - pd + kd*dd, oh*sh - ph + kh*dh, ow*sw - pw + kw*dw].
// out: [splits, OC, Cg, KD, KH, KW] (the weight gradient itself when splits == 1).
template <class T>
__device__ void conv_direct_backward_weight(const T* __restrict__ x, const T* __restrict__ gy, T* __restrict__ out,
                                            const ConvGeom g, i64 splits) {
  const i64 wsize = g.OC * g.Cg * g.kvol;
  const i64 rows = g.N * g.OD * g.OH;
  const i64 chunk = (rows + splits - 1) / splits;
  MC_FOR(e, splits * wsize) {
    const i64 t = e % wsize, split = e / wsize;
    const int kw = static_cast<int>(t % g.KW), kh = static_cast<int>((t / g.KW) % g.KH);
    const int kd = static_cast<int>((t / (g.KW * g.KH)) % g.KD);
    const i64 ic = (t / g.kvol) % g.Cg, oc = t / (g.kvol * g.Cg);
    const i64 grp = oc / g.OCg;
    i64 ow_lo, ow_hi;
    valid_outputs(g.OW, g.W, g.sw, g.pw, (i64)kw * g.dw, ow_lo, ow_hi);
    const i64 off = (i64)kw * g.dw - g.pw;
    const i64 r0 = split * chunk, r1 = mc_min(rows, r0 + chunk);
    T acc = T(0);
    for (i64 rr = r0; rr < r1; ++rr) {
      const i64 oh = rr % g.OH, od = (rr / g.OH) % g.OD, n = rr / (g.OH * g.OD);
      const i64 id = od * g.sd - g.pd + (i64)kd * g.dd, ih = oh * g.sh - g.ph + (i64)kh * g.dh;
      if (id < 0 || id >= g.D || ih < 0 || ih >= g.H) continue;
      const T* in = x + (((n * g.C + grp * g.Cg + ic) * g.D + id) * g.H + ih) * g.W;
      const T* grow = gy + (((n * g.OC + oc) * g.OD + od) * g.OH + oh) * g.OW;
      for (i64 ow = ow_lo; ow < ow_hi; ++ow) acc += grow[ow] * in[ow * g.sw + off];
    }
    out[e] = acc;
  }
}

// out[e] = sum over s (in order) of ws[s, e]
template <class T>
__device__ void conv_reduce_splits(const T* __restrict__ ws, T* __restrict__ out, i64 count, i64 splits) {
  MC_FOR(e, count) {
    T acc = T(0);
    for (i64 s = 0; s < splits; ++s) acc += ws[s * count + e];
    out[e] = acc;
  }
}

// gb[c] = sum over n, i of gy[n, c, i], in two deterministic stages (see batchnorm.cu):
// ws[c, part] = the block-tree sum of a fixed slice, then channel_sum_finalize adds the parts.
template <class T>
__device__ void channel_sum_partial(const T* __restrict__ gy, T* __restrict__ ws, i64 N, i64 C, i64 S, i64 parts) {
  __shared__ T buf[MC_THREADS];
  const i64 M = N * S, chunk = (M + parts - 1) / parts;
  for (i64 b = blockIdx.x; b < C * parts; b += gridDim.x) {
    const i64 c = b / parts, part = b - c * parts;
    const i64 end = mc_min(M, part * chunk + chunk);
    i64 t = part * chunk + threadIdx.x;
    i64 n = t / S, i = t - n * S;
    T acc = T(0);
    for (; t < end; t += MC_THREADS) {
      acc += gy[(n * C + c) * S + i];
      i += MC_THREADS;
      if (i >= S) n += i / S, i %= S;
    }
    acc = mc_block_sum(acc, buf);
    if (threadIdx.x == 0) ws[b] = acc;
  }
}

template <class T>
__device__ void channel_sum_finalize(const T* __restrict__ ws, T* __restrict__ gb, i64 C, i64 parts) {
  MC_FOR(c, C) {
    T acc = T(0);
    for (i64 p = 0; p < parts; ++p) acc += ws[c * parts + p];
    gb[c] = acc;
  }
}

// ------------------------------------------------------------------ tiled implicit GEMM

#define MC_BK 16

// acc[i][j] += sum_k As[k][tx + 16 i] * Bs[k][ty + 16 j]
template <class T, int BM, int BN>
__device__ __forceinline__ void gemm_tile_step(const T (*As)[BM + 1], const T (*Bs)[BN + 1], T (*acc)[BN / 16],
                                               int tx, int ty) {
#pragma unroll
  for (int k = 0; k < MC_BK; ++k) {
    T a[BM / 16], b[BN / 16];
#pragma unroll
    for (int i = 0; i < BM / 16; ++i) a[i] = As[k][tx + 16 * i];
#pragma unroll
    for (int j = 0; j < BN / 16; ++j) b[j] = Bs[k][ty + 16 * j];
#pragma unroll
    for (int i = 0; i < BM / 16; ++i)
#pragma unroll
      for (int j = 0; j < BN / 16; ++j) acc[i][j] += a[i] * b[j];
  }
}

// MODE 0, forward:        rows m = (n, od, oh, ow) of N*OSP, cols = oc of the group, K = (ic, kd, kh, kw)
//   A[m, k] = x[n, g*Cg + ic, od*sd - pd + kd*dd, ...] (0 outside), B[k, oc] = w[g*OCg + oc, k]
//   y[n, g*OCg + oc, o] = act(sum + bias)
// MODE 1, input gradient: rows m = (n, id, ih, iw) of N*DHW, cols = ic of the group, K = (oc, kd, kh, kw)
//   A[m, k] = gy[n, g*OCg + oc, o] where o*stride - pad + k*dilation = i (0 where none)
//   B[k, ic] = w[g*OCg + oc, ic, k];  gx[n, g*Cg + ic, i] = sum (+ bias[g*Cg + ic] when given)
// grid: (ceil(rows / BM), ceil(cols / BN), groups); 256 threads.
template <class T, int BM, int BN, int MODE>
__device__ void conv_gemm(const T* __restrict__ src, const T* __restrict__ w, const T* __restrict__ bias,
                          T* __restrict__ dst, const ConvGeom g, int act) {
  __shared__ T As[MC_BK][BM + 1];
  __shared__ T Bs[MC_BK][BN + 1];
  constexpr int TM = BM / 16, TN = BN / 16;
  constexpr int A_LOADS = BM * MC_BK / MC_THREADS, A_KSTEP = MC_THREADS / BM;
  constexpr int B_LOADS = BN * MC_BK / MC_THREADS;
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const i64 grp = blockIdx.z;
  const i64 rows = MODE == 0 ? g.N * g.OSP : g.N * g.DHW;
  const i64 cols = MODE == 0 ? g.OCg : g.Cg;
  const int K = MODE == 0 ? static_cast<int>(g.Cg) * g.kvol : static_cast<int>(g.OCg) * g.kvol;
  const int KHW = g.KH * g.KW;
  const i64 m0 = (i64)blockIdx.x * BM, n0 = (i64)blockIdx.y * BN;

  // This thread's A row (fixed for the whole K loop): its image and position.
  const int a_m = tid % BM, a_k0 = tid / BM;
  const i64 am = m0 + a_m;
  const bool a_valid = am < rows;
  i64 a_n = 0, a_s0 = 0, a_s1 = 0, a_s2 = 0;  // image, then (od, oh, ow) [MODE 0] or (id, ih, iw) [MODE 1]
  if (a_valid) {
    const i64 plane = MODE == 0 ? g.OSP : g.DHW;
    const i64 Wd = MODE == 0 ? g.OW : g.W, Hd = MODE == 0 ? g.OH : g.H;
    a_n = am / plane;
    const i64 sp = am - a_n * plane;
    a_s2 = sp % Wd;
    a_s1 = (sp / Wd) % Hd;
    a_s0 = sp / (Wd * Hd);
  }
  const T* a_base = MODE == 0 ? src + (a_n * g.C + grp * g.Cg) * g.DHW : src + (a_n * g.OC + grp * g.OCg) * g.OSP;
  const i64 a_d0 = MODE == 0 ? a_s0 * g.sd - g.pd : a_s0;
  const i64 a_h0 = MODE == 0 ? a_s1 * g.sh - g.ph : a_s1;
  const i64 a_w0 = MODE == 0 ? a_s2 * g.sw - g.pw : a_s2;

  const int b_k = tid % MC_BK, b_n0 = tid / MC_BK;

  T acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = T(0);

  for (int k0 = 0; k0 < K; k0 += MC_BK) {
#pragma unroll
    for (int l = 0; l < A_LOADS; ++l) {
      const int kk = a_k0 + l * A_KSTEP;
      const int k = k0 + kk;
      T v = T(0);
      if (a_valid && k < K) {
        const int outer = k / g.kvol, t = k - outer * g.kvol;
        const int kd = t / KHW, kh = (t / g.KW) % g.KH, kw = t % g.KW;
        if (MODE == 0) {
          const i64 id = a_d0 + (i64)kd * g.dd, ih = a_h0 + (i64)kh * g.dh, iw = a_w0 + (i64)kw * g.dw;
          if (id >= 0 && id < g.D && ih >= 0 && ih < g.H && iw >= 0 && iw < g.W)
            v = a_base[outer * g.DHW + (id * g.H + ih) * g.W + iw];
        } else {
          const i64 od = source_output(a_d0, g.sd, g.pd, (i64)kd * g.dd, g.OD);
          const i64 oh = source_output(a_h0, g.sh, g.ph, (i64)kh * g.dh, g.OH);
          const i64 ow = source_output(a_w0, g.sw, g.pw, (i64)kw * g.dw, g.OW);
          if (od >= 0 && oh >= 0 && ow >= 0) v = a_base[outer * g.OSP + (od * g.OH + oh) * g.OW + ow];
        }
      }
      As[kk][a_m] = v;
    }
    {
      const int k = k0 + b_k;
      // MODE 0: B[k, oc] = w[(g*OCg + oc) * K + k]
      // MODE 1: B[k, ic] = w[((g*OCg + oc) * Cg + ic) * kvol + t], k = oc * kvol + t
      int b_oc = 0, b_t = 0;
      if (MODE == 1 && k < K) b_oc = k / g.kvol, b_t = k - b_oc * g.kvol;
#pragma unroll
      for (int l = 0; l < B_LOADS; ++l) {
        const int nn = b_n0 + l * (MC_THREADS / MC_BK);
        const i64 col = n0 + nn;
        T v = T(0);
        if (col < cols && k < K) {
          if (MODE == 0) v = w[(grp * g.OCg + col) * K + k];
          else v = w[((grp * g.OCg + b_oc) * g.Cg + col) * g.kvol + b_t];
        }
        Bs[b_k][nn] = v;
      }
    }
    __syncthreads();
    gemm_tile_step<T, BM, BN>(As, Bs, acc, tx, ty);
    __syncthreads();
  }

#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const i64 m = m0 + tx + 16 * i;
    if (m >= rows) continue;
    const i64 plane = MODE == 0 ? g.OSP : g.DHW;
    const i64 n = m / plane, sp = m - n * plane;
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const i64 col = n0 + ty + 16 * j;
      if (col >= cols) continue;
      if (MODE == 0) {
        const i64 oc = grp * g.OCg + col;
        dst[(n * g.OC + oc) * g.OSP + sp] = apply_act(bias ? acc[i][j] + bias[oc] : acc[i][j], act);
      } else {
        const i64 c = grp * g.Cg + col;
        dst[(n * g.C + c) * g.DHW + sp] = bias ? acc[i][j] + bias[c] : acc[i][j];
      }
    }
  }
}

// Weight gradient: rows = oc of the group (OCg), cols = (ic, kd, kh, kw) (Cg*kvol), reduction
// r = (n, od, oh, ow) over N*OSP, split in `splits` fixed ranges:
//   A[oc, r] = gy[n, g*OCg + oc, o], B[r, col] = x[n, g*Cg + ic, o*stride - pad + k*dilation] (0 outside)
//   out[split, g*OCg + oc, col] = the range's sum     out: [splits, OC, Cg*kvol]
// grid: (ceil(OCg / BM), ceil(Cg*kvol / BN), groups * splits); 256 threads.
template <class T, int BM, int BN>
__device__ void conv_gemm_weight(const T* __restrict__ x, const T* __restrict__ gy, T* __restrict__ out,
                                 const ConvGeom g, i64 splits) {
  __shared__ T As[MC_BK][BM + 1];
  __shared__ T Bs[MC_BK][BN + 1];
  constexpr int TM = BM / 16, TN = BN / 16;
  constexpr int A_LOADS = BM * MC_BK / MC_THREADS, B_LOADS = BN * MC_BK / MC_THREADS;
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const i64 grp = blockIdx.z % g.groups, split = blockIdx.z / g.groups;
  const i64 rows = g.OCg, cols = g.Cg * g.kvol;
  const i64 red = g.N * g.OSP;
  const i64 chunk = ((red + splits - 1) / splits + MC_BK - 1) / MC_BK * MC_BK;
  const i64 r_begin = split * chunk, r_end = mc_min(red, r_begin + chunk);
  const i64 m0 = (i64)blockIdx.x * BM, n0 = (i64)blockIdx.y * BN;
  const int kk = tid % MC_BK, lane_row = tid / MC_BK;  // both tiles load with the reduction index fastest

  // This thread's B columns (fixed): channel offset and tap offsets.
  i64 b_coff[B_LOADS];
  int b_kd[B_LOADS], b_kh[B_LOADS], b_kw[B_LOADS];
  bool b_ok[B_LOADS];
#pragma unroll
  for (int l = 0; l < B_LOADS; ++l) {
    const i64 col = n0 + lane_row + l * (MC_THREADS / MC_BK);
    b_ok[l] = col < cols;
    const i64 c = b_ok[l] ? col / g.kvol : 0;
    const int t = b_ok[l] ? static_cast<int>(col - c * g.kvol) : 0;
    b_coff[l] = (grp * g.Cg + c) * g.DHW;
    b_kd[l] = (t / (g.KH * g.KW)) * g.dd - g.pd;
    b_kh[l] = ((t / g.KW) % g.KH) * g.dh - g.ph;
    b_kw[l] = (t % g.KW) * g.dw - g.pw;
  }

  T acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = T(0);

  for (i64 r0 = r_begin; r0 < r_end; r0 += MC_BK) {
    const i64 r = r0 + kk;
    const bool r_ok = r < r_end;
    i64 n = 0, sp = 0, od = 0, oh = 0, ow = 0;
    if (r_ok) {
      n = r / g.OSP;
      sp = r - n * g.OSP;
      ow = sp % g.OW;
      oh = (sp / g.OW) % g.OH;
      od = sp / (g.OW * g.OH);
    }
#pragma unroll
    for (int l = 0; l < A_LOADS; ++l) {
      const int mm = lane_row + l * (MC_THREADS / MC_BK);
      const i64 oc = m0 + mm;
      As[kk][mm] = (r_ok && oc < rows) ? gy[(n * g.OC + grp * g.OCg + oc) * g.OSP + sp] : T(0);
    }
#pragma unroll
    for (int l = 0; l < B_LOADS; ++l) {
      T v = T(0);
      if (r_ok && b_ok[l]) {
        const i64 id = od * g.sd + b_kd[l], ih = oh * g.sh + b_kh[l], iw = ow * g.sw + b_kw[l];
        if (id >= 0 && id < g.D && ih >= 0 && ih < g.H && iw >= 0 && iw < g.W)
          v = x[n * g.C * g.DHW + b_coff[l] + (id * g.H + ih) * g.W + iw];
      }
      Bs[kk][lane_row + l * (MC_THREADS / MC_BK)] = v;
    }
    __syncthreads();
    gemm_tile_step<T, BM, BN>(As, Bs, acc, tx, ty);
    __syncthreads();
  }

  T* o = out + split * g.OC * cols;
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const i64 oc = m0 + tx + 16 * i;
    if (oc >= rows) continue;
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const i64 col = n0 + ty + 16 * j;
      if (col < cols) o[(grp * g.OCg + oc) * cols + col] = acc[i][j];
    }
  }
}

// ------------------------------------------------------------------ forward implicit GEMM, wide tiles
// BM (64 or 128) output pixels x BN (32, 64 or 128) output channels per block, MC_WBK = 8 reduction
// indices a step, 256 threads as 16 x 16, each holding a (BM/16) x (BN/16) register tile (wide_index). The next
// step's operands are loaded into registers while the current step's are multiplied, and stored into
// the other of two shared buffers.
// taps[4k..4k+3], from the host per geometry: for reduction index k = (ic, kd, kh, kw), the offset of
// x[ic, kd*dd, kh*dh, kw*dw] from x[0, 0, 0, 0] in one image's group, then kd*dd, kh*dh, kw*dw.
#define MC_WBK 8
#define MC_WPAD 4  // keeps each shared row 16-byte aligned and the operand stores free of bank conflicts

// The tile row (or column) of a thread's i-th register, for TT registers along it and thread index t < 16:
// TT <= 4: t*TT + i (contiguous); TT = 8: t*4 + i in the first half of the tile, 64 + t*4 + i - 4 in the
// second (each half read with 16-byte loads that a warp's threads spread across the banks).
template <int TT>
__device__ __forceinline__ int wide_index(int t, int i) {
  return TT >= 8 ? (i / 4) * 64 + t * 4 + i % 4 : t * TT + i;
}

template <class T, int BM, int BN>
__device__ void conv_gemm_wide_forward(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ bias,
                                       const int* __restrict__ taps, T* __restrict__ y, const ConvGeom g, int act) {
  constexpr int TM = BM / 16, TN = BN / 16, A_LOADS = BM / 32, A_KSTEP = MC_THREADS / BM, B_LOADS = BN / 32;
  __shared__ __align__(16) T As[2][MC_WBK][BM + MC_WPAD];
  __shared__ __align__(16) T Bs[2][MC_WBK][BN + MC_WPAD];
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const i64 grp = blockIdx.z;
  const i64 rows = g.N * g.OSP, cols = g.OCg;
  const int K = static_cast<int>(g.Cg) * g.kvol;
  const i64 m0 = (i64)blockIdx.x * BM, n0 = (i64)blockIdx.y * BN;

  // A: this thread gathers row a_m at reduction indices a_k0 + A_KSTEP l (l < A_LOADS) of every step.
  const int a_m = tid % BM, a_k0 = tid / BM;
  const i64 am = m0 + a_m;
  const bool a_valid = am < rows;
  // (the host takes this kernel only where every spatial coordinate fits an int)
  const int D = static_cast<int>(g.D), H = static_cast<int>(g.H), W = static_cast<int>(g.W);
  int a_d0 = 0, a_h0 = 0, a_w0 = 0;
  i64 a_corner = 0;
  if (a_valid) {
    const i64 n = am / g.OSP, sp = am - n * g.OSP;
    a_d0 = static_cast<int>(sp / (g.OH * g.OW)) * g.sd - g.pd;
    a_h0 = static_cast<int>((sp / g.OW) % g.OH) * g.sh - g.ph;
    a_w0 = static_cast<int>(sp % g.OW) * g.sw - g.pw;
    a_corner = (n * g.C + grp * g.Cg) * g.DHW + ((i64)a_d0 * H + a_h0) * W + a_w0;
  }
  // B: this thread loads reduction index b_k of columns b_n + 32l (l < B_LOADS).
  const int b_k = tid % MC_WBK, b_n = tid / MC_WBK;
  const T* w_group = w + grp * g.OCg * K;

  T a_next[A_LOADS], b_next[B_LOADS];
  T acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = T(0);

#define MC_WIDE_LOAD(k0)                                                                                   \
  {                                                                                                        \
    _Pragma("unroll") for (int l = 0; l < A_LOADS; ++l) {                                                  \
      const int k = (k0) + a_k0 + A_KSTEP * l;                                                             \
      T v = T(0);                                                                                          \
      if (a_valid && k < K) {                                                                              \
        const int* t = taps + 4 * k;                                                                       \
        const int id = a_d0 + t[1], ih = a_h0 + t[2], iw = a_w0 + t[3];                                    \
        if (id >= 0 && id < D && ih >= 0 && ih < H && iw >= 0 && iw < W) v = x[a_corner + t[0]];          \
      }                                                                                                    \
      a_next[l] = v;                                                                                       \
    }                                                                                                      \
    const int kb = (k0) + b_k;                                                                             \
    _Pragma("unroll") for (int l = 0; l < B_LOADS; ++l) {                                                  \
      const i64 col = n0 + b_n + 32 * l;                                                                   \
      b_next[l] = col < cols && kb < K ? w_group[col * K + kb] : T(0);                                     \
    }                                                                                                      \
  }
#define MC_WIDE_STORE(buf)                                                                                 \
  {                                                                                                        \
    _Pragma("unroll") for (int l = 0; l < A_LOADS; ++l) As[buf][a_k0 + A_KSTEP * l][a_m] = a_next[l];      \
    _Pragma("unroll") for (int l = 0; l < B_LOADS; ++l) Bs[buf][b_k][b_n + 32 * l] = b_next[l];            \
  }

  MC_WIDE_LOAD(0)
  MC_WIDE_STORE(0)
  __syncthreads();
  int buf = 0;
  for (int k0 = 0; k0 < K; k0 += MC_WBK) {
    const bool more = k0 + MC_WBK < K;
    if (more) MC_WIDE_LOAD(k0 + MC_WBK)
#pragma unroll
    for (int k = 0; k < MC_WBK; ++k) {
      T a[TM], b[TN];
#pragma unroll
      for (int i = 0; i < TM; ++i) a[i] = As[buf][k][wide_index<TM>(tx, i)];
#pragma unroll
      for (int j = 0; j < TN; ++j) b[j] = Bs[buf][k][wide_index<TN>(ty, j)];
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] += a[i] * b[j];
    }
    if (more) MC_WIDE_STORE(buf ^ 1)
    __syncthreads();
    buf ^= 1;
  }
#undef MC_WIDE_LOAD
#undef MC_WIDE_STORE

#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const i64 m = m0 + wide_index<TM>(tx, i);
    if (m >= rows) continue;
    const i64 n = m / g.OSP, sp = m - n * g.OSP;
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const i64 col = n0 + wide_index<TN>(ty, j);
      if (col >= cols) continue;
      const i64 oc = grp * g.OCg + col;
      y[(n * g.OC + oc) * g.OSP + sp] = apply_act(bias ? acc[i][j] + bias[oc] : acc[i][j], act);
    }
  }
}

// ------------------------------------------------------------------ entry points

#define MC_CONV_PARAMS                                                                                     \
  i64 N, i64 C, i64 D, i64 H, i64 W, i64 OC, i64 OD, i64 OH, i64 OW, int KD, int KH, int KW, int sd, int sh, \
      int sw, int pd, int ph, int pw, int dd, int dh, int dw, int groups
#define MC_CONV_GEOM conv_geom(N, C, D, H, W, OC, OD, OH, OW, KD, KH, KW, sd, sh, sw, pd, ph, pw, dd, dh, dw, groups)

// The tiled kernels come in three tile shapes, picked by the number of GEMM columns:
// bn16 (BM 128, BN 16), bn32 (BM 128, BN 32), bn64 (BM 64, BN 64).
#define MC_CONV_TILES(T, S, BM, BN, TAG)                                                                       \
  MC_EXPORT(conv_gemm_forward_##TAG##_##S, (const T* x, const T* w, const T* bias, T* y, MC_CONV_PARAMS, int act), \
            (conv_gemm<T, BM, BN, 0>(x, w, bias, y, MC_CONV_GEOM, act)))                                      \
  MC_EXPORT(conv_gemm_backward_input_##TAG##_##S, (const T* gy, const T* w, const T* bias, T* gx, MC_CONV_PARAMS), \
            (conv_gemm<T, BM, BN, 1>(gy, w, bias, gx, MC_CONV_GEOM, 0)))                                      \
  MC_EXPORT(conv_gemm_backward_weight_##TAG##_##S, (const T* x, const T* gy, T* out, MC_CONV_PARAMS, i64 splits), \
            (conv_gemm_weight<T, BM, BN>(x, gy, out, MC_CONV_GEOM, splits)))

// The wide-tile forward GEMM, BM x BN a block; in float32, two blocks an SM.
#define MC_CONV_WIDE(T, S, BM, BN)                                                                              \
  MC_EXPORT_BOUNDED(MC_THREADS, sizeof(T) == 4 ? 2 : 1, conv_gemm_wide_forward_m##BM##n##BN##_##S,             \
            (const T* x, const T* w, const T* bias, const int* taps, T* y, MC_CONV_PARAMS, int act),           \
            (conv_gemm_wide_forward<T, BM, BN>(x, w, bias, taps, y, MC_CONV_GEOM, act)))

// The tiled direct kernel for OCB output channels per group and RPT output rows per thread, capped
// at 64 registers so that 4 blocks fit an SM.
#define MC_CONV_DIRECT_TILED(T, S, OCB, RPT)                                                                    \
  MC_EXPORT_BOUNDED(MC_THREADS, 4, conv_direct_tiled_forward_oc##OCB##_rows##RPT##_##S,                        \
            (const T* x, const T* w, const T* bias, T* y, MC_CONV_PARAMS, int act, int tile_w),                \
            (conv_direct_tiled_forward<T, OCB, RPT>(x, w, bias, y, MC_CONV_GEOM, act, tile_w)))

#define MC_CONV(T, S)                                                                                          \
  MC_EXPORT(conv_direct_forward_##S, (const T* x, const T* w, const T* bias, T* y, MC_CONV_PARAMS, int act),   \
            (conv_direct_forward<T, 4>(x, w, bias, y, MC_CONV_GEOM, act)))                                    \
  MC_CONV_DIRECT_TILED(T, S, 1, 1)                                                                             \
  MC_CONV_DIRECT_TILED(T, S, 1, 2)                                                                             \
  MC_CONV_DIRECT_TILED(T, S, 1, 4)                                                                             \
  MC_CONV_DIRECT_TILED(T, S, 4, 1)                                                                             \
  MC_CONV_DIRECT_TILED(T, S, 4, 2)                                                                             \
  MC_CONV_DIRECT_TILED(T, S, 4, 4)                                                                             \
  MC_EXPORT(conv_direct_backward_input_##S, (const T* gy, const T* w, const T* bias, T* gx, MC_CONV_PARAMS),   \
            conv_direct_backward_input<T>(gy, w, bias, gx, MC_CONV_GEOM))                                      \
  MC_EXPORT(conv_direct_backward_weight_##S, (const T* x, const T* gy, T* out, MC_CONV_PARAMS, i64 splits),    \
            conv_direct_backward_weight<T>(x, gy, out, MC_CONV_GEOM, splits))                                  \
  MC_EXPORT(conv_reduce_splits_##S, (const T* ws, T* out, i64 count, i64 splits),                              \
            conv_reduce_splits<T>(ws, out, count, splits))                                                     \
  MC_EXPORT(channel_sum_partial_##S, (const T* gy, T* ws, i64 N, i64 C, i64 S_, i64 parts),                    \
            channel_sum_partial<T>(gy, ws, N, C, S_, parts))                                                   \
  MC_EXPORT(channel_sum_finalize_##S, (const T* ws, T* gb, i64 C, i64 parts), channel_sum_finalize<T>(ws, gb, C, parts)) \
  MC_CONV_TILES(T, S, 128, 16, bn16)                                                                           \
  MC_CONV_TILES(T, S, 128, 32, bn32)                                                                           \
  MC_CONV_TILES(T, S, 64, 64, bn64)                                                                            \
  MC_CONV_WIDE(T, S, 128, 32)                                                                                  \
  MC_CONV_WIDE(T, S, 128, 64)                                                                                  \
  MC_CONV_WIDE(T, S, 128, 128)                                                                                 \
  MC_CONV_WIDE(T, S, 64, 32)                                                                                   \
  MC_CONV_WIDE(T, S, 64, 64)                                                                                   \
  MC_CONV_WIDE(T, S, 64, 128)

MC_CONV(float, f32)
MC_CONV(double, f64)
