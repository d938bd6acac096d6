// libFuzzer target: the .npy reader (read_npy_floats, read_npy_mask). An
// Error is the expected answer to a bad file; anything else (a crash, a
// sanitizer report, another exception, a leak, a timeout) is a finding.
#include <cstddef>
#include <cstdint>

#include "fuzz_file.h"
#include "mhac/keras_io.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static mhac::fuzz::FuzzFile file("input.npy");
    const std::string &path = file.write(data, size);
    try {
        const mhac::Tensor t = mhac::io::read_npy_floats(path);
        (void)t;
    } catch (const mhac::Error &) {
    }
    try {
        const mhac::io::Mask m = mhac::io::read_npy_mask(path);
        (void)m.view();
    } catch (const mhac::Error &) {
    }
    return 0;
}
