//! Worker pools for work that must yield to the model service.
//!
//! infermon shares its CPUs with the model. Work that only watches the model
//! — query evaluation today; scrape parsing, compaction, rollups, snapshots,
//! imports and exports are meant to follow — runs on a [`WorkerPool`]: a
//! fixed number of plain threads (never the async runtime's workers, whose
//! stalls delay every HTTP request) at a lower OS scheduling priority, so the
//! kernel hands the CPU to the model's threads first whenever both want it.
//!
//! - Priority ([`Priority`]): on Linux each pool thread sets its own nice
//!   value (`setpriority` on its thread id) and, optionally, `SCHED_BATCH`
//!   (no wake-up preemption of interactive threads). Elsewhere it is a no-op.
//! - Admission: [`WorkerPool::run`] waits for a free thread at most
//!   `max_wait`, then fails with [`PoolError::Busy`]; jobs never pile up in
//!   an unbounded queue.
//! - Cancellation: dropping the future `run` returned (an HTTP client went
//!   away) raises the job's [`CancelFlag`]; long jobs check it and stop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, oneshot};

/// OS scheduling priority of a pool's threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Priority {
    /// Nice value, 0 (as the model) to 19 (lowest); clamped to that range,
    /// since raising priority needs privileges infermon should not have.
    pub nice: i32,
    /// Also use `SCHED_BATCH` (Linux): the thread never preempts a waking
    /// interactive thread.
    pub batch: bool,
}

impl Priority {
    /// The priority of the process's other threads.
    pub const NORMAL: Priority = Priority {
        nice: 0,
        batch: false,
    };
}

/// Why a job did not give a result.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// Every thread stayed busy for the whole wait limit.
    #[error("all worker threads stayed busy for {waited:?}")]
    Busy {
        /// How long the caller waited.
        waited: Duration,
    },
    /// The job panicked; the thread survives.
    #[error("the job panicked: {0}")]
    Panicked(String),
    /// The pool's threads could not start or are gone.
    #[error("the worker pool is not running: {0}")]
    Closed(String),
}

/// Raised when the caller of [`WorkerPool::run`] stops waiting.
#[derive(Clone, Debug, Default)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    /// Whether the caller went away.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// The flag itself, for code that polls an `AtomicBool`.
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.0.clone()
    }
}

/// Raises the flag when the waiting future is dropped (also after the job
/// finished, where it no longer matters).
struct CancelOnDrop(CancelFlag);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.0.store(true, Ordering::Relaxed);
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of low-priority threads with admission. Cheap to clone; the
/// threads start with the first job and end when the last clone is dropped.
#[derive(Clone)]
pub struct WorkerPool {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    threads: usize,
    priority: Priority,
    /// One permit per thread: a job holds one from admission to its end.
    slots: Arc<Semaphore>,
    /// The job queue, created with the threads.
    queue: OnceLock<Result<Mutex<mpsc::Sender<Job>>, String>>,
}

impl WorkerPool {
    /// A pool of `threads` threads (at least one) named `name-N`.
    pub fn new(name: &str, threads: usize, priority: Priority) -> Self {
        let threads = threads.max(1);
        WorkerPool {
            inner: Arc::new(Inner {
                name: name.to_string(),
                threads,
                priority,
                slots: Arc::new(Semaphore::new(threads)),
                queue: OnceLock::new(),
            }),
        }
    }

    /// How many jobs run at once.
    pub fn threads(&self) -> usize {
        self.inner.threads
    }

    /// Runs `job` on a pool thread once one is free, waiting at most
    /// `max_wait` for it. Dropping the returned future raises the job's
    /// [`CancelFlag`]; the thread stays taken until the job returns.
    pub async fn run<T, F>(&self, max_wait: Duration, job: F) -> Result<T, PoolError>
    where
        T: Send + 'static,
        F: FnOnce(&CancelFlag) -> T + Send + 'static,
    {
        let began = Instant::now();
        let permit =
            match tokio::time::timeout(max_wait, self.inner.slots.clone().acquire_owned()).await {
                Ok(Ok(permit)) => permit,
                Ok(Err(_)) => return Err(PoolError::Closed("admission closed".into())),
                Err(_) => {
                    return Err(PoolError::Busy {
                        waited: began.elapsed(),
                    });
                }
            };
        let cancel = CancelFlag::default();
        let _guard = CancelOnDrop(cancel.clone());
        let (tx, rx) = oneshot::channel();
        let task: Job = Box::new(move || {
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&cancel)));
            drop(permit);
            let _ = tx.send(out.map_err(|p| panic_text(p.as_ref())));
        });
        self.submit(task)?;
        match rx.await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(msg)) => Err(PoolError::Panicked(msg)),
            Err(_) => Err(PoolError::Closed("the worker thread ended".into())),
        }
    }

    fn submit(&self, job: Job) -> Result<(), PoolError> {
        let queue = self
            .inner
            .queue
            .get_or_init(|| self.inner.start())
            .as_ref()
            .map_err(|e| PoolError::Closed(e.clone()))?;
        let sender = queue.lock().unwrap_or_else(|p| p.into_inner());
        sender
            .send(job)
            .map_err(|_| PoolError::Closed("the worker threads ended".into()))
    }
}

