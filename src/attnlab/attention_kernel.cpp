// Causal self-attention over short windows on the CPU, forward and backward (attnlab/attention_kernel.py).
//
// PyTorch's fused CPU kernel (flash attention) is built for long sequences: it works in blocks,
// keeps no T x T matrix and recomputes the weights in the backward. Over 64 positions that costs
// more than it saves. Here each (batch row, head) is one task for one thread: the scores, the
// soft-max and the weighted sum stay in its cache, the weights are kept for the backward (T x T
// floats per head), and q, k and v are read in place from the fused projection (B, T, 3 * H * hd),
// the output written in place as (B, T, H * hd): no copies, no head split, no merge.
//
// The arithmetic is the textbook one, in float32: s = (q k^T) / sqrt(hd) over j <= i, p =
// softmax(s), out = p v; backward dv = p^T dout, dp = dout v^T, ds = p * (dp - rowsum(p * dp)) /
// sqrt(hd), dq = ds k, dk = ds^T q. Masked entries are never computed (only their zeros stored).
// Every task is summed in a fixed order, whatever the thread count, so results do not depend on it.
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

// One copy per instruction set, chosen when the library loads (GCC and Clang on x86-64). The AVX-512
// copy fuses each multiply-add into one rounding (FMA) and the AVX2 and default copies do not, so
// the last bits differ between CPUs with and without AVX-512, as MKL's matrix products do.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CLONES
#endif
#define INLINE inline __attribute__((always_inline))

