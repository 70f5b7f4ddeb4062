//! Threads: a kernel stack (with the user context on it while in the kernel), the saved kernel
//! stack pointer while switched out, FS/GS bases, floating-point state, and scheduling state.

use crate::hal::descriptor_tables::{USER_CODE, USER_DATA};
use crate::hal::fpu_state::FpuState;
use crate::hal::kernel_memory::{self, MemoryError, Stack};
use crate::hal::syscall_entry::{SYSCALL_FRAME, USER_RFLAGS};
use crate::task::THREAD_KERNEL_BYTES;
use crate::task::interrupt_entry::TrapFrame;
use crate::task::process::{ExitReason, Process};
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use enclave::Charge;
use lwk_hal::context::SavedContext;

pub const KERNEL_STACK_BYTES: u64 = 32 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ThreadState {
    Runnable = 0,
    Running = 1,
    Blocked = 2,
    Exited = 3,
}

pub struct Thread {
    pub tid: u32,
    pub process: Arc<Process>,
    pub kernel_stack: Stack,
    /// Its kernel context while switched out.
    pub saved: SavedContext,
    pub fs_base: AtomicU64,
    pub gs_base: AtomicU64,
    pub fpu: spin::Mutex<FpuState>,
    state: AtomicU8,
    /// A wake-up arrived while the thread was not blocked; its next block returns at once.
    wake_pending: AtomicBool,
    /// The CPU whose run queue holds this thread.
    pub cpu: AtomicUsize,
    /// `set_tid_address`: zeroed and futex-woken when the thread exits.
    pub clear_child_tid: AtomicU64,
    /// Nanoseconds on a CPU.
    pub cpu_ns: AtomicU64,
    /// Signals blocked by this thread, and signals sent to it (bit n-1 for signal n).
    pub signal_mask: AtomicU64,
    pub pending_signals: AtomicU64,
    /// The alternate signal stack: (base, size); size 0 = none.
    pub alt_stack: spin::Mutex<(u64, u64)>,
    /// The thread must end at its next return to user mode (exit_group, a fatal signal).
    pub killed: AtomicBool,
    /// A system call that a signal interrupted (number + 1, 0 = none): restarted after the
    /// signal unless a handler without SA_RESTART ran.
    pub interrupted_syscall: AtomicU64,
    /// The mask to restore after a signal handler that interrupted `rt_sigsuspend`.
    pub suspend_mask: spin::Mutex<Option<u64>>,
    /// `set_robust_list`: the list head and its size, for `get_robust_list`.
    pub robust_list: spin::Mutex<(u64, u64)>,
    /// `exit`: the status the thread ends with (its process's, if it is the last thread).
    pub exit_reason: spin::Mutex<Option<ExitReason>>,
    /// Its futex wait, when it waits on one (see `syscalls::futex`): part of the thread, so
    /// that waiting allocates nothing.
    pub futex_wait: FutexWait,
    /// Its kernel stack, XSAVE area and bookkeeping (signal state and futex wait included: both
    /// have a fixed size), charged to its enclave's kernel memory.
    _charge: Charge,
}

/// Where a thread waits in the futex table: the physical address of the word ([`FutexWait::NONE`]
/// when it does not wait), the bitset it waits for, and whether a waker has taken it. Written
/// under the lock of the table's bucket that holds the thread.
pub struct FutexWait {
    pub key: AtomicU64,
    pub bitset: AtomicU32,
    pub woken: AtomicBool,
}

impl FutexWait {
    pub const NONE: u64 = u64::MAX;

    const fn new() -> FutexWait {
        FutexWait { key: AtomicU64::new(Self::NONE), bitset: AtomicU32::new(0), woken: AtomicBool::new(false) }
    }
}

impl Thread {
    /// A thread that will enter user mode at `rip` with stack `rsp` and the given registers
    /// (zero elsewhere). It runs once a scheduler picks it.
    /// Its kernel memory is charged to the job's account first ([`THREAD_KERNEL_BYTES`]).
    pub fn new(tid: u32, process: Arc<Process>, cpu: usize, user: &TrapFrame) -> Result<Arc<Thread>, MemoryError> {
        let out_of_memory = MemoryError::Frames(crate::hal::frame_allocator::FrameError::OutOfMemory);
        let charge = Charge::new(&process.job.kernel_memory, THREAD_KERNEL_BYTES).map_err(|_| out_of_memory)?;
        // Reuse the address ranges of ended threads' stacks (the region is large but finite).
        if kernel_memory::retired_stacks() >= kernel_memory::STACK_RECYCLE_BATCH {
            kernel_memory::recycle_stacks(crate::task::smp::flush_kernel_tlbs_everywhere);
        }
        let kernel_stack = kernel_memory::alloc_stack(KERNEL_STACK_BYTES)?;
        let Some(fpu) = FpuState::new() else {
            kernel_memory::free_stack(kernel_stack);
            return Err(out_of_memory);
        };
        let saved = SavedContext::first(
            &kernel_stack,
            TrapFrame {
                cs: USER_CODE as u64,
                ss: USER_DATA as u64,
                rflags: USER_RFLAGS,
                vector: SYSCALL_FRAME,
                ..user.clone()
            },
        );
        Ok(Arc::new(Thread {
            tid,
            process,
            kernel_stack,
            saved,
            fs_base: AtomicU64::new(0),
            gs_base: AtomicU64::new(0),
            fpu: spin::Mutex::new(fpu),
            state: AtomicU8::new(ThreadState::Runnable as u8),
            wake_pending: AtomicBool::new(false),
            cpu: AtomicUsize::new(cpu),
            clear_child_tid: AtomicU64::new(0),
            cpu_ns: AtomicU64::new(0),
            signal_mask: AtomicU64::new(0),
            pending_signals: AtomicU64::new(0),
            alt_stack: spin::Mutex::new((0, 0)),
            killed: AtomicBool::new(false),
            interrupted_syscall: AtomicU64::new(0),
            suspend_mask: spin::Mutex::new(None),
            robust_list: spin::Mutex::new((0, 0)),
            exit_reason: spin::Mutex::new(None),
            futex_wait: FutexWait::new(),
            _charge: charge,
        }))
    }

    pub fn state(&self) -> ThreadState {
        match self.state.load(Ordering::Acquire) {
            0 => ThreadState::Runnable,
            1 => ThreadState::Running,
            2 => ThreadState::Blocked,
            _ => ThreadState::Exited,
        }
    }

    pub fn set_state(&self, s: ThreadState) {
        self.state.store(s as u8, Ordering::Release);
    }

    /// Blocked -> Runnable; `false` if the thread was not blocked (the wake-up is kept pending).
    pub fn try_unblock(&self) -> bool {
        self.wake_pending.store(true, Ordering::SeqCst);
        let woke = self
            .state
            .compare_exchange(
                ThreadState::Blocked as u8,
                ThreadState::Runnable as u8,
                Ordering::SeqCst,
                Ordering::SeqCst,
            )
            .is_ok();
        if woke {
            self.wake_pending.store(false, Ordering::SeqCst);
        }
        woke
    }

    /// Marks the thread blocked unless a wake-up is pending (then returns `false`).
    pub fn prepare_block(&self) -> bool {
        self.set_state(ThreadState::Blocked);
        if self.wake_pending.swap(false, Ordering::SeqCst) {
            self.set_state(ThreadState::Running);
            return false;
        }
        true
    }
}

impl Drop for Thread {
    fn drop(&mut self) {
        kernel_memory::free_stack(self.kernel_stack);
    }
}
