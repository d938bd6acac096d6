# Cross build for 64-bit ARM Linux with Debian's toolchain
# (g++-aarch64-linux-gnu); tests run under qemu-aarch64 (qemu-user).
# The Halide generators come from the host build: configure with
#   -Dmhac-halide_generators_ROOT=<host build>/cmake
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
# Halide's package and the host generators live on the build machine.
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
# How test programs run here; applied per test target (tests/CMakeLists.txt),
# not globally, so the host generators run natively.
set(MHAC_TEST_EMULATOR qemu-aarch64 -L /usr/aarch64-linux-gnu)
