//! What the file layer keeps for a process (its descriptor table, its working directory) and
//! for a job (its file systems), in the task layer's `Process` and `Job` as a `FileState`.

use crate::fs::files::{EnclaveFiles, Place};
use crate::fs::open_files::FdTable;
use crate::task::process::{FileState, Job, Process};
use alloc::boxed::Box;
use alloc::sync::Arc;
use core::any::Any;

/// A process's files.
pub struct ProcessFiles {
    pub fds: spin::Mutex<FdTable>,
    /// Working directory (its node is held in its file system while it is the cwd).
    pub cwd: spin::Mutex<Place>,
}

impl ProcessFiles {
    /// A process's files: `fds`, in `cwd` (a directory the caller already holds, or the root,
    /// which lives as long as the file system: holding it again cannot fail).
    pub fn boxed(fds: FdTable, cwd: Place) -> Box<dyn FileState> {
        let _ = cwd.files.with(|fs| fs.hold(cwd.ino));
        Box::new(ProcessFiles { fds: spin::Mutex::new(fds), cwd: spin::Mutex::new(cwd) })
    }
}

impl FileState for ProcessFiles {
    fn close_all(&self) {
        self.fds.lock().clear();
    }
}

impl Drop for ProcessFiles {
    fn drop(&mut self) {
        let cwd = self.cwd.lock().clone();
        cwd.files.with(|fs| fs.release(cwd.ino));
    }
}

/// A job's file systems.
pub struct JobFiles(pub Arc<EnclaveFiles>);

impl FileState for JobFiles {}

impl JobFiles {
    pub fn boxed(files: Arc<EnclaveFiles>) -> Box<dyn FileState> {
        Box::new(JobFiles(files))
    }
}

/// `process`'s files. Every process is made with [`ProcessFiles::boxed`].
#[inline]
pub fn of(process: &Process) -> &ProcessFiles {
    let state: &dyn Any = &*process.files;
    state.downcast_ref().expect("a process's files are a ProcessFiles")
}

/// `job`'s file systems. Every job is made with [`JobFiles::boxed`].
#[inline]
pub fn of_job(job: &Job) -> &Arc<EnclaveFiles> {
    let state: &dyn Any = &*job.files;
    &state.downcast_ref::<JobFiles>().expect("a job's files are a JobFiles").0
}
