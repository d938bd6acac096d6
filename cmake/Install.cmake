# `cmake --install` gives a package: find_package(mhac) provides
#   mhac::runtime           the runtime library (no libHalide, no LLVM)
#   mhac::reference         the float64 reference, for checking your own sets
#   mhac_add_kernel_set()   to declare kernel sets in your own build; it runs
#                           mhac's installed generator (which needs the same
#                           Halide 21 at build time: pass Halide_ROOT)
#   bin/mhac                the command-line tool (run, demo, inspect, generate)
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(MHAC_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/mhac)

install(TARGETS mhac_runtime mhac_reference EXPORT mhacTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/runtime/include/mhac DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${PROJECT_SOURCE_DIR}/tests/reference/mha_reference.h
              ${PROJECT_SOURCE_DIR}/tests/reference/random_layer.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/mhac/reference)
install(EXPORT mhacTargets NAMESPACE mhac:: DESTINATION ${MHAC_INSTALL_CMAKEDIR})

if(TARGET mhac_generators)
  # The generator links libHalide from the build's Halide: keep that path.
  get_target_property(_libhalide Halide::Halide LOCATION)
  get_filename_component(_libhalide_dir "${_libhalide}" DIRECTORY)
  set_target_properties(mhac_generators PROPERTIES INSTALL_RPATH "${_libhalide_dir}")
  install(TARGETS mhac_generators EXPORT mhacGenerators
          RUNTIME DESTINATION ${CMAKE_INSTALL_LIBEXECDIR}/mhac)
  install(EXPORT mhacGenerators NAMESPACE mhac::halide_generators::
          FILE mhac-halide_generators.cmake DESTINATION ${MHAC_INSTALL_CMAKEDIR})
endif()
install(TARGETS mhac RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# The kernel planner mhac_add_kernel_set() runs at configure time (built by
# cmake/MhacKernels.cmake when this build was configured).
install(PROGRAMS ${MHAC_PLANNER} DESTINATION ${CMAKE_INSTALL_LIBEXECDIR}/mhac)
install(FILES ${PROJECT_SOURCE_DIR}/cmake/MhacKernels.cmake DESTINATION ${MHAC_INSTALL_CMAKEDIR})
# The build's tuned database: its entries match the installed generator's
# source hash and Halide version, so a user's sets get them too unless they
# point MHAC_TUNED_DB (or TUNED_DB) at their own.
set(MHAC_INSTALL_TUNED_DB ${CMAKE_INSTALL_DATADIR}/mhac/tuned)
if(IS_DIRECTORY ${MHAC_TUNED_DB})
  install(DIRECTORY ${MHAC_TUNED_DB}/ DESTINATION ${MHAC_INSTALL_TUNED_DB} FILES_MATCHING PATTERN "*.json")
endif()
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/mhacConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/mhacConfig.cmake
                              INSTALL_DESTINATION ${MHAC_INSTALL_CMAKEDIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/mhacConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/mhacConfig.cmake ${PROJECT_BINARY_DIR}/mhacConfigVersion.cmake
        DESTINATION ${MHAC_INSTALL_CMAKEDIR})
