# `mhac generate` for one configuration, then a small program compiled and
# linked by hand with g++ (no CMake involved), then run.
# -DMHAC -DSOURCE_DIR -DWORK_DIR -DHALIDE_INCLUDE -DRUNTIME_LIB -DREFERENCE_LIB
file(REMOVE_RECURSE ${WORK_DIR})
include(${CMAKE_CURRENT_LIST_DIR}/run_checked.cmake)
set(gen ${WORK_DIR}/gen)
run(${MHAC} generate --config ${SOURCE_DIR}/tests/generate/small.json
    --targets x86-64-linux-avx2-fma-f16c,x86-64-linux-sse41 -o ${gen})
run(${MHAC} inspect ${gen})
file(GLOB kernels ${gen}/mha_*.a)
run(g++ -std=c++17 -O2 -o ${WORK_DIR}/small
    ${SOURCE_DIR}/tests/generate/main.cpp ${gen}/small_set_registry.cpp
    -I${gen} -I${SOURCE_DIR}/runtime/include -I${SOURCE_DIR}/tests/reference -I${HALIDE_INCLUDE}
    -Wl,--start-group ${REFERENCE_LIB} ${RUNTIME_LIB} ${kernels} ${gen}/small_set_halide_runtime.a
    -Wl,--end-group -lpthread -ldl)
run(${WORK_DIR}/small)
message(STATUS "${out}")
