//! The per-model queue: an actor on its own OS thread that owns the model.
//!
//! Handlers first [`ModelQueue::admit`] (a semaphore of
//! `max_concurrent_requests` permits; none left → 429 at once, so the queue
//! is bounded), then [`ModelQueue::submit`] their tokenized inputs and wait
//! on a oneshot reply. The thread drains everything waiting, asks
//! [`batcher::plan`] for the next batch, runs it, and answers each request
//! once all its inputs are done. A request whose caller went away is dropped
//! before its inputs are computed. [`ModelQueue::stop`] answers everything
//! still waiting with "shutting down" and ends the thread.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use super::batcher::{self, BatchLimits};
use super::metrics::ModelMetrics;
use super::test_delay::TestDelay;
use super::{Backend, Encoded, InferenceError};

/// Where a request's time went (the `x-*-time` headers).
#[derive(Clone, Copy, Debug, Default)]
pub struct Timings {
    /// Tokenizing the inputs.
    pub tokenization: Duration,
    /// Waiting for the first batch.
    pub queue: Duration,
    /// From the first batch to the last result.
    pub inference: Duration,
    /// The whole request.
    pub total: Duration,
}

/// What the thread sends back for one request.
pub struct Reply {
    /// One vector per input, in order.
    pub vectors: Vec<Vec<f32>>,
    /// Queue and inference time (the others are filled in by the handler).
    pub timings: Timings,
}

struct Job {
    inputs: Vec<Encoded>,
    results: Vec<Option<Vec<f32>>>,
    remaining: usize,
    enqueued: Instant,
    started: Option<Instant>,
    reply: oneshot::Sender<Result<Reply, InferenceError>>,
}

enum Msg {
    Run(Job),
    Stop,
}

/// A place in the queue; dropping it (request answered, or the client went
/// away) frees the place.
pub struct Admission {
    _permit: OwnedSemaphorePermit,
    in_flight: prometheus::IntGauge,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.in_flight.dec();
    }
}

