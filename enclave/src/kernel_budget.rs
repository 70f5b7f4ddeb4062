//! Kernel-memory budgets: what an enclave may make the kernel hold for it (file data, pipe
//! buffers, descriptors, page tables, threads and their stacks, the VMM's per-VM structures).
//!
//! Each enclave has an [`Account`] with a limit; the kernel charges an account *before* it
//! allocates on the enclave's behalf and gives the charge back when it frees. A charge that would
//! pass the limit is refused, and the kernel turns the refusal into the program's errno (ENOMEM,
//! ENOSPC, EAGAIN, EMFILE) instead of allocating. Since the limits of the enclaves that run add up
//! to less than the kernel memory the partition leaves, one enclave's exhaustion never becomes
//! another's, nor the kernel's.
//!
//! Accounts are lock-free (charging is a compare-and-swap loop), so any core may charge or give
//! back at any time, interrupts included. A [`Charge`] ties bytes to an account and gives them
//! back when dropped, so an object that owns its charge cannot leak it.

use alloc::sync::Arc;
use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

/// The smallest budget the default rule gives an enclave: room for its first process, a few
/// threads, descriptors and page tables.
pub const MIN_DEFAULT_BUDGET: u64 = 8 << 20;
/// The largest budget the default rule gives an enclave.
pub const MAX_DEFAULT_BUDGET: u64 = 1 << 30;

/// A charge was refused: it would take the account past its limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OverBudget {
    /// What was asked for.
    pub bytes: u64,
    /// What the account held then.
    pub used: u64,
    pub limit: u64,
}

impl fmt::Display for OverBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} bytes more would pass the kernel-memory budget ({} of {} bytes used)",
            self.bytes, self.used, self.limit
        )
    }
}

/// One enclave's kernel memory (or the kernel's own, with no limit).
#[derive(Debug)]
pub struct Account {
    limit: u64,
    used: AtomicU64,
    peak: AtomicU64,
    refusals: AtomicU64,
}

impl Account {
    /// An account that refuses charges past `limit` bytes.
    pub const fn new(limit: u64) -> Self {
        Self { limit, used: AtomicU64::new(0), peak: AtomicU64::new(0), refusals: AtomicU64::new(0) }
    }

    /// An account that counts without limit (the kernel's own).
    pub const fn unlimited() -> Self {
        Self::new(u64::MAX)
    }

    /// Takes `bytes` from the budget, or refuses (and counts the refusal) if that would pass the
    /// limit; then nothing is taken.
    pub fn try_charge(&self, bytes: u64) -> Result<(), OverBudget> {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let Some(after) = used.checked_add(bytes).filter(|&after| after <= self.limit) else {
                self.refusals.fetch_add(1, Ordering::Relaxed);
                return Err(OverBudget { bytes, used, limit: self.limit });
            };
            match self.used.compare_exchange_weak(used, after, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => {
                    self.peak.fetch_max(after, Ordering::Relaxed);
                    return Ok(());
                }
                Err(now) => used = now,
            }
        }
    }

    /// Gives back `bytes` charged before (never below zero: giving back more than was taken is
    /// a kernel bug, which this clamps rather than wraps).
    pub fn uncharge(&self, bytes: u64) {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let after = used.saturating_sub(bytes);
            match self.used.compare_exchange_weak(used, after, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return,
                Err(now) => used = now,
            }
        }
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes charged now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// The most bytes ever charged at once.
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    /// How many charges were refused.
    pub fn refusals(&self) -> u64 {
        self.refusals.load(Ordering::Relaxed)
    }

    /// Bytes that may still be charged.
    pub fn available(&self) -> u64 {
        self.limit.saturating_sub(self.used())
    }
}

/// Bytes charged to an account, given back when the charge is dropped.
#[derive(Debug)]
pub struct Charge {
    account: Arc<Account>,
    bytes: u64,
}

impl Charge {
    /// Charges `bytes` to `account`.
    pub fn new(account: &Arc<Account>, bytes: u64) -> Result<Self, OverBudget> {
        account.try_charge(bytes)?;
        Ok(Self { account: account.clone(), bytes })
    }

    /// A charge of nothing yet, to grow later.
    pub fn empty(account: &Arc<Account>) -> Self {
        Self { account: account.clone(), bytes: 0 }
    }

    /// Charges `more` bytes on top.
    pub fn grow(&mut self, more: u64) -> Result<(), OverBudget> {
        self.account.try_charge(more)?;
        self.bytes += more;
        Ok(())
    }

