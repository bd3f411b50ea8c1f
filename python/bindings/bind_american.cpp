#include <pybind11/stl.h>

#include <array>
#include <string>
#include <vector>

#include "batch.hpp"
#include "common.hpp"
#include "tradecore/pricing/american.hpp"

namespace tradecore::bindings {

namespace {

constexpr std::array<const char*, 6> kAmericanOutputs = {"price", "theta", "delta",
                                                         "gamma", "vega",  "rho"};

}  // namespace

void bind_american(py::module_& m) {
  py::register_exception<tradecore::UnsupportedRegime>(m, "UnsupportedRegime", m.attr("Error"));

  m.def(
      "american",
      [](const py::array& S, const py::array& K, const py::array& T, const py::array& r,
         const py::array& q, const py::array& sigma, const py::array& type,
         const std::string& method, const std::vector<std::string>& outputs, int steps,
         int alo_nodes, int alo_quadrature, int alo_iterations, int alo_price_quadrature,
         const std::string& alo_equation, const std::string& alo_rule, int boundary_points,
         int threads, bool double_boundary_tree) {
        const pricing::EuropeanBatch b = european_batch(S, K, T, r, q, sigma, type);
        const py::ssize_t n = static_cast<py::ssize_t>(b.n);

        pricing::AmericanSettings s;
        s.method = pricing::american_method_from_name(method.c_str());
        s.steps = steps;
        s.alo_nodes = alo_nodes;
        s.alo_quadrature = alo_quadrature;
        s.alo_iterations = alo_iterations;
        s.alo_price_quadrature = alo_price_quadrature;
        s.double_boundary_tree = double_boundary_tree;
        if (alo_equation == "fp_a") {
          s.alo_equation = pricing::AloEquation::FpA;
        } else if (alo_equation == "fp_b") {
          s.alo_equation = pricing::AloEquation::FpB;
        } else {
          throw std::invalid_argument("alo_equation must be 'fp_a' or 'fp_b' (got '" +
                                      alo_equation + "')");
        }
        if (alo_rule == "tanh_sinh") {
          s.alo_rule = pricing::AloRule::TanhSinh;
        } else if (alo_rule == "gauss_legendre") {
          s.alo_rule = pricing::AloRule::GaussLegendre;
        } else {
          throw std::invalid_argument("alo_rule must be 'tanh_sinh' or 'gauss_legendre' (got '" +
                                      alo_rule + "')");
        }
        pricing::validate(s);
        if (boundary_points < 0) throw std::invalid_argument("boundary_points must be >= 0");

        py::dict result;
        double* slots[6] = {};
        for (const auto& name : outputs) {
          std::size_t k = 0;
          while (k < kAmericanOutputs.size() && name != kAmericanOutputs[k]) ++k;
          if (k == kAmericanOutputs.size())
            throw std::invalid_argument("unknown output '" + name + "'");
          if (slots[k]) continue;
          py::array_t<double> a(n);
          slots[k] = a.mutable_data();
          result[kAmericanOutputs[k]] = a;
        }
        py::array_t<std::uint8_t> status(n);
        result["status"] = status;
        py::array_t<std::uint8_t> engine(n);
        result["engine"] = engine;
        pricing::AmericanOut out;
        out.price = slots[0];
        out.theta = slots[1];
        out.delta = slots[2];
        out.gamma = slots[3];
        out.vega = slots[4];
        out.rho = slots[5];
        out.status = status.mutable_data();
        out.engine = engine.mutable_data();
        if (boundary_points > 0) {
          const auto P = static_cast<py::ssize_t>(boundary_points);
          py::array_t<double> bt({n, P}), bv({n, P});
          out.boundary_time = bt.mutable_data();
          out.boundary = bv.mutable_data();
          out.boundary_points = static_cast<std::size_t>(boundary_points);
          result["boundary_time"] = bt;
          result["boundary"] = bv;
        }
        std::size_t failed;
        {
          py::gil_scoped_release release;
          failed = pricing::american(b, out, s, threads);
        }
        return py::make_tuple(result, failed);
      },
      py::arg("S"), py::arg("K"), py::arg("T"), py::arg("r"), py::arg("q"), py::arg("sigma"),
      py::arg("option_type"), py::arg("method"), py::arg("outputs"), py::arg("steps"),
      py::arg("alo_nodes"), py::arg("alo_quadrature"), py::arg("alo_iterations"),
      py::arg("alo_price_quadrature"), py::arg("alo_equation"), py::arg("alo_rule"),
      py::arg("boundary_points"), py::arg("threads"), py::arg("double_boundary_tree") = true,
      "American option prices and Greeks over 1-D arrays; returns (columns, failed rows). "
      "See tradecore.pricing.american.");
}

}  // namespace tradecore::bindings