/// Handle to one model's queue and thread.
pub struct ModelQueue {
    model: String,
    tx: mpsc::Sender<Msg>,
    permits: Arc<Semaphore>,
    limit: usize,
    metrics: ModelMetrics,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl ModelQueue {
    /// Moves `backend` onto a new thread named after the model and starts
    /// serving batches.
    pub fn start(
        model: &str,
        backend: Box<dyn Backend>,
        limits: BatchLimits,
        max_concurrent_requests: usize,
        metrics: ModelMetrics,
    ) -> Result<ModelQueue, InferenceError> {
        let limit = max_concurrent_requests.max(1);
        // Each admitted request sends one message; one more slot for Stop.
        let (tx, rx) = mpsc::channel(limit + 1);
        let worker = Worker {
            model: model.to_string(),
            backend,
            limits,
            metrics: metrics.clone(),
            pending: VecDeque::new(),
            rx,
            test_delay: TestDelay::from_env(model),
        };
        let thread = std::thread::Builder::new()
            .name(format!("model-{model}"))
            .spawn(move || worker.run())
            .map_err(|e| InferenceError::BadModelConfig {
                name: model.to_string(),
                message: format!("cannot start the model thread: {e}"),
            })?;
        Ok(ModelQueue {
            model: model.to_string(),
            tx,
            permits: Arc::new(Semaphore::new(limit)),
            limit,
            metrics,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Takes a place in the queue, or fails at once when all
    /// `max_concurrent_requests` places are taken.
    pub fn admit(&self) -> Result<Admission, InferenceError> {
        let permit = self
            .permits
            .clone()
            .try_acquire_owned()
            .map_err(|e| match e {
                tokio::sync::TryAcquireError::Closed => {
                    InferenceError::ShuttingDown(self.model.clone())
                }
                tokio::sync::TryAcquireError::NoPermits => InferenceError::Overloaded {
                    model: self.model.clone(),
                    limit: self.limit,
                },
            })?;
        self.metrics.in_flight.inc();
        Ok(Admission {
            _permit: permit,
            in_flight: self.metrics.in_flight.clone(),
        })
    }

    /// Queues `inputs` and waits for their vectors. Needs an [`Admission`]
    /// so the number of waiting requests stays bounded.
    pub async fn submit(
        &self,
        _admission: &Admission,
        inputs: Vec<Encoded>,
    ) -> Result<Reply, InferenceError> {
        let (reply, rx) = oneshot::channel();
        let n = inputs.len();
        let job = Job {
            results: vec![None; n],
            remaining: n,
            inputs,
            enqueued: Instant::now(),
            started: None,
            reply,
        };
        self.metrics.queue_depth.add(n as i64);
        if self.tx.send(Msg::Run(job)).await.is_err() {
            self.metrics.queue_depth.sub(n as i64);
            return Err(InferenceError::ShuttingDown(self.model.clone()));
        }
        rx.await
            .map_err(|_| InferenceError::ShuttingDown(self.model.clone()))?
    }

    /// Hands over the model thread, so whoever retired the model can wait for
    /// it: the thread answers every request already sent and exits once the
    /// last handle to this queue is dropped (nothing is refused on the way).
    pub fn take_thread(&self) -> Option<std::thread::JoinHandle<()>> {
        self.thread.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Refuses new requests, answers waiting ones with "shutting down" and
    /// waits for the thread to finish its current batch and exit.
    pub async fn stop(&self) {
        self.permits.close();
        // The channel has a slot beyond every admitted request, so Stop fits.
        let _ = self.tx.try_send(Msg::Stop);
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

struct Worker {
    model: String,
    backend: Box<dyn Backend>,
    limits: BatchLimits,
    metrics: ModelMetrics,
    pending: VecDeque<Job>,
    rx: mpsc::Receiver<Msg>,
    /// Test-only slow-down (off unless its environment variable is set).
    test_delay: TestDelay,
}

impl Worker {
    fn run(mut self) {
        let mut last_batch = 0;
        loop {
            if self.pending.is_empty() {
                match self.rx.blocking_recv() {
                    Some(Msg::Run(job)) => self.pending.push_back(job),
                    Some(Msg::Stop) | None => break,
                }
            }
            if self.receive_waiting() || self.wait_for_more(last_batch) {
                break;
            }
            self.drop_abandoned();
            last_batch = self.run_one_batch();
        }
        self.rx.close();
        while let Ok(msg) = self.rx.try_recv() {
            if let Msg::Run(job) = msg {
                self.pending.push_back(job);
            }
        }
        for job in self.pending.drain(..) {
            self.metrics.queue_depth.sub(job.remaining as i64);
            let _ = job
                .reply
                .send(Err(InferenceError::ShuttingDown(self.model.clone())));
        }
    }

    /// Moves every message already sent into `pending`; true on Stop.
    fn receive_waiting(&mut self) -> bool {
        let mut stop = false;
        while let Ok(msg) = self.rx.try_recv() {
            match msg {
                Msg::Run(job) => self.pending.push_back(job),
                Msg::Stop => stop = true,
            }
        }
        stop
    }

    /// When fewer inputs wait than the last batch held, waits up to
    /// `max_batch_delay` for that many: under steady concurrent load the
    /// answers of a big batch go out together and their next requests come
    /// back together, so taking the one early arrival alone would lock the
    /// queue into alternating tiny and big batches. True on Stop.
    fn wait_for_more(&mut self, last_batch: usize) -> bool {
        let want = last_batch.min(self.limits.max_batch_requests);
        let deadline = Instant::now() + self.limits.max_batch_delay;
        loop {
            let now = Instant::now();
            if now >= deadline || self.waiting_inputs() >= want {
                return false;
            }
            std::thread::sleep((deadline - now).min(Duration::from_micros(100)));
            if self.receive_waiting() {
                return true;
            }
        }
    }

    fn waiting_inputs(&self) -> usize {
        self.pending.iter().map(|job| job.remaining).sum()
    }

    /// Requests whose caller went away are not computed.
    fn drop_abandoned(&mut self) {
        let metrics = &self.metrics;
        self.pending.retain(|job| {
            let keep = !job.reply.is_closed();
            if !keep {
                metrics.queue_depth.sub(job.remaining as i64);
            }
            keep
        });
    }

    /// Runs the next batch; returns how many inputs it held.
    fn run_one_batch(&mut self) -> usize {
        // The oldest waiting inputs, as (job, input) pairs, oldest first.
        let window = batcher::window(self.limits);
        let mut candidates = Vec::with_capacity(window);
        'outer: for (j, job) in self.pending.iter().enumerate() {
            for (i, r) in job.results.iter().enumerate() {
                if r.is_none() {
                    candidates.push((j, i));
                    if candidates.len() == window {
                        break 'outer;
                    }
                }
            }
        }
        if candidates.is_empty() {
            return 0;
        }
        let lengths: Vec<usize> = candidates
            .iter()
            .map(|&(j, i)| self.pending[j].inputs[i].len())
            .collect();
        let chosen: Vec<(usize, usize)> = batcher::plan(&lengths, self.limits)
            .into_iter()
            .map(|k| candidates[k])
            .collect();

        let start = Instant::now();
        for &(j, _) in &chosen {
            self.pending[j].started.get_or_insert(start);
        }
        let batch: Vec<&Encoded> = chosen
            .iter()
            .map(|&(j, i)| &self.pending[j].inputs[i])
            .collect();
        let tokens: usize = batch.iter().map(|e| e.len()).sum();
        self.test_delay.apply();
        let result = self.backend.forward(&batch);
        self.metrics.compute.observe(start.elapsed().as_secs_f64());
        self.metrics.batch_size.observe(chosen.len() as f64);
        self.metrics.batch_tokens.observe(tokens as f64);
        self.metrics.queue_depth.sub(chosen.len() as i64);

        match result {
            Ok(vectors) if vectors.len() == chosen.len() => {
                for (&(j, i), v) in chosen.iter().zip(vectors) {
                    let job = &mut self.pending[j];
                    job.results[i] = Some(v);
                    job.remaining -= 1;
                }
            }
            Ok(vectors) => {
                let e = format!(
                    "backend returned {} vectors for {} inputs",
                    vectors.len(),
                    chosen.len()
                );
                self.fail_jobs(&chosen, &e);
            }
            Err(e) => self.fail_jobs(&chosen, &e.to_string()),
        }
        self.answer_finished();
        chosen.len()
    }

    fn fail_jobs(&mut self, chosen: &[(usize, usize)], error: &str) {
        tracing::error!(%error, "forward pass failed");
        let mut failed: Vec<usize> = chosen.iter().map(|&(j, _)| j).collect();
        failed.sort_unstable();
        failed.dedup();
        for &j in failed.iter().rev() {
            if let Some(job) = self.pending.remove(j) {
                // Inputs of this job that were not in the failed batch leave the queue too.
                let not_run = job.remaining - chosen.iter().filter(|&&(jj, _)| jj == j).count();
                self.metrics.queue_depth.sub(not_run as i64);
                let _ = job
                    .reply
                    .send(Err(InferenceError::Candle(candle_core::Error::Msg(
                        error.to_string(),
                    ))));
            }
        }
    }

    fn answer_finished(&mut self) {
        let now = Instant::now();
        let mut k = 0;
        while k < self.pending.len() {
            if self.pending[k].remaining > 0 {
                k += 1;
                continue;
            }
            let Some(job) = self.pending.remove(k) else {
                break;
            };
            let started = job.started.unwrap_or(now);
            let timings = Timings {
                queue: started.duration_since(job.enqueued),
                inference: now.duration_since(started),
                ..Timings::default()
            };
            let vectors = job
                .results
                .into_iter()
                .map(Option::unwrap_or_default)
                .collect();
            let _ = job.reply.send(Ok(Reply { vectors, timings }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inference::Metrics;

    /// Returns each input's length and records batch sizes.
    struct Echo(Arc<Mutex<Vec<usize>>>);

    impl Backend for Echo {
        fn forward(&mut self, batch: &[&Encoded]) -> Result<Vec<Vec<f32>>, InferenceError> {
            self.0.lock().unwrap().push(batch.len());
            std::thread::sleep(Duration::from_millis(5));
            Ok(batch.iter().map(|e| vec![e.len() as f32]).collect())
        }
    }

    fn enc(n: usize) -> Encoded {
        Encoded {
            ids: vec![1; n],
            type_ids: vec![0; n],
            pool_skip: 0,
        }
    }

    fn queue(
        max_requests: usize,
        concurrent: usize,
    ) -> (ModelQueue, Arc<Mutex<Vec<usize>>>, ModelMetrics) {
        queue_with_delay(max_requests, concurrent, Duration::ZERO)
    }

    fn queue_with_delay(
        max_requests: usize,
        concurrent: usize,
        delay: Duration,
    ) -> (ModelQueue, Arc<Mutex<Vec<usize>>>, ModelMetrics) {
        let registry = prometheus::Registry::new();
        let metrics = Metrics::new(&registry)
            .unwrap()
            .model("m", "a", "embed", "cpu", "f32");
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let limits = BatchLimits {
            max_batch_requests: max_requests,
            max_batch_tokens: 10_000,
            max_batch_delay: delay,
        };
        let q = ModelQueue::start(
            "m",
            Box::new(Echo(sizes.clone())),
            limits,
            concurrent,
            metrics.clone(),
        )
        .unwrap();
        (q, sizes, metrics)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn answers_each_caller_its_own_slice_in_order() {
        let (q, sizes, metrics) = queue(4, 16);
        let q = Arc::new(q);
        let mut tasks = Vec::new();
        for r in 0..8usize {
            let q = q.clone();
            tasks.push(tokio::spawn(async move {
                let a = q.admit().unwrap();
                let inputs: Vec<Encoded> = (0..3).map(|k| enc(r * 3 + k + 1)).collect();
                let reply = q.submit(&a, inputs).await.unwrap();
                (r, reply.vectors)
            }));
        }
        for t in tasks {
            let (r, vectors) = t.await.unwrap();
            let expect: Vec<Vec<f32>> = (0..3).map(|k| vec![(r * 3 + k + 1) as f32]).collect();
            assert_eq!(vectors, expect);
        }
        let sizes = sizes.lock().unwrap().clone();
        assert_eq!(sizes.iter().sum::<usize>(), 24);
        assert!(sizes.iter().all(|&s| s <= 4), "{sizes:?}");
        assert_eq!(metrics.queue_depth.get(), 0);
        assert_eq!(metrics.in_flight.get(), 0);
        q.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_smaller_batch_waits_briefly_for_the_rest_and_a_lone_caller_does_not() {
        let (q, sizes, _) = queue_with_delay(8, 16, Duration::from_millis(400));
        let q = Arc::new(q);
        let a = q.admit().unwrap();
        q.submit(&a, (0..4).map(|_| enc(3)).collect())
            .await
            .unwrap();
        drop(a);
        // Four single inputs arriving 30 ms apart: the first waits for the
        // others because the last batch held four.
        let mut tasks = Vec::new();
        for i in 0..4u64 {
            let q = q.clone();
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(30 * i)).await;
                let a = q.admit().unwrap();
                q.submit(&a, vec![enc(2)]).await.unwrap().vectors
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), vec![vec![2.0]]);
        }
        assert_eq!(sizes.lock().unwrap().clone(), vec![4, 4]);
        // Load drops to one caller: its first batch may wait once; after
        // that its batches no longer shrink, so it never waits.
        let a = q.admit().unwrap();
        q.submit(&a, vec![enc(1)]).await.unwrap();
        let started = Instant::now();
        q.submit(&a, vec![enc(1)]).await.unwrap();
        assert!(
            started.elapsed() < Duration::from_millis(300),
            "a lone caller waited {:?}",
            started.elapsed()
        );
        assert_eq!(sizes.lock().unwrap().clone(), vec![4, 4, 1, 1]);
        q.stop().await;
    }

    #[tokio::test]
    async fn full_queue_refuses_at_once() {
        let (q, _, metrics) = queue(4, 2);
        let a = q.admit().unwrap();
        let b = q.admit().unwrap();
        assert!(matches!(
            q.admit(),
            Err(InferenceError::Overloaded { limit: 2, .. })
        ));
        assert_eq!(metrics.in_flight.get(), 2);
        drop(a);
        let c = q.admit().unwrap();
        drop((b, c));
        assert_eq!(metrics.in_flight.get(), 0);
        q.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_caller_that_goes_away_frees_its_place_and_is_not_computed() {
        let (q, sizes, metrics) = queue(1, 4);
        let q = Arc::new(q);
        // The first request keeps the model thread busy for a few ms.
        let first = {
            let q = q.clone();
            tokio::spawn(async move {
                let a = q.admit().unwrap();
                q.submit(&a, vec![enc(1)]).await.unwrap()
            })
        };
        let abandoned = {
            let q = q.clone();
            tokio::spawn(async move {
                let a = q.admit().unwrap();
                q.submit(&a, (0..50).map(|_| enc(2)).collect()).await
            })
        };
        tokio::time::sleep(Duration::from_millis(1)).await;
        abandoned.abort();
        let _ = abandoned.await;
        first.await.unwrap();
        // Let the thread notice the closed reply channel.
        for _ in 0..100 {
            if metrics.queue_depth.get() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(metrics.in_flight.get(), 0, "the place is free");
        assert_eq!(metrics.queue_depth.get(), 0);
        let computed: usize = sizes.lock().unwrap().iter().sum();
        assert!(
            computed < 51,
            "the abandoned inputs were not all computed ({computed})"
        );
        q.stop().await;
    }

    #[tokio::test]
    async fn stop_refuses_new_work() {
        let (q, _, _) = queue(4, 2);
        q.stop().await;
        assert!(matches!(q.admit(), Err(InferenceError::ShuttingDown(_))));
    }
}