namespace {

constexpr int W = 16;  // output columns per register block (one AVX-512 vector)
constexpr int R = 4;   // output rows per register block
constexpr int L = 16;  // lanes of the partial sums (fixed, so that the vector width does not change a sum)

// c[r * ldc + j] = alpha * sum_{k0 <= k < k1} A(r, k) * b[k * ldb + j], for rows r < ROWS and
// columns j < n, where A(r, k) = a[r * ars + k * acs] (any strides) and b's rows are contiguous.
template <int ROWS>
INLINE void block_rows(const float* a, int64_t ars, int64_t acs, const float* b, int64_t ldb, float* c,
                       int64_t ldc, int n, int k0, int k1, float alpha) {
  int j = 0;
  for (; j + 2 * W <= n; j += 2 * W) {
    float acc[ROWS][2 * W] = {};
    for (int k = k0; k < k1; ++k) {
      const float* bk = b + k * ldb + j;
      for (int r = 0; r < ROWS; ++r) {
        const float ar = a[r * ars + k * acs];
        for (int w = 0; w < 2 * W; ++w) acc[r][w] += ar * bk[w];
      }
    }
    for (int r = 0; r < ROWS; ++r)
      for (int w = 0; w < 2 * W; ++w) c[r * ldc + j + w] = alpha * acc[r][w];
  }
  for (; j + W <= n; j += W) {
    float acc[ROWS][W] = {};
    for (int k = k0; k < k1; ++k) {
      const float* bk = b + k * ldb + j;
      for (int r = 0; r < ROWS; ++r) {
        const float ar = a[r * ars + k * acs];
        for (int w = 0; w < W; ++w) acc[r][w] += ar * bk[w];
      }
    }
    for (int r = 0; r < ROWS; ++r)
      for (int w = 0; w < W; ++w) c[r * ldc + j + w] = alpha * acc[r][w];
  }
  for (; j < n; ++j)
    for (int r = 0; r < ROWS; ++r) {
      float s = 0.f;
      for (int k = k0; k < k1; ++k) s += a[r * ars + k * acs] * b[k * ldb + j];
      c[r * ldc + j] = alpha * s;
    }
}

// C (m x n) = alpha * A B in blocks of R rows; krange(first row, rows) gives the k range a block
// needs (the causal structure: the rest of A is zero there)
template <typename KRange>
INLINE void product(const float* a, int64_t ars, int64_t acs, const float* b, int64_t ldb, float* c, int64_t ldc,
                    int m, int n, float alpha, KRange krange) {
  for (int i0 = 0; i0 < m; i0 += R) {
    if (i0 + R <= m) {
      const auto [k0, k1] = krange(i0, R);
      block_rows<R>(a + i0 * ars, ars, acs, b, ldb, c + i0 * ldc, ldc, n, k0, k1, alpha);
    } else {
      for (int i = i0; i < m; ++i) {
        const auto [k0, k1] = krange(i, 1);
        block_rows<1>(a + i * ars, ars, acs, b, ldb, c + i * ldc, ldc, n, k0, k1, alpha);
      }
    }
  }
}

// a[j] = exp(a[j]) for a[j] <= 0: Cephes' expf (a degree-6 polynomial on a range-reduced
// argument, within 2 ulp), written so that the compiler vectorises it; below -87 gives exp(-87)
INLINE void exp_nonpositive(float* a, int n) {
  for (int j = 0; j < n; ++j) {
    const float x = a[j] < -87.0f ? -87.0f : a[j];
    const float t = x * 1.44269504088896341f + 0.5f;
    int32_t e = (int32_t)t;  // truncates toward zero, which for t <= 0.5 ...
    e -= (float)e > t;       // ... becomes floor(t)
    const float fe = (float)e;
    const float r = x - fe * 0.693359375f + fe * 2.12194440e-4f;  // x - e * ln 2, in two parts
    float y = 1.9875691500E-4f;
    y = y * r + 1.3981999507E-3f;
    y = y * r + 8.3334519073E-3f;
    y = y * r + 4.1665795894E-2f;
    y = y * r + 1.6666665459E-1f;
    y = y * r + 5.0000001201E-1f;
    y = y * r * r + r + 1.0f;
    a[j] = y * __builtin_bit_cast(float, (e + 127) << 23);  // times 2^e
  }
}

INLINE float dot(const float* a, const float* b, int n) {  // in L fixed lanes, then the lanes in order
  float s[L] = {};
  int j = 0;
  for (; j + L <= n; j += L)
    for (int t = 0; t < L; ++t) s[t] += a[j + t] * b[j + t];
  for (int t = 0; j + t < n; ++t) s[t] += a[j + t] * b[j + t];
  float total = 0.f;
  for (int t = 0; t < L; ++t) total += s[t];
  return total;
}

INLINE void softmax_row(float* row, int n, int T, const float* ones) {  // row[:n] soft-maxed, row[n:T] = 0
  float top = row[0];
  for (int j = 1; j < n; ++j) top = row[j] > top ? row[j] : top;
  for (int j = 0; j < n; ++j) row[j] -= top;
  exp_nonpositive(row, n);
  const float inv = 1.0f / dot(row, ones, n);
  for (int j = 0; j < n; ++j) row[j] *= inv;
  std::fill(row + n, row + T, 0.f);
}

INLINE void transpose(const float* x, int64_t ld, int T, int D, float* xt) {  // xt (D x T) = x (T x D)^T
  for (int i = 0; i < T; ++i)
    for (int d = 0; d < D; ++d) xt[d * T + i] = x[i * ld + d];
}

// One (batch row, head) forward: q, k, v rows at stride ld; out rows at stride ldo; p (T x T) gets
// the weights; kt (D x T) and ones (T) are the thread's scratch.
CLONES void attend(const float* q, const float* k, const float* v, int64_t ld, float* out, int64_t ldo, float* p,
                   float* kt, const float* ones, int T, int D, float scale) {
  transpose(k, ld, T, D, kt);
  for (int i0 = 0; i0 < T; i0 += R) {
    const int rows = std::min(R, T - i0);
    const int cols = std::min(T, (i0 + rows + W - 1) / W * W);  // the columns j <= i, rounded up to a block
    if (rows == R) block_rows<R>(q + i0 * ld, ld, 1, kt, T, p + i0 * T, T, cols, 0, D, scale);
    else for (int i = i0; i < T; ++i) block_rows<1>(q + i * ld, ld, 1, kt, T, p + i * T, T, cols, 0, D, scale);
    for (int i = i0; i < i0 + rows; ++i) softmax_row(p + i * T, i + 1, T, ones);
  }
  product(p, T, 1, v, ld, out, ldo, T, D, 1.0f, [](int i0, int rows) { return std::pair{0, i0 + rows}; });
}

// One (batch row, head) backward: dout rows at stride ldo; dq, dk, dv rows at stride ld; ds (T x T)
// and vt (D x T) are the thread's scratch.
CLONES void attend_backward(const float* q, const float* k, const float* v, int64_t ld, const float* dout,
                            int64_t ldo, const float* p, float* dq, float* dk, float* dv, float* ds, float* vt, int T,
                            int D, float scale) {
  const auto up_to_row = [](int i0, int rows) { return std::pair{0, i0 + rows}; };  // k <= i: causal rows
  const auto from_row = [T](int j0, int) { return std::pair{j0, T}; };              // i >= j: causal columns
  product(p, 1, T, dout, ldo, dv, ld, T, D, 1.0f, from_row);                        // dv = p^T dout
  transpose(v, ld, T, D, vt);
  for (int i0 = 0; i0 < T; i0 += R) {
    const int rows = std::min(R, T - i0);
    const int cols = std::min(T, (i0 + rows + W - 1) / W * W);
    for (int i = i0; i < i0 + rows; ++i) {
      float* row = ds + i * T;
      const float* pi = p + i * T;
      block_rows<1>(dout + i * ldo, ldo, 1, vt, T, row, T, cols, 0, D, 1.0f);  // dp = dout v^T
      const float delta = dot(pi, row, i + 1);
      for (int j = 0; j <= i; ++j) row[j] = pi[j] * (row[j] - delta) * scale;  // ds
      std::fill(row + i + 1, row + T, 0.f);
    }
  }
  product(ds, T, 1, k, ld, dq, ld, T, D, 1.0f, up_to_row);  // dq = ds k
  product(ds, 1, T, q, ld, dk, ld, T, D, 1.0f, from_row);   // dk = ds^T q
}

void check(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous(), name,
              " must be a contiguous float32 CPU tensor");
}

}  // namespace

