//! Which core each serve thread runs on, and which thread a new connection belongs to.
//!
//! A request on a keep-alive connection is a ping-pong between the client and the serve
//! thread. When both run on the core that processes the connection's packets, the kernel
//! switches from one to the other in microseconds. When the serve thread runs on the other
//! core, every request wakes it there, and it has to wait until whatever runs there — another
//! connection's client, a build — has used up its time slice: milliseconds with a 250 Hz
//! kernel. Measured on the 2-core benchmark VM with wrk on the same cores: nginx's workers
//! pair up with one wrk thread each almost all the time (98 % of their switches in
//! `perf sched`), and their p99 is 1 ms where ours, with connections balanced over both
//! threads regardless of core, was 3 ms.
//!
//! So, like nginx's `worker_cpu_affinity auto`, serve thread *i* is pinned to the *i*-th core
//! the process may run on (`serve_cpu_affinity`, on by default), and a new connection goes to
//! the thread pinned to the core its packets arrived on (`SO_INCOMING_CPU`): on loopback the
//! client's core, behind a NIC the core its receive queue interrupts. The [`Balancer`]
//! still caps how uneven that may make the threads.
//!
//! Pinning needs a core per thread: with more serve threads than allowed cores, or a single
//! serve thread, nothing is pinned and connections go to whichever thread accepts them.
//!
//! [`Balancer`]: super::Balancer

use std::sync::Arc;

use rustix::thread::CpuSet;

/// The core each serve thread is pinned to, in thread order; empty when threads float.
#[derive(Clone, Debug, Default)]
pub(super) struct Cores(Arc<[usize]>);

impl Cores {
    /// The plan for `threads` serve threads on the cores this process may run on.
    pub(super) fn plan(threads: usize, enabled: bool) -> Self {
        if !enabled {
            return Self::default();
        }
        let allowed = match rustix::thread::sched_getaffinity(None) {
            Ok(set) => (0..CpuSet::MAX_CPU)
                .filter(|&cpu| set.is_set(cpu))
                .collect(),
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the CPU affinity; serve threads float");
                Vec::new()
            }
        };
        Self::from_allowed(&allowed, threads)
    }

    /// One core per thread, the first `threads` of `allowed` (in ascending order), when
    /// there are at least two threads and enough cores; otherwise none.
    fn from_allowed(allowed: &[usize], threads: usize) -> Self {
        if threads < 2 || allowed.len() < threads {
            return Self::default();
        }
        Self(allowed[..threads].into())
    }

    /// Whether serve threads are pinned (and connections steered to their core's thread).
    pub(super) fn pinned(&self) -> bool {
        !self.0.is_empty()
    }

    /// Pin the calling thread to serve thread `thread`'s core, if it has one. Failing to
    /// pin (a container that forbids it) is logged; the thread then floats.
    pub(super) fn pin_current(&self, thread: usize) {
        let Some(&cpu) = self.0.get(thread) else {
            return;
        };
        let mut set = CpuSet::new();
        set.set(cpu);
        if let Err(err) = rustix::thread::sched_setaffinity(None, &set) {
            tracing::warn!(error = %err, cpu, "cannot pin a serve thread to its core");
        }
    }

    /// The serve thread pinned to the core that received `tcp`'s packets, if any.
    pub(super) fn thread_for(&self, tcp: &impl std::os::fd::AsFd) -> Option<usize> {
        if !self.pinned() {
            return None;
        }
        let cpu = rustix::net::sockopt::socket_incoming_cpu(tcp).ok()?;
        self.thread_on(usize::try_from(cpu).ok()?)
    }

    /// The serve thread pinned to `cpu`.
    fn thread_on(&self, cpu: usize) -> Option<usize> {
        self.0.iter().position(|&pinned| pinned == cpu)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_core_per_thread_in_the_order_allowed() {
        let cores = Cores::from_allowed(&[2, 3, 5, 7], 2);
        assert!(cores.pinned());
        assert_eq!(cores.thread_on(2), Some(0));
        assert_eq!(cores.thread_on(3), Some(1));
        // Cores without a serve thread have no thread of their own.
        assert_eq!(cores.thread_on(5), None);
    }

    #[test]
    fn threads_float_without_a_core_each_or_with_one_thread() {
        assert!(!Cores::from_allowed(&[0], 2).pinned());
        assert!(!Cores::from_allowed(&[0, 1], 1).pinned());
        assert!(!Cores::from_allowed(&[], 4).pinned());
        assert!(!Cores::plan(2, false).pinned());
    }

    #[test]
    fn a_loopback_connection_names_a_core_of_this_machine() {
        // What the accept loop relies on: the kernel reports the core that received an
        // accepted connection's packets, and it is one this process may run on.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        drop(client);
        let cpu = rustix::net::sockopt::socket_incoming_cpu(&accepted).unwrap();
        let allowed = rustix::thread::sched_getaffinity(None).unwrap();
        assert!(allowed.is_set(usize::try_from(cpu).unwrap()), "core {cpu}");
    }
}
