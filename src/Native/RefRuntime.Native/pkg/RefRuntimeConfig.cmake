# CMake package for RefRuntime: find_package(RefRuntime 0.1) with CMAKE_PREFIX_PATH=<prefix>.
# Provides the imported targets RefRuntime::refruntime (the shared library + include directory)
# and RefRuntime::refruntime_static (librefruntime.a, the NativeAOT runtime inside, + the system
# libraries it needs). Relocatable: every path is relative to this file.
get_filename_component(_rr_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
if(NOT TARGET RefRuntime::refruntime)
  add_library(RefRuntime::refruntime SHARED IMPORTED)
  set_target_properties(RefRuntime::refruntime PROPERTIES
    IMPORTED_LOCATION "${_rr_prefix}/lib/@SONAME@"
    IMPORTED_SONAME "@SONAME@"
    INTERFACE_INCLUDE_DIRECTORIES "${_rr_prefix}/include")
  find_package(Threads REQUIRED)
  set_property(TARGET RefRuntime::refruntime APPEND PROPERTY INTERFACE_LINK_LIBRARIES Threads::Threads)
endif()
if(NOT TARGET RefRuntime::refruntime_static)
  add_library(RefRuntime::refruntime_static STATIC IMPORTED)
  set_target_properties(RefRuntime::refruntime_static PROPERTIES
    IMPORTED_LOCATION "${_rr_prefix}/lib/librefruntime.a"
    IMPORTED_LINK_INTERFACE_LANGUAGES C
    INTERFACE_INCLUDE_DIRECTORIES "${_rr_prefix}/include")
  find_package(Threads REQUIRED)
  set_property(TARGET RefRuntime::refruntime_static APPEND PROPERTY INTERFACE_LINK_LIBRARIES @STATIC_LIBS@)
endif()
set(RefRuntime_INCLUDE_DIRS "${_rr_prefix}/include")
set(RefRuntime_LIBRARIES RefRuntime::refruntime)
unset(_rr_prefix)
