#!/bin/bash
# Man pages, bash completion and their installation (no lab needed):
# roff without warnings, every configuration key in rbdsnap.conf(5), every
# command in rbdsnap(1) and in the completion, completion works, and
# `cmake --install` puts pages (version substituted) and completion in place.
set -uo pipefail
: "${RBDSNAP_BUILD_DIR:?}" "${RBDSNAP_SOURCE_DIR:?}"
B="$RBDSNAP_BUILD_DIR/cli/rbdsnap"
M="$RBDSNAP_SOURCE_DIR/docs/man"
C="$RBDSNAP_SOURCE_DIR/etc/bash_completion.d/rbdsnap"
NFAIL=0
fail() { echo "FAIL: $*" >&2; NFAIL=$((NFAIL + 1)); }
TMP=$(mktemp -d /tmp/rbdsnap-docs.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

for p in rbdsnap.1 rbdsnapd.8 rbdsnap.conf.5; do
    w=$(LC_ALL=C.UTF-8 groff -man -Tutf8 -ww -z "$M/$p" 2>&1)
    [ -z "$w" ] || fail "$p: groff warnings: $w"
done

keys=$(RBDSNAP_CONF= "$B" -c /dev/null config show | grep -v '^#' | sed 's/ = .*//')
[ "$(echo "$keys" | wc -l)" -gt 50 ] || fail "config show listed too few keys"
for k in $keys; do
    grep -qE "^\.(BR|TQ) $k( |$)" "$M/rbdsnap.conf.5" || fail "rbdsnap.conf.5 lacks key $k"
done

cmds=$("$B" --help | awk '/^Commands:/ {on=1; next} on && /^  [a-z]/ {print $1} on && /^$/ {exit}')
[ -n "$cmds" ] || fail "no commands in rbdsnap --help"
for c in $cmds; do
    grep -qE "^\.SS \"(.*[ ,])?$c( |,|\")" "$M/rbdsnap.1" || fail "rbdsnap.1 lacks command $c"
    grep -qE "^    ([a-z |]*[ |])?$c( |\))" "$C" || fail "completion lacks command $c"
done

# Completion: command names from --help, options per command, config verbs.
out=$(PATH="$(dirname "$B"):$PATH" bash -c '
    source "$1"
    comp() { COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMPREPLY=(); _rbdsnap; echo "${COMPREPLY[*]}"; }
    comp rbdsnap fla
    comp rbdsnap flatten --cl
    comp rbdsnap config ch
    comp rbdsnap --format js
    comp rbdsnap unprotect --fl' _ "$C")
[ "$(sed -n 1p <<<"$out")" = flatten ] || fail "completion of 'fla': $(sed -n 1p <<<"$out")"
[ "$(sed -n 2p <<<"$out")" = --cleanup-parent ] || fail "completion of 'flatten --cl'"
[ "$(sed -n 3p <<<"$out")" = check ] || fail "completion of 'config ch'"
[ "$(sed -n 4p <<<"$out")" = json ] || fail "completion of '--format js'"
[ "$(sed -n 5p <<<"$out")" = --flatten-children ] || fail "completion of 'unprotect --fl'"

# Installation (only the install rules of docs/ and etc/, so the test does
# not depend on every other target being built).
if cmake -DCMAKE_INSTALL_PREFIX="$TMP/inst" -P "$RBDSNAP_BUILD_DIR/docs/cmake_install.cmake" \
        > "$TMP/install.log" 2>&1 &&
   cmake -DCMAKE_INSTALL_PREFIX="$TMP/inst" -P "$RBDSNAP_BUILD_DIR/etc/cmake_install.cmake" \
        >> "$TMP/install.log" 2>&1; then
    for f in share/man/man1/rbdsnap.1 share/man/man8/rbdsnapd.8 share/man/man5/rbdsnap.conf.5 \
             share/bash-completion/completions/rbdsnap; do
        [ -s "$TMP/inst/$f" ] || fail "not installed: $f"
    done
    grep -q '@RBDSNAP_VERSION@' "$TMP/inst/share/man/man1/rbdsnap.1" && fail "version not substituted"
    grep -q '"rbdsnap [0-9]' "$TMP/inst/share/man/man1/rbdsnap.1" || fail "version missing in .TH"
else
    fail "install failed: $(tail -3 "$TMP/install.log")"
fi

[ "$NFAIL" = 0 ] || { echo "$NFAIL check(s) failed" >&2; exit 1; }
echo "docs: all checks passed"
