# rbdsnap_unit_test(NAME SOURCES... LIBS ...): a cmocka program labelled unit.
function(rbdsnap_unit_test name)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} PkgConfig::CMOCKA)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS unit TIMEOUT 120
    ENVIRONMENT "RBDSNAP_BUILD_DIR=${CMAKE_BINARY_DIR};RBDSNAP_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
endfunction()

# Scheduling hints for a build dir that has no CTestCostData.txt yet (a clean
# checkout, CI): ctest starts the most costly ready test first, so the long
# ones and the heads of the serialised chains (RESOURCE_LOCK chaos_lab and
# lab_guests) must not be left for the end.  Seconds, roughly measured with
# three tests at a time; ctest replaces them by measured times afterwards.
set(RBDSNAP_TEST_COSTS
  chaos_osd_stop=400 chaos_glance_kill=390 chaos_journal_full=380
  chaos_keystone_down=370 chaos_libvirtd_restart=360
  test_virt_lab=300 filesnap_cli=290 filesnap_daemon=280 filesnap_rbd_quiesce=270
  lab_guest_check=260
  asan_service_e2e_jobs=120 service_e2e_jobs=110 asan_service_crash_recovery=90
  asan_rbd_flow_fail=100 asan_rbd_flow_exits=50 asan_cli_snapshot_glance=60
  asan_test_gc_reaper=45
  service_crash_recovery=85 load_1000_jobs=80 rbd_flow_fail=78 cli_snapshot_glance=55
  rbd_flow_exits=43 test_gc_reaper=41 service_valgrind=34)
function(rbdsnap_test_cost name)
  foreach(kv ${RBDSNAP_TEST_COSTS})
    if(kv MATCHES "^${name}=([0-9]+)$")
      set_tests_properties(${name} PROPERTIES COST ${CMAKE_MATCH_1})
    endif()
  endforeach()
endfunction()

# The integration tests that run a second time with a sanitizer build's
# binaries (ASan + UBSan): scripts/test-all configures the normal build with
# -DRBDSNAP_ASAN_BUILD_DIR=<its build-asan/>, so one ctest run schedules
# them (asan_<name>, labels integration;asan) side by side with the rest.
set(RBDSNAP_ASAN_BUILD_DIR "" CACHE PATH
    "a -DRBDSNAP_SANITIZE=ON build dir whose binaries the asan_* tests run")
set(RBDSNAP_ASAN_TESTS
    "service_bad_requests;service_e2e_jobs;service_crash_recovery;rbd_flow_data;rbd_flow_fail;rbd_flow_exits;rbd_flow_parallel;test_rbd_glance_e2e;glance_lab_noauth;glance_lab_keystone;test_gc_lab;test_gc_reaper;test_gc_thread;cli_flatten;cli_unprotect;cli_tree_graph;cli_ls_config;cli_snapshot_glance"
    CACHE STRING "the integration tests that also run against RBDSNAP_ASAN_BUILD_DIR")

# The same command with the sanitizer build's binaries: $<TARGET_FILE:t>
# becomes t's path in RBDSNAP_ASAN_BUILD_DIR; scripts find the binaries
# through RBDSNAP_BUILD_DIR.
function(rbdsnap_asan_command out)
  set(res "")
  foreach(arg ${ARGN})
    if(arg MATCHES "^\\$<TARGET_FILE:([^>]+)>$")
      get_target_property(bdir ${CMAKE_MATCH_1} BINARY_DIR)
      file(RELATIVE_PATH rel ${CMAKE_BINARY_DIR} ${bdir})
      list(APPEND res ${RBDSNAP_ASAN_BUILD_DIR}/${rel}/${CMAKE_MATCH_1})
    else()
      list(APPEND res ${arg})
    endif()
  endforeach()
  set(${out} ${res} PARENT_SCOPE)
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
  rbdsnap_test_cost(${name})
  # Tests driving the shared lab guests (freeze, block jobs) never overlap.
  if(T_NEEDS MATCHES "guest")
    set_tests_properties(${name} PROPERTIES RESOURCE_LOCK lab_guests)
  endif()
  if(RBDSNAP_ASAN_BUILD_DIR AND name IN_LIST RBDSNAP_ASAN_TESTS)
    rbdsnap_asan_command(acmd ${cmd})
    add_test(NAME asan_${name} COMMAND ${RBDSNAP_INTEGRATION_WRAPPER} "${T_NEEDS}" ${acmd})
    set_tests_properties(asan_${name} PROPERTIES LABELS "integration;asan" TIMEOUT ${T_TIMEOUT}
      ENVIRONMENT "RBDSNAP_BUILD_DIR=${RBDSNAP_ASAN_BUILD_DIR};RBDSNAP_SOURCE_DIR=${CMAKE_SOURCE_DIR}"
      FIXTURES_REQUIRED lab
      SKIP_RETURN_CODE 77)
    rbdsnap_test_cost(asan_${name})
  endif()
endfunction()

# The lab fixture: stop the lab at the end of the run if the run started it.
add_test(NAME lab_up COMMAND ${CMAKE_CURRENT_LIST_DIR}/lab-fixture up)
add_test(NAME lab_down COMMAND ${CMAKE_CURRENT_LIST_DIR}/lab-fixture down)
set_tests_properties(lab_up PROPERTIES FIXTURES_SETUP lab LABELS integration
  ENVIRONMENT "RBDSNAP_BUILD_DIR=${CMAKE_BINARY_DIR}")
set_tests_properties(lab_down PROPERTIES FIXTURES_CLEANUP lab LABELS integration TIMEOUT 300
  ENVIRONMENT "RBDSNAP_BUILD_DIR=${CMAKE_BINARY_DIR}")
