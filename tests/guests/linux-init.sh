#!/bin/sh
# /init of the Linux guest that Manul's VMM boots: the xtask packs it, with Debian's static
# busybox, into /boot/guest-initrd.cpio of the LWK's initrd. It reports on the console, then
# does what `manul.action=` on the kernel command line says:
#   poweroff  power the guest off with `poweroff -f` (the default)
#   crash     crash the guest kernel through sysrq (`echo c > /proc/sysrq-trigger`); the
#             guest-panic driver reports the panic to the VMM
#   shell     a shell on the console; leaving it powers the guest off
#   consume   run /bin/segment (tests/jobs/segment.c) on the first shared segment the VMM gives
#             (manul.seg.NAME=PCI-ADDRESS, added by Manul): follow and check manul.steps=N
#             simulation steps a native job writes into it
#   produce   write manul.steps=N simulation steps into that segment with /bin/segment (the VMM
#             maps a read-only grant read-only: the first write ends the VM)
#   hang      crash the guest kernel without the guest-panic driver: Linux's panic then spins
#             forever with interrupts off, a real kernel hang that only a missing heartbeat shows
# With manul.heartbeat_ms=N (added by Manul for an enclave with a heartbeat), /bin/heartbeat
# (tests/guests/heartbeat.c) beats every N ms in the background.
# Scenarios look for the line MANUL-GUEST-INIT-OK.
export PATH=/bin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
# Linux opened init's streams on /dev/console, which is in the archive; devtmpfs adds the rest.
mount -t devtmpfs devtmpfs /dev

action=poweroff
segment=
steps=100
heartbeat_ms=
for option in $(cat /proc/cmdline); do
    case "$option" in
        manul.action=*) action="${option#manul.action=}" ;;
        manul.steps=*) steps="${option#manul.steps=}" ;;
        manul.seg.*=*) [ -z "$segment" ] && segment="${option#*=}" ;;
        manul.heartbeat_ms=*) heartbeat_ms="${option#manul.heartbeat_ms=}" ;;
    esac
done

# Debian builds the guest-panic driver as modules: with them a kernel panic reaches the VMM
# (the DSDT's QEMU0001 device) and the VM ends "guest_panic" instead of hanging or resetting.
if [ "$action" != hang ]; then
    insmod /lib/modules/pvpanic.ko && insmod /lib/modules/pvpanic-mmio.ko ||
        echo "manul-guest: the guest-panic driver did not load"
fi
if [ -n "$heartbeat_ms" ]; then
    /bin/heartbeat "$heartbeat_ms" &
fi

echo "manul-guest: kernel $(uname -r)"
echo "manul-guest: $(nproc) online CPUs ($(cat /sys/devices/system/cpu/online))"
# The VMM's KVM-compatible paravirtual clock and the x2APIC mode Linux then chooses.
case " $(cat /sys/devices/system/clocksource/clocksource0/available_clocksource) " in
    *" kvm-clock "*) echo "manul-guest: paravirtual clock registered" ;;
esac
if dmesg | grep -q 'x2apic enabled'; then
    echo "manul-guest: x2APIC mode"
fi
echo "MANUL-GUEST-INIT-OK"

case "$action" in
    poweroff) ;;
    hang)
        sleep 2
        echo "manul-guest: hanging the kernel (a panic with nobody told)"
        echo 1 > /proc/sys/kernel/sysrq
        echo c > /proc/sysrq-trigger
        echo "manul-guest: the sysrq crash did not happen"
        ;;
    crash)
        echo "manul-guest: crashing the kernel through sysrq"
        echo 1 > /proc/sys/kernel/sysrq
        echo c > /proc/sysrq-trigger
        echo "manul-guest: the sysrq crash did not happen"
        ;;
    shell)
        echo "manul-guest: a shell; exit to power off"
        sh
        ;;
    consume | produce)
        echo "manul-guest: shared segment at PCI $segment"
        /bin/segment "$action" "/sys/bus/pci/devices/$segment/resource2" "$steps"
        echo "manul-guest: segment program exit status $?"
        ;;
    *) echo "manul-guest: unknown manul.action=$action" ;;
esac
echo "manul-guest: powering off"
poweroff -f
# Only if the power-off failed: init ends, and Linux panics saying so.
echo "manul-guest: poweroff -f failed"
exit 1
