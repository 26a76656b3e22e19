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
// Every sum runs in a fixed order (each product's over k in turn, with a fused multiply-add per
// term; each row sum in W fixed lanes, then the lanes in order), whatever the thread count and
// the instruction set (AVX-512 or AVX2), so results depend on neither (tested). The generic copy,
// for other CPUs, rounds as its compiler and CPU do (on x86 without FMA, each product apart).
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#define INLINE inline __attribute__((always_inline))
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define X86 1
#else
#define X86 0
#endif

namespace {

constexpr int W = 16;  // lanes of a row sum, and the column block the causal rows are rounded up to
constexpr int R = 4;   // output rows per register block
constexpr int NW = 2;  // vectors per row in the widest register block

// P floats at any alignment (P = 16: one AVX-512 register, 8: AVX2, 4: SSE2 or NEON), as GCC's
// vector extension; each instruction set's copy of the kernel below is built for its own P
template <int P>
struct Vec {
  typedef float f __attribute__((vector_size(P * sizeof(float)), aligned(alignof(float)), may_alias));
  typedef int32_t i __attribute__((vector_size(P * sizeof(int32_t))));
};
template <int P>
using vf = typename Vec<P>::f;
template <int P>
using vi = typename Vec<P>::i;

template <int P>
INLINE vf<P> load(const float* p) {
  return *reinterpret_cast<const vf<P>*>(p);
}
template <int P>
INLINE void store(float* p, vf<P> x) {
  *reinterpret_cast<vf<P>*>(p) = x;
}

// s + a * b, in one rounding in the copies for AVX2 and AVX-512 (their vector arithmetic fuses it too),
// so that a term left over past the vectors rounds as the vectors' terms do
template <int P>
INLINE float madd(float a, float b, float s) {
  if constexpr (P >= 8) return __builtin_fmaf(a, b, s);
  else return s + a * b;
}

// c[r * ldc + j] = alpha * sum_{k0 <= k < k1} A(r, k) * b[k * ldb + j] for r < ROWS, j < NV * P,
// held in registers, where A(r, k) = a[r * ars + k * acs] (any strides) and b's rows are contiguous
template <int P, int ROWS, int NV>
INLINE void tile(const float* a, int64_t ars, int64_t acs, const float* b, int64_t ldb, float* c, int64_t ldc,
                 int k0, int k1, float alpha) {
  vf<P> acc[ROWS][NV] = {};
  for (int k = k0; k < k1; ++k) {
    vf<P> bk[NV];
    for (int v = 0; v < NV; ++v) bk[v] = load<P>(b + k * ldb + v * P);
    for (int r = 0; r < ROWS; ++r) {
      const float ar = a[r * ars + k * acs];
      for (int v = 0; v < NV; ++v) acc[r][v] += ar * bk[v];
    }
  }
  for (int r = 0; r < ROWS; ++r)
    for (int v = 0; v < NV; ++v) store<P>(c + r * ldc + v * P, alpha * acc[r][v]);
}

// The same for columns j < n, in tiles. Each sum runs over k in order however the columns are
// blocked, so neither the blocking nor P changes a bit.
template <int P, int ROWS>
INLINE void block_rows(const float* a, int64_t ars, int64_t acs, const float* b, int64_t ldb, float* c,
                       int64_t ldc, int n, int k0, int k1, float alpha) {
  int j = 0;
  for (; j + NW * P <= n; j += NW * P) tile<P, ROWS, NW>(a, ars, acs, b + j, ldb, c + j, ldc, k0, k1, alpha);
  for (; j + P <= n; j += P) tile<P, ROWS, 1>(a, ars, acs, b + j, ldb, c + j, ldc, k0, k1, alpha);
  for (; j < n; ++j)
    for (int r = 0; r < ROWS; ++r) {
      float s = 0.f;
      for (int k = k0; k < k1; ++k) s = madd<P>(a[r * ars + k * acs], b[k * ldb + j], s);
      c[r * ldc + j] = alpha * s;
    }
}

// C (m x n) = alpha * A B in blocks of R rows; krange(first row, rows) gives the k range a block
// needs (the causal structure: the rest of A is zero there)
template <int P, typename KRange>
INLINE void product(const float* a, int64_t ars, int64_t acs, const float* b, int64_t ldb, float* c, int64_t ldc,
                    int m, int n, float alpha, KRange krange) {
  for (int i0 = 0; i0 < m; i0 += R) {
    if (i0 + R <= m) {
      const auto [k0, k1] = krange(i0, R);
      block_rows<P, R>(a + i0 * ars, ars, acs, b, ldb, c + i0 * ldc, ldc, n, k0, k1, alpha);
    } else {
      for (int i = i0; i < m; ++i) {
        const auto [k0, k1] = krange(i, 1);
        block_rows<P, 1>(a + i * ars, ars, acs, b, ldb, c + i * ldc, ldc, n, k0, k1, alpha);
      }
    }
  }
}

// Rows i0 <= i < i0 + rows (at most R) of alpha * A Bt, the scores' and dp's shape: A's rows at
// stride lda, Bt (D x T) the right side transposed, c's rows T apart. Only the columns j <= i are
// needed; those up to the next multiple of W (or T) are computed, which the soft-max reads.
template <int P>
INLINE void causal_rows(const float* a, int64_t lda, const float* bt, float* c, int i0, int rows, int T, int D,
                        float alpha) {
  const int cols = std::min(T, (i0 + rows + W - 1) / W * W);
  if (rows == R) block_rows<P, R>(a, lda, 1, bt, T, c, T, cols, 0, D, alpha);
  else for (int r = 0; r < rows; ++r) block_rows<P, 1>(a + r * lda, lda, 1, bt, T, c + r * T, T, cols, 0, D, alpha);
}

// exp(x) for x <= 0, lane by lane: Cephes' expf (a degree-6 polynomial on a range-reduced
// argument, within 2 ulp); below -87 gives exp(-87)
template <int P>
INLINE vf<P> exp_nonpositive(vf<P> x) {
  x = x < -87.0f ? vf<P>{} - 87.0f : x;
  const vf<P> t = x * 1.44269504088896341f + 0.5f;
  vi<P> e = __builtin_convertvector(t, vi<P>);    // truncates toward zero, which for t <= 0.5 ...
  e += __builtin_convertvector(e, vf<P>) > t;     // ... becomes floor(t) (a true comparison is -1)
  const vf<P> fe = __builtin_convertvector(e, vf<P>);
  const vf<P> r = x - fe * 0.693359375f + fe * 2.12194440e-4f;  // x - e * ln 2, in two parts
  vf<P> y = vf<P>{} + 1.9875691500E-4f;
  y = y * r + 1.3981999507E-3f;
  y = y * r + 8.3334519073E-3f;
  y = y * r + 4.1665795894E-2f;
  y = y * r + 1.6666665459E-1f;
  y = y * r + 5.0000001201E-1f;
  y = y * r * r + r + 1.0f;
  return y * reinterpret_cast<vf<P>>((e + 127) << 23);  // times 2^e
}

// sum_j a[j] * b[j] in W fixed lanes, then the lanes in order
template <int P>
INLINE float dot(const float* a, const float* b, int n) {
  constexpr int U = W / P;  // vectors per W lanes
  vf<P> s[U] = {};
  int j = 0;
  for (; j + W <= n; j += W)
    for (int u = 0; u < U; ++u) s[u] += load<P>(a + j + u * P) * load<P>(b + j + u * P);
  float lanes[W];
  for (int u = 0; u < U; ++u) store<P>(lanes + u * P, s[u]);
  for (int t = 0; j + t < n; ++t) lanes[t] = madd<P>(a[j + t], b[j + t], lanes[t]);
  float total = 0.f;
  for (int t = 0; t < W; ++t) total += lanes[t];
  return total;
}

// row[:n] soft-maxed in place and row[n:T] = 0, where row[n:] holds finite numbers up to the next
// multiple of W (or T). The sum runs in W fixed lanes, then the lanes in order.
template <int P>
INLINE void softmax_row(float* row, int n, int T) {
  constexpr int U = W / P;  // vectors per W lanes
  float top = row[0];
  int j = 0;
  if (n >= P) {  // the largest in P lanes, then the lanes' largest (a maximum is exact: any order gives it)
    vf<P> most = load<P>(row);
    for (j = P; j + P <= n; j += P) {
      const vf<P> x = load<P>(row + j);
      most = x > most ? x : most;
    }
    for (int t = 0; t < P; ++t) top = most[t] > top ? most[t] : top;
  }
  for (; j < n; ++j) top = row[j] > top ? row[j] : top;
  vf<P> sum[U] = {};
  for (j = 0; j + W <= n; j += W)
    for (int u = 0; u < U; ++u) {
      const vf<P> e = exp_nonpositive<P>(load<P>(row + j + u * P) - top);
      store<P>(row + j + u * P, e);
      sum[u] += e;
    }
  if (j < n) {  // the last n - j < W: W lanes, in place where the row has room, those past n zeroed
    float rest[W] = {};
    float* at = j + W <= T ? row + j : rest;
    if (at == rest) std::copy(row + j, row + n, rest);
    for (int u = 0; u < U; ++u) {
      vi<P> lane;
      for (int t = 0; t < P; ++t) lane[t] = u * P + t;
      const vf<P> e = lane < n - j ? exp_nonpositive<P>(load<P>(at + u * P) - top) : vf<P>{};
      sum[u] += e;
      store<P>(at + u * P, e);
    }
    if (at == rest) std::copy(rest, rest + (n - j), row + j);
  }
  float total = 0.f;
  for (int u = 0; u < U; ++u)
    for (int t = 0; t < P; ++t) total += sum[u][t];
  const float inv = 1.0f / total;
  for (j = 0; j + P <= n; j += P) store<P>(row + j, load<P>(row + j) * inv);
  for (; j < n; ++j) row[j] *= inv;
  std::fill(row + n, row + T, 0.f);
}

INLINE void transpose(const float* x, int64_t ld, int T, int D, float* xt) {  // xt (D x T) = x (T x D)^T
  for (int i = 0; i < T; ++i)
    for (int d = 0; d < D; ++d) xt[d * T + i] = x[i * ld + d];
}

// One (batch row, head) forward: q, k, v rows at stride ld; out rows at stride ldo; p (T x T) gets
// the weights; kt (D x T) is the thread's scratch.
template <int P>
INLINE void attend(const float* q, const float* k, const float* v, int64_t ld, float* out, int64_t ldo, float* p,
                   float* kt, int T, int D, float scale) {
  transpose(k, ld, T, D, kt);
  for (int i0 = 0; i0 < T; i0 += R) {
    const int rows = std::min(R, T - i0);
    causal_rows<P>(q + i0 * ld, ld, kt, p + i0 * T, i0, rows, T, D, scale);
    for (int i = i0; i < i0 + rows; ++i) softmax_row<P>(p + i * T, i + 1, T);
  }
  product<P>(p, T, 1, v, ld, out, ldo, T, D, 1.0f, [](int i0, int rows) { return std::pair{0, i0 + rows}; });
}

// One (batch row, head) backward: dout rows at stride ldo; dq, dk, dv rows at stride ld; ds (T x T)
// and vt (D x T) are the thread's scratch.
template <int P>
INLINE void attend_backward(const float* q, const float* k, const float* v, int64_t ld, const float* dout,
                            int64_t ldo, const float* p, float* dq, float* dk, float* dv, float* ds, float* vt, int T,
                            int D, float scale) {
  const auto up_to_row = [](int i0, int rows) { return std::pair{0, i0 + rows}; };  // k <= i: causal rows
  const auto from_row = [T](int j0, int) { return std::pair{j0, T}; };              // i >= j: causal columns
  product<P>(p, 1, T, dout, ldo, dv, ld, T, D, 1.0f, from_row);                     // dv = p^T dout
  transpose(v, ld, T, D, vt);
  for (int i0 = 0; i0 < T; i0 += R) {
    const int rows = std::min(R, T - i0);
    causal_rows<P>(dout + i0 * ldo, ldo, vt, ds + i0 * T, i0, rows, T, D, 1.0f);  // dp = dout v^T
    for (int i = i0; i < i0 + rows; ++i) {
      float* row = ds + i * T;
      const float* pi = p + i * T;
      const float delta = dot<P>(pi, row, i + 1);
      for (int j = 0; j <= i; ++j) row[j] = pi[j] * (row[j] - delta) * scale;  // ds
      std::fill(row + i + 1, row + T, 0.f);
    }
  }
  product<P>(ds, T, 1, k, ld, dq, ld, T, D, 1.0f, up_to_row);  // dq = ds k
  product<P>(ds, 1, T, q, ld, dk, ld, T, D, 1.0f, from_row);   // dk = ds^T q
}

// One copy of the kernel per instruction set, built for it; the best this CPU has is chosen when
// the library loads. The AVX2 copy asks for FMA too (every AVX2 CPU has it), so it rounds as the
// AVX-512 one does.
#define ATTNLAB_COPY(name, target, P)                                                                             \
  target void attend_##name(const float* q, const float* k, const float* v, int64_t ld, float* out, int64_t ldo,  \
                            float* p, float* kt, int T, int D, float scale) {                                     \
    attend<P>(q, k, v, ld, out, ldo, p, kt, T, D, scale);                                                         \
  }                                                                                                               \
  target void backward_##name(const float* q, const float* k, const float* v, int64_t ld, const float* dout,      \
                              int64_t ldo, const float* p, float* dq, float* dk, float* dv, float* ds, float* vt, \
                              int T, int D, float scale) {                                                        \
    attend_backward<P>(q, k, v, ld, dout, ldo, p, dq, dk, dv, ds, vt, T, D, scale);                               \
  }

