#!/bin/sh
# Files shared between enclaves only through a grant (scenario job-shared-files,
# tests/manifests/shared-files.conf): run as `shared-files.sh producer|consumer|outsider` in
# three jobs at once. The producer, granted segment `results` (kind = files) read-write, writes
# /shared/results/run1/data and walks in and out of the share; the consumer, granted it
# read-only, waits for the data, checks it and fails to change anything; the outsider, granted
# nothing, has no /shared. `shared-files.sh empty` checks that /shared/results holds nothing
# (scenario shared-files-regrant). Exits 0 when every check passes.
fail() {
    echo "shared-files: $1: FAIL: $2"
    exit 1
}
case "$1" in
producer)
    cd /shared/results || fail producer "no /shared/results"
    test "$(pwd -P)" = /shared/results || fail producer "getcwd says $(pwd -P)"
    mkdir run1 || fail producer "mkdir in the share"
    echo "step 1" > run1/data && echo "step 2" >> run1/data || fail producer "writing run1/data"
    ln -s data run1/link 2>/dev/null && fail producer "a symbolic link was made in a share"
    cd .. && test "$(pwd -P)" = /shared || fail producer "cd .. from the share's root gave $(pwd -P)"
    test "$(ls /shared)" = results || fail producer "/shared lists: $(ls /shared)"
    grep -q "step 2" results/run1/data || fail producer "a relative path into the share"
    cd results/run1/../../../tmp && test "$(pwd -P)" = /tmp || fail producer "out of the share to /tmp"
    # The share's size bounds what it holds.
    full=$(dd if=/dev/zero of=/shared/results/big bs=64k count=32 2>&1)
    case "$full" in
    *"No space left"*) ;;
    *) fail producer "2 MiB into a 1 MiB share: $full" ;;
    esac
    rm /shared/results/big || fail producer "removing big"
    echo ready > /shared/results/done
    ;;
consumer)
    i=0
    while [ ! -e /shared/results/done ]; do
        sleep 0.1
        i=$((i + 1))
        [ $i -lt 300 ] || fail consumer "no /shared/results/done after 30 s"
    done
    test "$(cat /shared/results/run1/data)" = "$(printf 'step 1\nstep 2')" || fail consumer "read: $(cat /shared/results/run1/data)"
    echo mine 2>/dev/null > /shared/results/mine && fail consumer "created a file through a read-only grant"
    echo more 2>/dev/null >> /shared/results/run1/data && fail consumer "appended through a read-only grant"
    rm /shared/results/done 2>/dev/null && fail consumer "removed a file through a read-only grant"
    mkdir /shared/results/d 2>/dev/null && fail consumer "made a directory through a read-only grant"
    test -e /shared/results/mine && fail consumer "a refused file exists"
    ;;
empty)
    test -d /shared/results || fail empty "no /shared/results"
    test -z "$(ls -A /shared/results)" || fail empty "earlier holders' files are there: $(ls -A /shared/results)"
    ;;
outsider)
    sleep 1
    test -e /shared && fail outsider "has /shared without a grant: $(ls /shared)"
    ;;
*)
    echo "usage: shared-files.sh producer|consumer|outsider|empty"
    exit 2
    ;;
esac
echo "shared-files: $1: as granted"
