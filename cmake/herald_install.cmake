# herald_install.cmake - the part of `cmake --install` that plain install()
# rules cannot do, run at install time (CMakeLists.txt includes it through
# install(CODE), after setting HERALD_SRC, HERALD_CONF_DIR and
# HERALD_SYSTEMD_DIR).
#
# Configuration files: /etc/herald/<name>.conf is the operator's. Beside it
# goes <name>.conf.default, the file as shipped by the last install. A
# reinstall
#   - installs <name>.conf when there is none;
#   - replaces it when it still equals the previous .default (never edited),
#     so an unedited install follows new releases;
#   - otherwise keeps it (edited) and says so; the new shipped file is in
#     .default, to compare with.
# A .conf found without a .default (installed by hand) counts as edited.
#
# systemd units: dist/systemd/*.service.in with the install's own paths
# (the prefix given at install time, so `cmake --install --prefix` works);
# they are ours, replaced on every install.
#
# Paths: absolute ones are prefixed with $DESTDIR, relative ones are taken
# under CMAKE_INSTALL_PREFIX, as install() does. configure_file keeps the
# source's mode (0644 from git) and leaves a file alone when it is unchanged.

function(herald_dest path out)
    if(NOT IS_ABSOLUTE "${path}")
        set(path "${CMAKE_INSTALL_PREFIX}/${path}")
    endif()
    set(${out} "${path}" PARENT_SCOPE)
endfunction()

function(herald_install_conf src dir)
    get_filename_component(name "${src}" NAME)
    set(conf "$ENV{DESTDIR}${dir}/${name}")
    set(shipped "${conf}.default")
    set(edited FALSE)
    if(EXISTS "${conf}")
        set(edited TRUE)
        if(EXISTS "${shipped}")
            file(SHA256 "${conf}" have)
            file(SHA256 "${shipped}" was)
            if(have STREQUAL was)
                set(edited FALSE)
            endif()
        endif()
    endif()
    file(MAKE_DIRECTORY "$ENV{DESTDIR}${dir}")
    configure_file("${src}" "${shipped}" COPYONLY)
    if(edited)
        message(STATUS "Keeping edited: ${conf} (shipped version: ${shipped})")
        return()
    endif()
    message(STATUS "Installing: ${conf}")
    configure_file("${src}" "${conf}" COPYONLY)
endfunction()

herald_dest("${HERALD_CONF_DIR}" conf_dir)
herald_dest("${HERALD_SYSTEMD_DIR}" unit_dir)
file(GLOB confs "${HERALD_SRC}/conf/*.conf")
foreach(src ${confs})
    herald_install_conf("${src}" "${conf_dir}")
endforeach()

# The units' own paths: where this install puts the binaries and the conf.
set(HERALD_BINDIR "${CMAKE_INSTALL_PREFIX}/bin")
set(HERALD_CONF_DIR "${conf_dir}")
file(GLOB units "${HERALD_SRC}/dist/systemd/*.service.in")
foreach(src ${units})
    get_filename_component(name "${src}" NAME_WLE)
    message(STATUS "Installing: $ENV{DESTDIR}${unit_dir}/${name}")
    configure_file("${src}" "$ENV{DESTDIR}${unit_dir}/${name}" @ONLY)
endforeach()
