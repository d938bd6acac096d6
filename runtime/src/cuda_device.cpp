#include "cuda_device.h"

#include <dlfcn.h>

#include <mutex>

namespace mhac::detail {

namespace {

// The few driver API entry points needed, declared by hand: no CUDA headers.
using CUresult = int;
using CUdevice = int;
constexpr int kCapabilityMajor = 75;  // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR
constexpr int kCapabilityMinor = 76;  // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR

CudaDevice probe() {
    CudaDevice d;
    void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_GLOBAL);
    if (!lib) lib = dlopen("libcuda.so", RTLD_NOW | RTLD_GLOBAL);
    if (!lib) {
        d.reason = "no CUDA driver (libcuda.so.1 not found)";
        return d;
    }
    auto sym = [&](const char *name) { return dlsym(lib, name); };
    auto cu_init = reinterpret_cast<CUresult (*)(unsigned)>(sym("cuInit"));
    auto cu_count = reinterpret_cast<CUresult (*)(int *)>(sym("cuDeviceGetCount"));
    auto cu_get = reinterpret_cast<CUresult (*)(CUdevice *, int)>(sym("cuDeviceGet"));
    auto cu_attr =
        reinterpret_cast<CUresult (*)(int *, int, CUdevice)>(sym("cuDeviceGetAttribute"));
    auto cu_name = reinterpret_cast<CUresult (*)(char *, int, CUdevice)>(sym("cuDeviceGetName"));
    if (!cu_init || !cu_count || !cu_get || !cu_attr || !cu_name) {
        d.reason = "the CUDA driver library lacks the driver API";
        return d;
    }
    if (CUresult r = cu_init(0); r != 0) {
        d.reason = "cuInit failed (CUresult " + std::to_string(r) + "): no usable GPU";
        return d;
    }
    int count = 0;
    if (cu_count(&count) != 0 || count == 0) {
        d.reason = "the CUDA driver reports no device";
        return d;
    }
    CUdevice dev = 0;
    int major = 0, minor = 0;
    char name[256] = {0};
    if (cu_get(&dev, 0) != 0 || cu_attr(&major, kCapabilityMajor, dev) != 0 ||
        cu_attr(&minor, kCapabilityMinor, dev) != 0 || cu_name(name, sizeof name - 1, dev) != 0) {
        d.reason = "could not query CUDA device 0";
        return d;
    }
    d.usable = true;
    d.name = name;
    d.capability = major * 10 + minor;
    return d;
}

}  // namespace

const CudaDevice &cuda_device() {
    static std::once_flag once;
    static CudaDevice device;
    std::call_once(once, [] { device = probe(); });
    return device;
}

}  // namespace mhac::detail
