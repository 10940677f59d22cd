#!/usr/bin/env bash
# OS packages the test suite uses besides the Python ones: the two memory allocators that
# tests/unit/test_session_xeon.py preloads into real child processes (SessionConfig.with_allocator).
# Debian/Ubuntu; needs root (as on this project's machines). Elsewhere it says what to install and
# carries on: those tests then fail naming the package.
set -u
packages="libtcmalloc-minimal4 libjemalloc2"
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    dpkg -s $packages >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq $packages >/dev/null; }
else
    echo "scripts/test-deps.sh: install $packages with your package manager (tests/unit/test_session_xeon.py)" >&2
fi
exit 0
