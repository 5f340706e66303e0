# rbdsnap_unit_test(NAME SOURCES... LIBS ...): a cmocka program labelled unit.
function(rbdsnap_unit_test name)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} PkgConfig::CMOCKA)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS unit TIMEOUT 120
    ENVIRONMENT "RBDSNAP_BUILD_DIR=${CMAKE_BINARY_DIR};RBDSNAP_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
endfunction()

# rbdsnap_integration_test(NAME SOURCES... LIBS ... [TIMEOUT s]): a program
# run through tests/run-integration, which makes sure the lab is up
# (starting what is missing) and exports its environment.
set(RBDSNAP_INTEGRATION_WRAPPER ${CMAKE_CURRENT_LIST_DIR}/run-integration)
function(rbdsnap_integration_test name)
  cmake_parse_arguments(T "" "TIMEOUT;NEEDS" "SOURCES;LIBS;COMMAND" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 600)
  endif()
  if(NOT T_NEEDS)
    set(T_NEEDS "ceph glance")
  endif()
  if(T_SOURCES)
    add_executable(${name} ${T_SOURCES})
    target_link_libraries(${name} PRIVATE ${T_LIBS} PkgConfig::CMOCKA)
    set(cmd $<TARGET_FILE:${name}>)
  else()
    set(cmd ${T_COMMAND})
  endif()
  add_test(NAME ${name} COMMAND ${RBDSNAP_INTEGRATION_WRAPPER} "${T_NEEDS}" ${cmd})
  set_tests_properties(${name} PROPERTIES LABELS integration TIMEOUT ${T_TIMEOUT}
    ENVIRONMENT "RBDSNAP_BUILD_DIR=${CMAKE_BINARY_DIR};RBDSNAP_SOURCE_DIR=${CMAKE_SOURCE_DIR}"
    FIXTURES_REQUIRED lab
    SKIP_RETURN_CODE 77)
  # Tests driving the shared lab guests (freeze, block jobs) never overlap.
  if(T_NEEDS MATCHES "guest")
    set_tests_properties(${name} PROPERTIES RESOURCE_LOCK lab_guests)
  endif()
endfunction()

# The lab fixture: stop the lab at the end of the run if the run started it.
add_test(NAME lab_up COMMAND ${CMAKE_CURRENT_LIST_DIR}/lab-fixture up)
add_test(NAME lab_down COMMAND ${CMAKE_CURRENT_LIST_DIR}/lab-fixture down)
set_tests_properties(lab_up PROPERTIES FIXTURES_SETUP lab LABELS integration
  ENVIRONMENT "RBDSNAP_BUILD_DIR=${CMAKE_BINARY_DIR}")
set_tests_properties(lab_down PROPERTIES FIXTURES_CLEANUP lab LABELS integration TIMEOUT 300
  ENVIRONMENT "RBDSNAP_BUILD_DIR=${CMAKE_BINARY_DIR}")
