#!/bin/sh
# Each enclave has its own /tmp (scenario job-tmp-private): run as `tmp-private.sh first` and
# `tmp-private.sh second` in two jobs at once. The first writes /tmp/secret and later checks it
# still holds its own words; the second, started after it, must not find that file, writes its
# own /tmp/secret and checks that in turn. Exits 0 when every check passes.
set -e
case "$1" in
first)
    echo "first enclave's secret" > /tmp/secret
    sleep 1
    test "$(cat /tmp/secret)" = "first enclave's secret" || { echo "tmp-private: FAIL: /tmp/secret changed"; exit 1; }
    ;;
second)
    sleep 0.5
    if test -e /tmp/secret; then
        echo "tmp-private: FAIL: another enclave's /tmp/secret is visible: $(cat /tmp/secret)"
        exit 1
    fi
    echo "second enclave's secret" > /tmp/secret
    test "$(cat /tmp/secret)" = "second enclave's secret" || { echo "tmp-private: FAIL: read back"; exit 1; }
    ;;
*)
    echo "usage: tmp-private.sh first|second"
    exit 2
    ;;
esac
echo "tmp-private: $1: /tmp is my own"
