# Every foreign library is found here, once.  A missing one stops configure
# with the Debian package that provides it.
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)

function(rbdsnap_pkg var module debpkg)
  pkg_check_modules(${var} QUIET IMPORTED_TARGET ${module})
  if(NOT ${var}_FOUND)
    message(FATAL_ERROR "rbdsnap needs ${module}: apt-get install ${debpkg}")
  endif()
endfunction()

rbdsnap_pkg(CURL      libcurl       libcurl4-openssl-dev)
rbdsnap_pkg(JANSSON   jansson       libjansson-dev)
rbdsnap_pkg(LIBVIRT   libvirt       libvirt-dev)
rbdsnap_pkg(LIBCONFIG libconfig     libconfig-dev)
rbdsnap_pkg(MHD       libmicrohttpd libmicrohttpd-dev)
rbdsnap_pkg(CMOCKA    cmocka        libcmocka-dev)
rbdsnap_pkg(LIBXML2   libxml-2.0    libxml2-dev)

# Debian ships no pkg-config file for librados/librbd.
function(rbdsnap_lib name header lib debpkg)
  find_path(${name}_INCLUDE_DIR ${header})
  find_library(${name}_LIBRARY ${lib})
  if(NOT ${name}_INCLUDE_DIR OR NOT ${name}_LIBRARY)
    message(FATAL_ERROR "rbdsnap needs ${lib} (${header}): apt-get install ${debpkg}")
  endif()
  add_library(rbdsnap::${lib} UNKNOWN IMPORTED)
  set_target_properties(rbdsnap::${lib} PROPERTIES
    IMPORTED_LOCATION ${${name}_LIBRARY}
    INTERFACE_INCLUDE_DIRECTORIES ${${name}_INCLUDE_DIR})
endfunction()

rbdsnap_lib(RADOS rados/librados.h rados librados-dev)
rbdsnap_lib(RBD   rbd/librbd.h     rbd   librbd-dev)
