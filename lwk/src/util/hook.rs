//! A function a higher layer hands a lower one at boot, for what the lower one must report up
//! (a job ended, a VM ended, a job's memory is free): the lower layer names no module above it.
//! Installed once; reporting before that is the caller's choice (it gets `None`).

pub struct Hook<F: Copy>(spin::Once<F>);

impl<F: Copy> Hook<F> {
    pub const fn new() -> Self {
        Hook(spin::Once::new())
    }

    /// Sets the function (the first call wins).
    pub fn install(&self, f: F) {
        self.0.call_once(|| f);
    }

    #[inline]
    pub fn get(&self) -> Option<F> {
        self.0.get().copied()
    }
}

impl<F: Copy> Default for Hook<F> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::Hook;

    #[test]
    fn the_first_installed_function_is_called() {
        static HOOK: Hook<fn(u32) -> u32> = Hook::new();
        assert!(HOOK.get().is_none());
        HOOK.install(|x| x + 1);
        HOOK.install(|x| x + 2);
        assert_eq!(HOOK.get().map(|f| f(1)), Some(2));
    }
}
