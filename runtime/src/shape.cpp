// mhac::shape_to_string on its own, so the Keras readers (runtime/io) use
// it without pulling in the rest of the runtime.
#include <string>

#include "mhac/mha.h"

namespace mhac {

std::string shape_to_string(const Shape &shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); i++) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

}  // namespace mhac
