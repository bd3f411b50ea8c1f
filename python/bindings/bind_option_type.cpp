// Option-type strings ("call"/"put"/"c"/"p", any case) to int8 codes, without a Python object per
// element for numpy string arrays (parsed in the buffer, GIL released).
#include <string>

#include "common.hpp"
#include "tradecore/pricing/option_type.hpp"

namespace tradecore::bindings {

namespace {

// A str or bytes object's code (0 for anything else).
std::int8_t object_code(PyObject* o) {
  char32_t w[4];
  std::size_t len = 0;
  if (PyUnicode_Check(o)) {
    const Py_ssize_t n = PyUnicode_GET_LENGTH(o);
    if (n > 4) return 0;
    const int kind = PyUnicode_KIND(o);
    const void* data = PyUnicode_DATA(o);
    for (Py_ssize_t k = 0; k < n; ++k) w[k] = PyUnicode_READ(kind, data, k);
    len = static_cast<std::size_t>(n);
  } else if (PyBytes_Check(o)) {
    const Py_ssize_t n = PyBytes_GET_SIZE(o);
    if (n > 4) return 0;
    const auto* data = reinterpret_cast<const unsigned char*>(PyBytes_AS_STRING(o));
    for (Py_ssize_t k = 0; k < n; ++k) w[k] = data[k];
    len = static_cast<std::size_t>(n);
  } else {
    return 0;
  }
  // An embedded NUL is not padding here: "c\0" is not "c".
  for (std::size_t k = 0; k < len; ++k)
    if (w[k] == 0) return 0;
  return pricing::option_type_code(w, len);
}

// Codes of n objects (GIL held). Repeated objects (interned "call"/"put") are looked up once.
Py_ssize_t object_codes(PyObject* const* items, Py_ssize_t n, Py_ssize_t step, std::int8_t* out) {
  Py_ssize_t bad = -1;
  PyObject* last = nullptr;
  std::int8_t last_code = 0;
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* o = items[i * step];
    if (o != last) {
      last = o;
      last_code = object_code(o);
    }
    out[i] = last_code;
    if (last_code == 0 && bad < 0) bad = i;
  }
  return bad;
}

}  // namespace

void bind_option_type(py::module_& m) {
  m.def(
      "option_type_codes",
      [](const py::array& a, int threads) {
        if (a.ndim() != 1) throw std::invalid_argument("option_type: expected a 1-D array");
        const py::ssize_t n = a.shape(0);
        py::array_t<std::int8_t> codes(n);
        std::int8_t* out = codes.mutable_data();
        const char kind = a.dtype().kind();
        const auto count = static_cast<std::size_t>(n);
        std::size_t bad = count;
        if (kind == 'U' || kind == 'S') {
          if (kind == 'U' && a.dtype().attr("byteorder").cast<std::string>() == ">")
            throw std::invalid_argument("option_type: big-endian strings are not supported");
          const auto item = static_cast<std::size_t>(a.itemsize());
          const auto* data = static_cast<const char*>(a.data());
          const std::ptrdiff_t stride = a.strides(0);
          py::gil_scoped_release release;
          bad = kind == 'U'
                    ? pricing::parse_option_types_ucs4(data, count, item / 4, stride, out, threads)
                    : pricing::parse_option_types_bytes(data, count, item, stride, out, threads);
        } else if (kind == 'O') {
          if (a.strides(0) % static_cast<py::ssize_t>(sizeof(PyObject*)) != 0)
            throw std::invalid_argument("option_type: misaligned object array");
          const Py_ssize_t b = object_codes(static_cast<PyObject* const*>(a.data()), n,
                                            a.strides(0) / sizeof(PyObject*), out);
          if (b >= 0) bad = static_cast<std::size_t>(b);
        } else {
          throw std::invalid_argument("option_type: expected a string or object array");
        }
        return py::make_tuple(codes, bad == count ? py::object(py::none()) : py::int_(bad));
      },
      py::arg("option_type"), py::arg("threads") = 0,
      "Parses a 1-D numpy str/bytes/object array of option types into int8 codes (+1 call, "
      "-1 put); returns (codes, index of the first bad element or None).");

  m.def(
      "option_type_codes_list",
      [](const py::sequence& seq) {
        PyObject* fast = PySequence_Fast(seq.ptr(), "option_type: expected a sequence");
        if (!fast) throw py::error_already_set();
        const py::object owner = py::reinterpret_steal<py::object>(fast);
        const Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
        PyObject** items = PySequence_Fast_ITEMS(fast);
        py::array_t<std::int8_t> codes(n);
        std::int8_t* out = codes.mutable_data();
        const Py_ssize_t bad = object_codes(items, n, 1, out);
        return py::make_tuple(codes, bad < 0 ? py::object(py::none()) : py::int_(bad));
      },
      py::arg("option_type"),
      "Parses a list or tuple of option-type str/bytes into int8 codes; returns (codes, index "
      "of the first bad element or None).");
}

}  // namespace tradecore::bindings
