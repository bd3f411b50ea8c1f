// The risk kernels on the GPU: the risk stream's standard normals (the same header as the CPU,
// tradecore/risk/philox.hpp; one thread per Philox block, a path's pair of variables) and the
// Monte-Carlo VaR losses (the formulas of tradecore/risk/montecarlo_kernels.hpp; one thread per
// path, chunks of paths so that the per-underlying buffers stay bounded).
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "device.cuh"
#include "tradecore/cuda.hpp"
#include "tradecore/risk/montecarlo.hpp"
#include "tradecore/risk/montecarlo_kernels.hpp"
#include "tradecore/risk/normals.hpp"
#include "tradecore/risk/philox.hpp"

namespace tradecore::cuda {
namespace {

// out is paths x factors row-major; block b = i * pairs + p covers variables 2p and 2p + 1 of
// path first_path + i (only 2p when factors is odd and p is the last pair).
__global__ void philox_normals_kernel(std::uint64_t seed, std::uint64_t first_path,
                                      std::uint64_t paths, std::uint64_t factors,
                                      double* __restrict__ out) {
  const std::uint64_t pairs = (factors + 1) / 2;
  const std::uint64_t b = static_cast<std::uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (b >= paths * pairs) return;
  const std::uint64_t i = b / pairs, p = b % pairs, j = 2 * p;
  double z[2];
  risk::box_muller(risk::normal_block(seed, first_path + i, static_cast<std::uint32_t>(j)), z);
  double* row = out + i * factors;
  row[j] = z[0];
  if (j + 1 < factors) row[j + 1] = z[1];
}

// Monte-Carlo, one thread per path of a chunk of C paths starting at path index `first`
// (relative to the run). Step 1: the path's normals, z[f * C + i].
__global__ void mc_normals_kernel(std::uint64_t seed, std::uint64_t first_path, std::uint64_t C,
                                  std::uint64_t nb, std::uint64_t factors, double* __restrict__ z) {
  const std::uint64_t i = static_cast<std::uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= nb) return;
  double pair[2];
  for (std::uint64_t j = 0; j < factors; j += 2) {
    risk::box_muller(risk::normal_block(seed, first_path + i, static_cast<std::uint32_t>(j)), pair);
    z[j * C + i] = pair[0];
    if (j + 1 < factors) z[(j + 1) * C + i] = pair[1];
  }
}

// Step 2: correlated log-spots x[u * C + i], spots S and (vol shocks) volatilities sig and their
// logs lsig.
struct McScenarioArgs {
  std::uint64_t n, C, nb, vol_base, t_base;
  int dof;
  const double* L;          // n x n
  const double* ls;         // ln S + drift, n
  const double* vs;         // sigma sqrt(h), n
  const double* lv;         // ln sigma - nu^2 h / 2, n (vol shocks)
  const double* vol_scale;  // nu sqrt(h), n
  const double* rho;
  const double* rho_c;
  bool vols;
};

__global__ void mc_scenario_kernel(McScenarioArgs a, const double* __restrict__ z,
                                   double* __restrict__ x, double* __restrict__ S,
                                   double* __restrict__ sig, double* __restrict__ lsig) {
  const std::uint64_t i = static_cast<std::uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= a.nb) return;
  double zs = 1.0;
  if (a.dof > 0) {
    double W = 0.0;
    for (int k = 0; k < a.dof; ++k) {
      const double v = z[(a.t_base + k) * a.C + i];
      W += v * v;
    }
    zs = sqrt(static_cast<double>(a.dof - 2) / W);
  }
  for (std::uint64_t u = 0; u < a.n; ++u) {
    double Z = 0.0;
    for (std::uint64_t k = 0; k <= u; ++k) Z += a.L[u * a.n + k] * z[k * a.C + i];
    if (a.vols) {
      double lv =
          a.lv[u] + a.vol_scale[u] * (a.rho[u] * Z + a.rho_c[u] * z[(a.vol_base + u) * a.C + i]);
      lv = lv < risk::kMcLnVolMin ? risk::kMcLnVolMin
                                  : (lv > risk::kMcLnVolMax ? risk::kMcLnVolMax : lv);
      lsig[u * a.C + i] = lv;
      sig[u * a.C + i] = exp(lv);
    }
    const double xv = a.ls[u] + a.vs[u] * (Z * zs);
    x[u * a.C + i] = xv;
    S[u * a.C + i] = exp(xv);
  }
}