#if X86
ATTNLAB_COPY(avx512, __attribute__((target("avx512f,fma"))), 16)
ATTNLAB_COPY(avx2, __attribute__((target("avx2,fma"))), 8)
#endif
ATTNLAB_COPY(generic, , 4)

struct Copy {
  const char* name;
  decltype(&attend_generic) forward;
  decltype(&backward_generic) backward;
  bool (*supported)();
};

const Copy copies[] = {
#if X86
    {"avx512f", attend_avx512, backward_avx512, [] { return bool(__builtin_cpu_supports("avx512f")); }},
    {"avx2", attend_avx2, backward_avx2,
     [] { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }},
#endif
    {"generic", attend_generic, backward_generic, [] { return true; }},
};

const Copy* chosen = [] {
#if X86
  __builtin_cpu_init();
#endif
  for (const Copy& c : copies)
    if (c.supported()) return &c;
  return &copies[std::size(copies) - 1];
}();

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
  const auto attend_one = chosen->forward;
  at::parallel_for(0, B * H, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scratch((size_t)D * T + (keep ? 0 : (size_t)T * T));
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t b = bh / H, h = bh % H;
      const float* q = x + b * T * C3 + h * D;
      float* p = keep ? all + bh * T * T : scratch.data() + (size_t)D * T;
      attend_one(q, q + C, q + 2 * C, C3, o + b * T * C + h * D, C, p, scratch.data(), T, D, scale);
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
  const auto backward_one = chosen->backward;
  at::parallel_for(0, B * H, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scratch((size_t)T * T + (size_t)D * T);
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t b = bh / H, h = bh % H;
      const float* q = x + b * T * C3 + h * D;
      float* dq = dx + b * T * C3 + h * D;
      backward_one(q, q + C, q + 2 * C, C3, g + b * T * C + h * D, C, p + bh * T * T, dq, dq + C, dq + 2 * C,
                   scratch.data(), scratch.data() + (size_t)T * T, T, D, scale);
    }
  });
  return dqkv;
}

// The instruction sets this CPU can run the kernel with, best first; and the one in use
std::vector<std::string> copies_supported() {
  std::vector<std::string> names;
  for (const Copy& c : copies)
    if (c.supported()) names.emplace_back(c.name);
  return names;
}

std::string copy_in_use() { return chosen->name; }

// Run the kernel with another copy this CPU supports (for tests: the copies' results agree)
void use_copy(const std::string& name) {
  for (const Copy& c : copies)
    if (name == c.name && c.supported()) {
      chosen = &c;
      return;
    }
  TORCH_CHECK(false, "this CPU cannot run the kernel's ", name, " copy");
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "causal self-attention of a fused projection: (out, weights)");
  m.def("backward", &backward, "the gradient of the fused projection");
  m.def("copies", &copies_supported, "the instruction sets this CPU can run the kernel with, best first");
  m.def("copy", &copy_in_use, "the instruction set in use");
  m.def("use_copy", &use_copy, "run the kernel with another copy this CPU supports");
}
