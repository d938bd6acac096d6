# Installs this build into a scratch prefix, then configures, builds and runs
# examples/consumer against the installed package, out of tree.
# -DBUILD_DIR -DSOURCE_DIR -DWORK_DIR -DHALIDE_DIR -DGENERATOR
file(REMOVE_RECURSE ${WORK_DIR})
include(${CMAKE_CURRENT_LIST_DIR}/run_checked.cmake)
run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${WORK_DIR}/prefix)
run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/examples/consumer -B ${WORK_DIR}/build -G ${GENERATOR}
    -DCMAKE_BUILD_TYPE=Release -Dmhac_ROOT=${WORK_DIR}/prefix -DHalide_DIR=${HALIDE_DIR})
run(${CMAKE_COMMAND} --build ${WORK_DIR}/build)
run(${WORK_DIR}/build/consumer)
message(STATUS "${out}")
