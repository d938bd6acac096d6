# `mhac bench` on the tiny shape, briefly: it must exit 0, name the chosen
# variant, write its output and print a parsable --json line. No time is ever
# checked. -DMHAC=<mhac binary> -DWORK_DIR=<scratch directory>
include(${CMAKE_CURRENT_LIST_DIR}/run_checked.cmake)
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})
set(tiny --batch 1 --queries 16 --keys 16 --features 64 --heads 4 --key-dim 16 --repeats 3 --warmup 1)

run(${MHAC} bench ${tiny} --output ${WORK_DIR}/out.npy)
message("${out}")
if(NOT out MATCHES "chosen variant : tiny/fused/none/keras-fused")
  message(FATAL_ERROR "mhac bench did not report the tiny fused variant:\n${out}")
endif()
if(NOT EXISTS ${WORK_DIR}/out.npy)
  message(FATAL_ERROR "mhac bench --output wrote no file")
endif()

# The same from files: the output just written stands in for the query.
file(MAKE_DIRECTORY ${WORK_DIR}/inputs)
file(RENAME ${WORK_DIR}/out.npy ${WORK_DIR}/inputs/query.npy)
run(${MHAC} bench --inputs ${WORK_DIR}/inputs --heads 4 --key-dim 16 --repeats 2 --warmup 2
    --warmup-seconds 0.05 --json)
message("${out}")
string(JSON variant ERROR_VARIABLE json_error GET "${out}" variant)
if(json_error OR NOT variant MATCHES "^tiny/fused")
  message(FATAL_ERROR "mhac bench --json: no tiny variant (${json_error}):\n${out}")
endif()
# Warm-up: at least --warmup calls, and calls until --warmup-seconds passed.
string(JSON warmup_calls GET "${out}" warmup)
string(JSON warmup_seconds GET "${out}" warmup_seconds)
if(warmup_calls LESS 2 OR warmup_seconds LESS 0.049 OR warmup_seconds GREATER 0.051)
  message(FATAL_ERROR "mhac bench --json: warm-up ${warmup_calls} calls, ${warmup_seconds} s; "
                      "expected at least 2 calls and 0.05 s:\n${out}")
endif()
string(JSON median GET "${out}" median_ms)
message("mhac bench smoke: ${variant}, median ${median} ms (not checked)")

# A size that disagrees with the files is an error (exit 1), never ignored.
execute_process(COMMAND ${MHAC} bench --inputs ${WORK_DIR}/inputs --features 768
                RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
if(NOT rc EQUAL 1 OR NOT err MATCHES "--features 768 disagrees")
  message(FATAL_ERROR "expected exit 1 for a disagreeing --features, got ${rc}: ${err}")
endif()

# A count that is not positive is a usage error (exit 2) that names the rule.
execute_process(COMMAND ${MHAC} bench --warmup 0 RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
if(NOT rc EQUAL 2 OR NOT err MATCHES "--warmup: '0' is not a positive integer")
  message(FATAL_ERROR "expected exit 2 for --warmup 0, got ${rc}: ${err}")
endif()
execute_process(COMMAND ${MHAC} bench --warmup-seconds -1 RESULT_VARIABLE rc OUTPUT_QUIET
                ERROR_VARIABLE err)
if(NOT rc EQUAL 2 OR NOT err MATCHES "--warmup-seconds")
  message(FATAL_ERROR "expected exit 2 for --warmup-seconds -1, got ${rc}: ${err}")
endif()
