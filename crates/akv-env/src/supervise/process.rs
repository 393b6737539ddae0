//! The process side of restart on change, on `nix`: the signals the parent takes over,
//! the fork, reaping, and exit statuses. The fork is one of the crate's two `unsafe` calls
//! (the other: `madvise` in `resident.rs`).

use std::os::fd::OwnedFd;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Pid};

/// The signals the parent passes on to the application: every one a container runtime or
/// a terminal sends that a process can catch.
pub const FORWARDED: [Signal; 7] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// Exit status when akv-env restarted the application after a change (EX_TEMPFAIL).
pub const EXIT_CHANGED: i32 = 75;

/// The forwarded signals and SIGCHLD.
pub fn taken_over() -> SigSet {
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(s);
    }
    set.add(Signal::SIGCHLD);
    set
}

/// Blocks [`taken_over`] (before the fork, so that none is lost or acts on the parent
/// before it reads them from its signalfd); returns the mask to give back to the child.
pub fn block_signals() -> nix::Result<SigSet> {
    let mut old = SigSet::empty();
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&taken_over()), Some(&mut old))?;
    Ok(old)
}

/// Gives the child the signal mask akv-env started with (the application inherits it).
pub fn restore_signals(old: &SigSet) -> nix::Result<()> {
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(old), None)
}

/// The parent reads the blocked signals from here. Blocked signals are queued even for
/// PID 1 of a PID namespace (which drops only signals it neither handles nor blocks).
pub fn signal_fd() -> nix::Result<SignalFd> {
    SignalFd::with_flags(&taken_over(), SfdFlags::SFD_CLOEXEC)
}

/// The child's report pipe: both ends close on exec, so the application never sees it
/// and the parent reads end-of-file once the application runs.
pub fn report_pipe() -> nix::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC)
}

/// Which side of the fork this is.
pub enum Side {
    Child,
    Parent(Pid),
}

/// Forks. Must be called while the process has a single thread.
#[allow(unsafe_code)]
pub fn fork() -> nix::Result<Side> {
    // SAFETY: akv-env forks first thing in refresh mode, before it starts any thread (no
    // async runtime, no token-file reader yet; the settings were read on the main thread
    // only). The child is then a copy of a single-threaded process: no lock is held by a
    // thread that does not exist in it, so it may allocate and run any code, as after a
    // fork in a single-threaded C program.
    match unsafe { nix::unistd::fork() }? {
        ForkResult::Child => Ok(Side::Child),
        ForkResult::Parent { child } => Ok(Side::Parent(child)),
    }
}

/// Makes orphans of the application's descendants this process's children, when it is
/// not PID 1 already (where they are anyway).
pub fn become_subreaper() -> nix::Result<()> {
    nix::sys::prctl::set_child_subreaper(true)
}

/// A finished process's status as a shell shows it: its exit code, or 128 + signal.
pub fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, signal, _) => Some(128 + signal as i32),
        _ => None,
    }
}

/// Reaps every child that has ended (the application and any orphan handed to us);
/// returns the application's status if it was among them.
pub fn reap(app: Pid) -> Option<i32> {
    let mut app_status = None;
    loop {
        match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return app_status,
            Ok(status) => {
                if status.pid() == Some(app) {
                    app_status = exit_code(status).or(app_status);
                }
            }
            Err(Errno::EINTR) => continue,
            Err(_) => return app_status,
        }
    }
}

/// Sends `signal` to the application; one that has already ended is not an error.
pub fn send(app: Pid, signal: Signal) {
    let _ = nix::sys::signal::kill(app, signal);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        let pid = Pid::from_raw(42);
        assert_eq!(exit_code(WaitStatus::Exited(pid, 0)), Some(0));
        assert_eq!(exit_code(WaitStatus::Exited(pid, 3)), Some(3));
        assert_eq!(
            exit_code(WaitStatus::Signaled(pid, Signal::SIGKILL, false)),
            Some(137)
        );
        assert_eq!(
            exit_code(WaitStatus::Signaled(pid, Signal::SIGTERM, true)),
            Some(143)
        );
        assert_eq!(exit_code(WaitStatus::StillAlive), None);
    }
}
