# CMake package for RefRuntime: find_package(RefRuntime) with CMAKE_PREFIX_PATH=<dist>.
# Provides the imported target RefRuntime::refruntime (library + include directory).
get_filename_component(_rr_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
if(NOT TARGET RefRuntime::refruntime)
  add_library(RefRuntime::refruntime SHARED IMPORTED)
  set_target_properties(RefRuntime::refruntime PROPERTIES
    IMPORTED_LOCATION "${_rr_prefix}/lib/librefruntime.so"
    IMPORTED_SONAME "librefruntime.so"
    INTERFACE_INCLUDE_DIRECTORIES "${_rr_prefix}/include")
  find_package(Threads REQUIRED)
  set_property(TARGET RefRuntime::refruntime APPEND PROPERTY INTERFACE_LINK_LIBRARIES Threads::Threads)
endif()
set(RefRuntime_INCLUDE_DIRS "${_rr_prefix}/include")
set(RefRuntime_LIBRARIES RefRuntime::refruntime)
unset(_rr_prefix)