// Step 3: full revaluation, every instrument and its positions (grouped by instrument in the
// CPU's order), accumulated into out[p * paths + first + i] (zeroed before), then negated.
struct McRevalueArgs {
  std::uint64_t m, C, nb, paths, first, portfolios;
  const risk::McPrepared* prep;
  const std::uint64_t* start;     // m + 1
  const std::int32_t* portfolio;  // by CSR order
  const double* units;
  bool vols;
};

__global__ void mc_revalue_kernel(McRevalueArgs a, const double* __restrict__ x,
                                  const double* __restrict__ S, const double* __restrict__ sig,
                                  const double* __restrict__ lsig, double* __restrict__ out) {
  const std::uint64_t i = static_cast<std::uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= a.nb) return;
  for (std::uint64_t k = 0; k < a.m; ++k) {
    if (a.start[k] == a.start[k + 1]) continue;
    const risk::McPrepared& p = a.prep[k];
    const std::uint64_t at = static_cast<std::uint64_t>(p.u) * a.C + i;
    double v;
    switch (p.kind) {
      case risk::kMcEquity:
        v = S[at] - p.vnow;
        break;
      case risk::kMcEuropean:
        v = a.vols ? risk::mc_european_vol(p, x[at], S[at], sig[at])
                   : risk::mc_european(p, x[at], S[at]);
        break;
      case risk::kMcGrid:
        v = p.gny > 1 ? risk::mc_grid2(p, x[at], S[at], lsig[at]) : risk::mc_grid(p, x[at], S[at]);
        break;
      default:
        v = risk::mc_intrinsic(p, S[at]);
        break;
    }
    for (std::uint64_t q = a.start[k]; q < a.start[k + 1]; ++q) {
      double* dst = out + static_cast<std::uint64_t>(a.portfolio[q]) * a.paths + a.first + i;
      *dst += a.units[q] * v;
    }
  }
  for (std::uint64_t pf = 0; pf < a.portfolios; ++pf) {
    double* dst = out + pf * a.paths + a.first + i;
    *dst = -*dst;
  }
}

// Step 3': delta-gamma(-vega-theta) losses.
struct McDeltaGammaArgs {
  std::uint64_t n, C, nb, paths, first, portfolios;
  double h;
  const double* spot;
  const double* vol;
  const double* delta;
  const double* gamma;
  const double* vega;
  const double* theta;
  bool vols;
};

__global__ void mc_delta_gamma_kernel(McDeltaGammaArgs a, const double* __restrict__ S,
                                      const double* __restrict__ sig, double* __restrict__ out) {
  const std::uint64_t i = static_cast<std::uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= a.nb) return;
  for (std::uint64_t pf = 0; pf < a.portfolios; ++pf) {
    // In the CPU's order: theta, then per underlying the delta-gamma and the vega term.
    double acc = a.theta[pf] * a.h;
    for (std::uint64_t u = 0; u < a.n; ++u) {
      const double d = a.delta[pf * a.n + u], g = 0.5 * a.gamma[pf * a.n + u];
      const double dS = S[u * a.C + i] - a.spot[u];
      acc += dS * (d + g * dS);
      if (a.vols) acc += a.vega[pf * a.n + u] * (sig[u * a.C + i] - a.vol[u]);
    }
    out[pf * a.paths + a.first + i] = -acc;
  }
}

template <class T>
void upload(detail::DeviceBuffer<T>& d, const T* h, std::size_t count) {
  if (count)
    detail::check(cudaMemcpy(d.p, h, count * sizeof(T), cudaMemcpyHostToDevice), "copy to device");
}

}  // namespace