// qkv (B, T, 3 * H * hd) -> (out (B, T, H * hd), weights (B, H, T, T), or an empty tensor unless keep)
std::vector<at::Tensor> forward(const at::Tensor& qkv, int64_t heads, bool keep) {
  check(qkv, "qkv");
  TORCH_CHECK(qkv.dim() == 3 && heads > 0 && qkv.size(2) % (3 * heads) == 0, "qkv must be (B, T, 3 * heads * hd)");
  const int64_t B = qkv.size(0), C3 = qkv.size(2), C = C3 / 3, H = heads;
  const int T = qkv.size(1), D = C / H;
  auto out = at::empty({B, T, C}, qkv.options());
  auto weights = at::empty(keep ? std::vector<int64_t>{B, H, T, T} : std::vector<int64_t>{0}, qkv.options());
  const float* x = qkv.data_ptr<float>();
  float* o = out.data_ptr<float>();
  float* all = keep ? weights.data_ptr<float>() : nullptr;
  const float scale = 1.0f / std::sqrt((float)D);
  at::parallel_for(0, B * H, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scratch((size_t)D * T + (keep ? 0 : (size_t)T * T)), ones(T, 1.0f);
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t b = bh / H, h = bh % H;
      const float* q = x + b * T * C3 + h * D;
      float* p = keep ? all + bh * T * T : scratch.data() + (size_t)D * T;
      attend(q, q + C, q + 2 * C, C3, o + b * T * C + h * D, C, p, scratch.data(), ones.data(), T, D, scale);
    }
  });
  return {out, weights};
}

// dout (B, T, H * hd), qkv, the weights forward kept -> dqkv (B, T, 3 * H * hd)
at::Tensor backward(const at::Tensor& dout, const at::Tensor& qkv, const at::Tensor& weights, int64_t heads) {
  check(dout, "dout");
  check(qkv, "qkv");
  check(weights, "weights");
  const int64_t B = qkv.size(0), C3 = qkv.size(2), C = C3 / 3, H = heads;
  const int T = qkv.size(1), D = C / H;
  TORCH_CHECK(dout.sizes() == at::IntArrayRef({B, T, C}) && weights.sizes() == at::IntArrayRef({B, H, T, T}),
              "dout and weights do not match qkv");
  auto dqkv = at::empty_like(qkv);
  const float* x = qkv.data_ptr<float>();
  const float* g = dout.data_ptr<float>();
  const float* p = weights.data_ptr<float>();
  float* dx = dqkv.data_ptr<float>();
  const float scale = 1.0f / std::sqrt((float)D);
  at::parallel_for(0, B * H, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scratch((size_t)T * T + (size_t)D * T);
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t b = bh / H, h = bh % H;
      const float* q = x + b * T * C3 + h * D;
      float* dq = dx + b * T * C3 + h * D;
      attend_backward(q, q + C, q + 2 * C, C3, g + b * T * C + h * D, C, p + bh * T * T, dq, dq + C, dq + 2 * C,
                      scratch.data(), scratch.data() + (size_t)T * T, T, D, scale);
    }
  });
  return dqkv;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "causal self-attention of a fused projection: (out, weights)");
  m.def("backward", &backward, "the gradient of the fused projection");
}