impl Inner {
    /// Starts the threads; they end when the sender is dropped.
    fn start(&self) -> Result<Mutex<mpsc::Sender<Job>>, String> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..self.threads {
            let rx = rx.clone();
            let priority = self.priority;
            let name = format!("{}-{i}", self.name);
            let thread_name = name.clone();
            std::thread::Builder::new()
                .name(name.clone())
                .spawn(move || {
                    if let Err(e) = lower_priority(priority) {
                        tracing::warn!(thread = %thread_name, error = %e, "could not lower thread priority");
                    }
                    loop {
                        let job = {
                            let rx = rx.lock().unwrap_or_else(|p| p.into_inner());
                            rx.recv()
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })
                .map_err(|e| format!("cannot start {name}: {e}"))?;
        }
        Ok(Mutex::new(tx))
    }
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Lowers the calling thread's scheduling priority.
#[cfg(target_os = "linux")]
pub fn lower_priority(p: Priority) -> std::io::Result<()> {
    if p.batch {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: pid 0 is the calling thread; `param` outlives the call.
        if unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    // SAFETY: plain syscalls on the calling thread's own id. On Linux,
    // PRIO_PROCESS with a thread id reads and sets that one thread's nice value.
    let tid = unsafe { libc::gettid() } as libc::id_t;
    let current = unsafe { libc::getpriority(libc::PRIO_PROCESS, tid) };
    // Never below the process's own niceness: that would need privileges.
    let nice = p.nice.clamp(0, 19).max(current);
    if nice != current && unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, nice) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Lowers the calling thread's scheduling priority (not supported here: no-op).
#[cfg(not(target_os = "linux"))]
pub fn lower_priority(_: Priority) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_on_pool_threads_and_panics_are_errors() {
        let pool = WorkerPool::new("t", 2, Priority::NORMAL);
        let name = pool
            .run(Duration::from_secs(5), |_| {
                std::thread::current().name().map(str::to_string)
            })
            .await
            .unwrap();
        assert!(name.is_some_and(|n| n.starts_with("t-")));
        let err = pool
            .run(Duration::from_secs(5), |_| -> () { panic!("boom") })
            .await
            .unwrap_err();
        assert!(
            matches!(&err, PoolError::Panicked(m) if m == "boom"),
            "{err}"
        );
        assert_eq!(pool.run(Duration::from_secs(5), |_| 7).await.unwrap(), 7);
    }

    #[tokio::test]
    async fn a_full_pool_refuses_after_the_wait_limit_and_cancels_dropped_callers() {
        let pool = WorkerPool::new("t", 1, Priority::NORMAL);
        let (seen_tx, seen_rx) = std::sync::mpsc::channel();
        // A job that runs until its caller goes away.
        let p = pool.clone();
        let running = tokio::spawn(async move {
            p.run(Duration::from_secs(5), move |cancel| {
                seen_tx.send(()).unwrap();
                let until = Instant::now() + Duration::from_secs(30);
                while !cancel.is_set() && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(1));
                }
                cancel.is_set()
            })
            .await
        });
        tokio::task::spawn_blocking(move || seen_rx.recv_timeout(Duration::from_secs(10)))
            .await
            .unwrap()
            .unwrap();
        let err = pool
            .run(Duration::from_millis(50), |_| ())
            .await
            .unwrap_err();
        assert!(matches!(err, PoolError::Busy { .. }), "{err}");
        // Dropping the waiting caller stops the job and frees the thread.
        running.abort();
        assert_eq!(pool.run(Duration::from_secs(20), |_| 1).await.unwrap(), 1);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn pool_threads_run_at_the_configured_priority() {
        let own = || unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
        let before = own();
        let pool = WorkerPool::new(
            "t",
            1,
            Priority {
                nice: 19,
                batch: true,
            },
        );
        let (nice, policy) = pool
            .run(Duration::from_secs(5), |_| unsafe {
                let tid = libc::gettid();
                (
                    libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t),
                    libc::sched_getscheduler(0),
                )
            })
            .await
            .unwrap();
        assert_eq!((nice, policy), (19, libc::SCHED_BATCH));
        assert_eq!(own(), before, "the caller's thread keeps its priority");
    }
}
