# The tests of a sanitizer build (MHAC_SANITIZE, docs/sanitizers.md): the
# subset that CI can afford, on the host build's kernels.
#   address (ASan + UBSan): bad input, Keras semantics, the thread contract,
#     the thread pool and a slice of the kernel sweep; the Keras file I/O
#     tests and `mhac run` on the hostile corpus (tests/io)
#   thread (TSan): the thread contract and the thread pool
# Both: the canary, which checks that a report really fails a test.
if(MHAC_SANITIZE STREQUAL "address")
  set(_label asan)
  add_executable(mhac_sanitized_tests bad_input_test.cpp keras_semantics_test.cpp
                                      kernel_sweep_test.cpp thread_pool_test.cpp
                                      thread_safety_test.cpp)
  target_compile_definitions(mhac_sanitized_tests PRIVATE MHAC_SANITIZE_ADDRESS=1)
  set(_env "")
else()
  set(_label tsan)
  add_executable(mhac_sanitized_tests thread_pool_test.cpp thread_safety_test.cpp)
  target_compile_definitions(mhac_sanitized_tests PRIVATE MHAC_SANITIZE_THREAD=1)
  # The runtime's thread pool on, at the same size on every machine.
  set(_env ENVIRONMENT HL_NUM_THREADS=4)
endif()
target_sources(mhac_sanitized_tests PRIVATE sanitizers/sanitizer_canary_test.cpp)
target_link_libraries(mhac_sanitized_tests PRIVATE default_set mhac_reference GTest::gmock
                                                   GTest::gtest GTest::gtest_main)
target_include_directories(mhac_sanitized_tests PRIVATE ${PROJECT_SOURCE_DIR}/runtime/src)
# The sweep's slice: every case of the tiny and generic configurations, and
# BERT-base's at T, S <= 7 (its longer ones are most of the sweep's time, in
# the float64 reference).
set(_slice "*-*/bert_base_*_t64_*:*/bert_base_*_t97_*:*/bert_base_*_s97_*")
gtest_discover_tests(mhac_sanitized_tests TEST_PREFIX "${_label}." DISCOVERY_TIMEOUT 120
                     TEST_FILTER "${_slice}" PROPERTIES LABELS "${_label}" ${_env}
                                                        SKIP_REGULAR_EXPRESSION "\\[  SKIPPED \\]")

if(MHAC_SANITIZE STREQUAL "address" AND MHAC_WITH_KERAS_IO)
  add_subdirectory(io)
endif()