    /// Gives back `less` bytes (at most what the charge holds).
    pub fn shrink(&mut self, less: u64) {
        let less = less.min(self.bytes);
        self.account.uncharge(less);
        self.bytes -= less;
    }

    /// Changes the charge to `bytes`: grows (or refuses, changing nothing) or shrinks.
    pub fn resize(&mut self, bytes: u64) -> Result<(), OverBudget> {
        match bytes.checked_sub(self.bytes) {
            Some(more) => self.grow(more),
            None => {
                self.shrink(self.bytes - bytes);
                Ok(())
            }
        }
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn account(&self) -> &Arc<Account> {
        &self.account
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.account.uncharge(self.bytes);
    }
}

/// The budget an enclave gets when its manifest names none: half of the kernel memory the
/// partition leaves (`kernel_left`: free memory minus what enclaves and segments take), shared
/// evenly by `enclaves`, within [`MIN_DEFAULT_BUDGET`] and [`MAX_DEFAULT_BUDGET`], rounded down
/// to whole 4 KiB pages. The other half stays the kernel's own.
pub fn default_budget(kernel_left: u64, enclaves: usize) -> u64 {
    let share = kernel_left / 2 / (enclaves.max(1) as u64);
    share.clamp(MIN_DEFAULT_BUDGET, MAX_DEFAULT_BUDGET) & !0xfff
}

/// The `/tmp` size an enclave gets when its manifest names none: half its budget (as tmpfs takes
/// half of RAM), so that files cannot take the memory its threads and descriptors need.
pub fn default_tmp_size(budget: u64) -> u64 {
    (budget / 2) & !0xfff
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    #[test]
    fn charges_stop_at_the_limit_and_come_back() {
        let account = Arc::new(Account::new(10_000));
        let a = Charge::new(&account, 6_000).unwrap();
        assert_eq!(account.used(), 6_000);
        let refused = Charge::new(&account, 5_000).unwrap_err();
        assert_eq!(refused, OverBudget { bytes: 5_000, used: 6_000, limit: 10_000 });
        assert!(refused.to_string().contains("6000 of 10000"));
        assert_eq!(account.refusals(), 1);
        let b = Charge::new(&account, 4_000).unwrap();
        assert_eq!(account.available(), 0);
        drop(a);
        assert_eq!(account.used(), 4_000);
        drop(b);
        assert_eq!(account.used(), 0);
        assert_eq!(account.peak(), 10_000);
    }

    #[test]
    fn a_charge_grows_shrinks_and_resizes() {
        let account = Arc::new(Account::new(100));
        let mut c = Charge::empty(&account);
        c.grow(60).unwrap();
        assert!(c.grow(41).is_err());
        assert_eq!(c.bytes(), 60);
        c.resize(100).unwrap();
        assert!(c.resize(101).is_err());
        assert_eq!(account.used(), 100);
        c.resize(30).unwrap();
        assert_eq!(account.used(), 30);
        c.shrink(1_000);
        assert_eq!((c.bytes(), account.used()), (0, 0));
    }

    #[test]
    fn huge_charges_do_not_wrap() {
        let account = Account::unlimited();
        account.try_charge(u64::MAX - 1).unwrap();
        assert!(account.try_charge(2).is_err());
        account.uncharge(u64::MAX);
        assert_eq!(account.used(), 0);
    }

    #[test]
    fn concurrent_charging_never_passes_the_limit() {
        let account = Arc::new(Account::new(1_000_000));
        let workers: Vec<_> = (0..8)
            .map(|_| {
                let account = account.clone();
                thread::spawn(move || {
                    let mut held = Vec::new();
                    for i in 0..20_000u64 {
                        if let Ok(c) = Charge::new(&account, 1 + i % 4096) {
                            held.push(c);
                        }
                        if i % 3 == 0 {
                            held.pop();
                        }
                        assert!(account.used() <= 1_000_000);
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        assert_eq!(account.used(), 0);
        assert!(account.peak() <= 1_000_000);
    }

    #[test]
    fn default_budgets() {
        assert_eq!(default_budget(256 << 20, 1), 128 << 20);
        assert_eq!(default_budget(256 << 20, 4), 32 << 20);
        assert_eq!(default_budget(0, 1), MIN_DEFAULT_BUDGET);
        assert_eq!(default_budget(u64::MAX, 0), MAX_DEFAULT_BUDGET);
        assert_eq!(default_budget((100 << 20) + 12_345, 1) % 4096, 0);
        assert_eq!(default_tmp_size(128 << 20), 64 << 20);
        assert_eq!(default_tmp_size(8193), 4096);
    }
}