void monte_carlo_losses(const risk::McMarket& mk, const risk::McInstruments& in,
                        const risk::McPositions& pos, const risk::McConfig& cfg,
                        const risk::McLosses& out) {
  risk::validate_monte_carlo(mk, in, pos, cfg);
  if ((cfg.full && !out.full) || (cfg.delta_gamma && !out.delta_gamma))
    throw std::invalid_argument("losses: missing output");
  if (!available()) throw Error("CUDA is not available: " + describe());
  const std::size_t n = mk.n, P = pos.portfolios, paths = cfg.paths;
  const double h = cfg.horizon, sqh = std::sqrt(h);
  const bool vols = mk.vol_of_vol != nullptr;
  const int dof = cfg.student_t_dof;
  const std::size_t vol_base = n, t_base = n + (vols ? n : 0);
  const std::size_t factors = t_base + static_cast<std::size_t>(dof);

  // Market constants, as the CPU computes them.
  std::vector<double> ls(n), vs(n), lv(n, 0.0), vol_scale(n, 0.0), rho(n, 0.0), rho_c(n, 0.0);
  for (std::size_t u = 0; u < n; ++u) {
    ls[u] = std::log(mk.spot[u]) + -0.5 * mk.vol[u] * mk.vol[u] * h;
    vs[u] = mk.vol[u] * sqh;
    if (vols) {
      const double nu = mk.vol_of_vol[u];
      lv[u] = std::log(mk.vol[u]) + -0.5 * nu * nu * h;
      vol_scale[u] = nu * sqh;
      rho[u] = mk.spot_vol_corr ? mk.spot_vol_corr[u] : 0.0;
      rho_c[u] = std::sqrt(std::max(1.0 - rho[u] * rho[u], 0.0));
    }
  }
  detail::DeviceBuffer<double> d_L(n * n), d_ls(n), d_vs(n), d_vol(n), d_spot(n), d_vd(n), d_vsc(n),
      d_rho(n), d_rhoc(n);
  upload(d_L, mk.cholesky, n * n);
  upload(d_ls, ls.data(), n);
  upload(d_vs, vs.data(), n);
  upload(d_vol, mk.vol, n);
  upload(d_spot, mk.spot, n);
  upload(d_vd, lv.data(), n);
  upload(d_vsc, vol_scale.data(), n);
  upload(d_rho, rho.data(), n);
  upload(d_rhoc, rho_c.data(), n);

  // Instruments (grids on the device) and positions grouped by instrument.
  detail::DeviceBuffer<double> d_grid(in.grid_total);
  if (in.grid_total) upload(d_grid, in.grid_values, in.grid_total);
  std::vector<risk::McPrepared> prep(in.m);
  for (std::size_t k = 0; k < in.m; ++k)
    prep[k] = risk::mc_prepare(
        mk, in, k, h, in.kind[k] == risk::kMcGrid ? d_grid.p + in.grid_offset[k] : nullptr);
  std::vector<std::uint64_t> start(in.m + 1, 0);
  for (std::size_t j = 0; j < pos.count; ++j) ++start[pos.instrument[j] + 1];
  for (std::size_t k = 0; k < in.m; ++k) start[k + 1] += start[k];
  std::vector<std::int32_t> pf(pos.count);
  std::vector<double> units(pos.count);
  {
    std::vector<std::uint64_t> fill(start.begin(), start.end() - 1);
    for (std::size_t j = 0; j < pos.count; ++j) {
      const std::uint64_t q = fill[pos.instrument[j]]++;
      pf[q] = pos.portfolio[j];
      units[q] = pos.units[j];
    }
  }
  detail::DeviceBuffer<risk::McPrepared> d_prep(in.m);
  detail::DeviceBuffer<std::uint64_t> d_start(in.m + 1);
  detail::DeviceBuffer<std::int32_t> d_pf(pos.count);
  detail::DeviceBuffer<double> d_units(pos.count);
  upload(d_prep, prep.data(), in.m);
  upload(d_start, start.data(), in.m + 1);
  upload(d_pf, pf.data(), pos.count);
  upload(d_units, units.data(), pos.count);
  const bool dg = cfg.delta_gamma;
  detail::DeviceBuffer<double> d_delta(dg ? P * n : 0), d_gamma(dg ? P * n : 0),
      d_vega(dg && vols ? P * n : 0), d_theta(dg ? P : 0);
  if (dg) {
    upload(d_delta, pos.dg_delta, P * n);
    upload(d_gamma, pos.dg_gamma, P * n);
    if (vols) upload(d_vega, pos.dg_vega, P * n);
    upload(d_theta, pos.dg_theta, P);
  }

  // Paths per chunk: the normals and the per-underlying buffers within ~256 MiB each.
  const std::size_t width = std::max(factors, n);
  const std::size_t C =
      std::min<std::size_t>(paths, std::max<std::size_t>(1, (std::size_t{1} << 25) / width));
  detail::DeviceBuffer<double> d_z(factors * C), d_x(n * C), d_S(n * C), d_sig(vols ? n * C : 0),
      d_lsig(vols ? n * C : 0);
  detail::DeviceBuffer<double> d_full(cfg.full ? P * paths : 0), d_dg(dg ? P * paths : 0);
  if (cfg.full) detail::check(cudaMemset(d_full.p, 0, P * paths * sizeof(double)), "memset");

  const int threads = 256;
  for (std::size_t first = 0; first < paths; first += C) {
    const std::size_t nb = std::min(C, paths - first);
    const auto grid = static_cast<unsigned>((nb + threads - 1) / threads);
    mc_normals_kernel<<<grid, threads>>>(cfg.seed, cfg.first_path + first, C, nb, factors, d_z.p);
    detail::check(cudaGetLastError(), "launch");
    McScenarioArgs sa{n,      C,      nb,     vol_base, t_base,  dof,      d_L.p,
                      d_ls.p, d_vs.p, d_vd.p, d_vsc.p,  d_rho.p, d_rhoc.p, vols};
    mc_scenario_kernel<<<grid, threads>>>(sa, d_z.p, d_x.p, d_S.p, d_sig.p, d_lsig.p);
    detail::check(cudaGetLastError(), "launch");
    if (cfg.full) {
      McRevalueArgs ra{in.m, C, nb, paths, first, P, d_prep.p, d_start.p, d_pf.p, d_units.p, vols};
      mc_revalue_kernel<<<grid, threads>>>(ra, d_x.p, d_S.p, d_sig.p, d_lsig.p, d_full.p);
      detail::check(cudaGetLastError(), "launch");
    }
    if (dg) {
      McDeltaGammaArgs ga{n,        C,       nb,        paths,     first,    P,         h,
                          d_spot.p, d_vol.p, d_delta.p, d_gamma.p, d_vega.p, d_theta.p, vols};
      mc_delta_gamma_kernel<<<grid, threads>>>(ga, d_S.p, d_sig.p, d_dg.p);
      detail::check(cudaGetLastError(), "launch");
    }
  }
  detail::check(cudaDeviceSynchronize(), "kernel");
  if (cfg.full)
    detail::check(
        cudaMemcpy(out.full, d_full.p, P * paths * sizeof(double), cudaMemcpyDeviceToHost),
        "copy back");
  if (dg)
    detail::check(
        cudaMemcpy(out.delta_gamma, d_dg.p, P * paths * sizeof(double), cudaMemcpyDeviceToHost),
        "copy back");
}

void philox_normals(std::uint64_t seed, std::uint64_t first_path, std::uint64_t paths,
                    std::uint64_t factors, double* out) {
  risk::validate_normals(first_path, paths, factors);
  if (!available()) throw Error("CUDA is not available: " + describe());
  const std::uint64_t n = paths * factors;
  const std::uint64_t blocks = paths * ((factors + 1) / 2);
  detail::DeviceBuffer<double> d_out(n);
  const int threads = 256;
  const auto grid = static_cast<unsigned>((blocks + threads - 1) / threads);
  philox_normals_kernel<<<grid, threads>>>(seed, first_path, paths, factors, d_out.p);
  detail::check(cudaGetLastError(), "launch");
  detail::check(cudaDeviceSynchronize(), "kernel");
  detail::check(cudaMemcpy(out, d_out.p, n * sizeof(double), cudaMemcpyDeviceToHost), "copy back");
}

}  // namespace tradecore::cuda
