# `mhac tune merge`: two shards holding one key with different dates, and an
# output directory with an entry of its own; the newest of the key and the
# output's entry remain, and a malformed shard is an error naming its file.
# -DMHAC -DWORK_DIR
file(REMOVE_RECURSE ${WORK_DIR})
include(${CMAKE_CURRENT_LIST_DIR}/run_checked.cmake)
set(target x86-64-linux-sse41)
function(db _file _config _knob _date)
  file(WRITE ${_file} "{\"format\": 1, \"target\": \"${target}\", \"entries\": [
  {\"generator\": \"mhac_projection\", \"config\": \"${_config}\",
   \"kernel_params\": [\"in_features=64\", \"out_features=${_config}\", \"use_bias=true\"],
   \"target\": \"${target}\", \"bucket\": \"all\", \"source_hash\": \"0123456789abcdef\",
   \"halide_version\": \"21.0.0\", \"knobs\": [\"gemm_rows=${_knob}\"], \"found_by\": \"test\",
   \"timings\": [], \"cpu\": \"test\", \"cores\": 1, \"date\": \"${_date}\", \"budget_s\": 1,
   \"spent_s\": 1, \"candidates\": 1, \"rejected\": 0}]}\n")
endfunction()
db(${WORK_DIR}/shard_0/${target}.json 64 2 2026-05-01T00:00:00Z)
db(${WORK_DIR}/shard_1/${target}.json 64 4 2026-05-03T00:00:00Z)
db(${WORK_DIR}/out/${target}.json 128 3 2026-04-01T00:00:00Z)
run(${MHAC} tune merge -o ${WORK_DIR}/out ${WORK_DIR}/shard_1 ${WORK_DIR}/shard_0/${target}.json)
file(READ ${WORK_DIR}/out/${target}.json merged)
string(JSON n LENGTH "${merged}" entries)
string(JSON knobs_0 GET "${merged}" entries 0 knobs 0)
string(JSON knobs_1 GET "${merged}" entries 1 knobs 0)
# Sorted by config: "128" before "64".
if(NOT n EQUAL 2 OR NOT knobs_0 STREQUAL "gemm_rows=3" OR NOT knobs_1 STREQUAL "gemm_rows=4")
  message(FATAL_ERROR "unexpected merge:\n${merged}")
endif()
file(WRITE ${WORK_DIR}/bad/${target}.json "{\"format\": 1}")
execute_process(COMMAND ${MHAC} tune merge -o ${WORK_DIR}/out ${WORK_DIR}/bad
                RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 1 OR NOT err MATCHES "bad/${target}.json: field 'target' is missing")
  message(FATAL_ERROR "a malformed shard was not an error naming it (exit ${rc}): ${err}")
endif()
message(STATUS "tune merge: newest entry kept")
