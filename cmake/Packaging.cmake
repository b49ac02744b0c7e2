# Packaging: CPack settings for the Debian package (cpack -G DEB in a build configured with
# -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr). Maintainer scripts live in
# systemd/debian/; see docs/operations.md.

set(CPACK_PACKAGE_NAME touchpoint)
set(CPACK_PACKAGE_VENDOR "touchpoint")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "touchpoint maintainers <maintainers@touchpoint.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "multi-touch marketing attribution daemon, client and CLI")
# CPack puts the summary first and indents these lines itself.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "touchpointd stores marketing touches, conversions, identifies, aliases and
spend durably (LMDB) and answers multi-touch attribution queries: first and
last touch, linear, time decay, position based, Markov chain removal effects
and Shapley values. The package holds the daemon with its systemd unit, the
libtouchpoint C library with its header and pkg-config file, the touchpoint
command and their manual pages.")
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Library dependencies come from dpkg-shlibdeps; the maintainer scripts need
# systemd-sysusers, and reports need gnuplot.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "systemd | systemd-standalone-sysusers")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "gnuplot-nox, fonts-dejavu-core")

# The configuration file is a conffile: upgrades keep the administrator's edits.
set(_tp_conffiles ${CMAKE_CURRENT_BINARY_DIR}/debian/conffiles)
file(WRITE ${_tp_conffiles} "${CMAKE_INSTALL_FULL_SYSCONFDIR}/touchpoint/touchpointd.conf\n")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${_tp_conffiles}
    ${PROJECT_SOURCE_DIR}/systemd/debian/postinst
    ${PROJECT_SOURCE_DIR}/systemd/debian/prerm
    ${PROJECT_SOURCE_DIR}/systemd/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)

# Checked when cpack runs: a sanitizer build would pull libasan into Depends, a Debug build
# ships slow code, and only /usr gives Debian's multiarch libdir and /etc.
set(TP_PACKAGE_BUILD_TYPE "${CMAKE_BUILD_TYPE}")
set(TP_PACKAGE_SANITIZE "${TP_SANITIZE}")
set(TP_PACKAGE_PREFIX "${CMAKE_INSTALL_PREFIX}")
configure_file(${CMAKE_CURRENT_LIST_DIR}/PackagingCheck.cmake.in
               ${CMAKE_CURRENT_BINARY_DIR}/PackagingCheck.cmake @ONLY)
set(CPACK_PROJECT_CONFIG_FILE ${CMAKE_CURRENT_BINARY_DIR}/PackagingCheck.cmake)

include(CPack)
