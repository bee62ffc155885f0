#!/usr/bin/env bash
# The services the review tests use, from Debian's packages: PostgreSQL (a throwaway cluster on
# 127.0.0.1 is started by the tests themselves) and Chromium (driven by Playwright; no browser
# download). Installs what is missing when running as root with apt-get; otherwise says so, and
# the tests that need them skip with a message. Never fails the build by itself.
set -u

missing=()
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
    missing+=(postgresql)
fi
if ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then
    missing+=(chromium)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "test-services: ${missing[*]} not installed and cannot be installed here (needs root and apt-get);" \
         "the tests that need them will be skipped" >&2
    exit 0
fi
echo "test-services: installing ${missing[*]} from Debian's packages" >&2
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }; then
    echo "test-services: apt-get could not install ${missing[*]}; the tests that need them will be skipped" >&2
fi
exit 0
