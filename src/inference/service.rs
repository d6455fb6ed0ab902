//! [`Inference`]: the loaded models, each behind its queue, and the core
//! operations the handlers call (embed, rerank), independent of HTTP.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use prometheus::Registry;

use super::batcher::BatchLimits;
use super::loader::{self, InputFormat, LoadedParts};
use super::metrics::{Metrics, ModelMetrics};
use super::models::qwen3;
use super::pooling::Pooling;
use super::queue::{Admission, ModelQueue, Timings};
use super::swap::Fingerprint;
use super::tokenize::{Prompt, Side, TextTokenizer, Tokenized};
use super::{Encoded, InferenceError, Task};
use crate::background::WorkerPool;
use crate::config::ModelConfig;

/// One served model.
pub struct LoadedModel {
    /// Name clients use.
    pub name: String,
    /// Hugging Face id, when configured.
    pub model_id: Option<String>,
    /// config.json's architecture.
    pub architecture: String,
    /// What it does.
    pub task: Task,
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// Weights dtype.
    pub dtype: String,
    /// Pooling of an embedder.
    pub pooling: Option<Pooling>,
    /// Width of an embedder's vectors.
    pub dimensions: Option<usize>,
    /// The limits it was configured with.
    pub config: ModelConfig,
    /// Its tokenizer.
    pub tokenizer: TextTokenizer,
    /// Seconds its loading took.
    pub load_seconds: f64,
    /// When it started serving, in Unix seconds.
    pub loaded_at: u64,
    /// The directory it was read from.
    pub(super) dir: PathBuf,
    /// That directory's files as they were when loading began.
    pub(super) folder: Fingerprint,
    format: InputFormat,
    queue: ModelQueue,
    /// Its metric handles.
    pub metrics: ModelMetrics,
}

/// Vectors (or scores) of one request plus what the headers report.
pub struct Outcome {
    /// One per input.
    pub vectors: Vec<Vec<f32>>,
    /// Where the time went.
    pub timings: Timings,
    /// Tokens read (after truncation).
    pub tokens: usize,
}

/// The served models, in config order; replaced as a whole by
/// [`Inference::apply`].
pub type ModelSet = Arc<Vec<Arc<LoadedModel>>>;

pub(super) struct Inner {
    /// The current set. The lock is held only to clone or replace the
    /// `Arc`, never across a load or a request.
    pub(super) set: RwLock<ModelSet>,
    /// Set by [`Inference::stop`] under the write lock, so no
    /// [`Inference::apply`] switches in a set after the stop.
    pub(super) stopped: AtomicBool,
    pub(super) metrics: Metrics,
    /// One [`Inference::apply`] at a time.
    pub(super) changes: tokio::sync::Mutex<()>,
    /// The low-priority thread that loads changed models.
    pub(super) loader: WorkerPool,
}

/// Every served model. Cheap to clone.
#[derive(Clone)]
pub struct Inference {
    pub(super) inner: Arc<Inner>,
}

/// A model read from disk, not yet behind a queue.
pub(super) struct Prepared {
    cfg: ModelConfig,
    name: String,
    dir: PathBuf,
    folder: Fingerprint,
    parts: LoadedParts,
    seconds: f64,
}

/// Reads the model `cfg` describes (the CPU-heavy part). The folder is
/// fingerprinted first, so a change made while loading shows at the next
/// [`Inference::apply`].
pub(super) fn prepare(cfg: &ModelConfig, base_dir: &Path) -> Result<Prepared, InferenceError> {
    let started = Instant::now();
    let dir = base_dir.join(&cfg.path);
    let folder = Fingerprint::of(&dir);
    let parts = loader::load(cfg, base_dir)?;
    Ok(Prepared {
        cfg: cfg.clone(),
        name: loader::model_name(cfg),
        dir,
        folder,
        parts,
        seconds: started.elapsed().as_secs_f64(),
    })
}

impl Prepared {
    /// The name the model will be served under.
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    /// Puts the model behind its own queue thread. Called from a thread at
    /// normal priority: the model thread inherits its creator's priority.
    /// Publishes nothing yet (see [`LoadedModel::publish`]).
    pub(super) fn start(self, metrics: &Metrics) -> Result<Arc<LoadedModel>, InferenceError> {
        let Prepared {
            cfg,
            name,
            dir,
            folder,
            parts,
            seconds,
        } = self;
        let mm = metrics.handles(&name);
        let limits = BatchLimits {
            max_batch_requests: cfg.max_batch_requests,
            max_batch_tokens: cfg.max_batch_tokens,
            max_batch_delay: cfg.max_batch_delay.as_duration(),
        };
        let queue = ModelQueue::start(
            &name,
            parts.backend,
            limits,
            cfg.max_concurrent_requests,
            mm.clone(),
        )?;
        tracing::info!(
            model = %name,
            architecture = %parts.architecture,
            task = parts.task.as_str(),
            device = %parts.device,
            dtype = %parts.dtype,
            max_input_length = parts.tokenizer.max_input_length(),
            seconds,
            "model loaded"
        );
        let loaded_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Ok(Arc::new(LoadedModel {
            name,
            model_id: cfg.model_id.clone(),
            architecture: parts.architecture,
            task: parts.task,
            device: parts.device,
            dtype: parts.dtype,
            pooling: parts.pooling,
            dimensions: parts.dimensions,
            config: cfg,
            tokenizer: parts.tokenizer,
            load_seconds: seconds,
            loaded_at,
            dir,
            folder,
            format: parts.format,
            queue,
            metrics: mm,
        }))
    }
}

impl Inference {
    /// Loads every model (relative paths against `base_dir`), registers the
    /// metrics in `registry` and starts one queue thread per model.
    pub fn load(
        configs: &[ModelConfig],
        base_dir: &Path,
        registry: &Registry,
    ) -> Result<Inference, InferenceError> {
        let metrics = Metrics::new(registry)?;
        let mut models = Vec::with_capacity(configs.len());
        for cfg in configs {
            let model = prepare(cfg, base_dir)?.start(&metrics)?;
            model.publish(&metrics);
            models.push(model);
        }
        Ok(Inference {
            inner: Arc::new(Inner {
                set: RwLock::new(Arc::new(models)),
                stopped: AtomicBool::new(false),
                metrics,
                changes: tokio::sync::Mutex::new(()),
                loader: WorkerPool::new("model-load", 1, super::swap::LOAD_PRIORITY),
            }),
        })
    }

    /// The HTTP routes of the model API.
    pub fn routes(&self) -> axum::Router {
        super::handlers::router(self.clone())
    }

    /// Stops every queue of the current set: waiting requests are answered
    /// "shutting down", running batches finish, threads exit. A later
    /// [`apply`](Self::apply) fails instead of starting models.
    pub async fn stop(&self) {
        let models = {
            let set = self.inner.set.write().unwrap_or_else(|p| p.into_inner());
            self.inner.stopped.store(true, Ordering::Relaxed);
            set.clone()
        };
        for m in models.iter() {
            m.queue.stop().await;
        }
    }

    /// The served models, in config order: a snapshot of the current set,
    /// which [`apply`](Self::apply) may replace at any time.
    pub fn models(&self) -> ModelSet {
        self.inner
            .set
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The model named `requested`, or the first one that can do `task`,
    /// from the current set. A request keeps the returned `Arc` for its
    /// whole life, so a swap never takes its model away mid-request.
    pub fn pick(
        &self,
        requested: Option<&str>,
        task: Option<Task>,
    ) -> Result<Arc<LoadedModel>, InferenceError> {
        let models = self.models();
        match requested {
            Some(name) => {
                let model = models.iter().find(|m| m.name == name).ok_or_else(|| {
                    InferenceError::UnknownModel {
                        requested: name.to_string(),
                        available: models
                            .iter()
                            .map(|m| m.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    }
                })?;
                match task {
                    Some(t) if t != model.task => Err(InferenceError::WrongTask {
                        model: model.name.clone(),
                        task: model.task.as_str(),
                        wanted: t.as_str(),
                    }),
                    _ => Ok(model.clone()),
                }
            }
            None => models
                .iter()
                .find(|m| task.is_none_or(|t| t == m.task))
                .cloned()
                .ok_or(InferenceError::NoModelForTask(
                    task.map_or("serve requests", Task::as_str),
                )),
        }
    }
}

impl LoadedModel {
    /// Takes a place in this model's queue (429 when full).
    pub fn admit(&self) -> Result<Admission, InferenceError> {
        self.queue.admit()
    }

    /// The labels of its `infermon_model_info` series.
    pub(super) fn info_labels(&self) -> [&str; 4] {
        [
            &self.architecture,
            self.task.as_str(),
            &self.device,
            &self.dtype,
        ]
    }

    /// Shows the model as served in the metrics (info and load time).
    pub(super) fn publish(&self, metrics: &Metrics) {
        metrics.publish(&self.name, self.info_labels());
        self.metrics.load_seconds.set(self.load_seconds);
    }

    /// Hands over the queue thread (see [`ModelQueue::take_thread`]).
    pub(super) fn take_thread(&self) -> Option<std::thread::JoinHandle<()>> {
        self.queue.take_thread()
    }

    /// Embeds `texts` (each after `prompt`, when given): pooled vectors,
    /// not yet normalized.
    pub async fn embed(
        &self,
        admission: &Admission,
        texts: &[String],
        truncate: Option<Side>,
        prompt: Option<&Prompt>,
    ) -> Result<Outcome, InferenceError> {
        self.check_count(texts.len())?;
        let started = Instant::now();
        let mut inputs = Vec::with_capacity(texts.len());
        for (i, text) in texts.iter().enumerate() {
            let tokenized = self
                .tokenizer
                .single(&self.name, i, text, truncate, prompt)?;
            inputs.push(self.count(tokenized));
        }
        self.run(admission, inputs, started).await
    }

    /// Raw relevance logits of (query, doc) for each doc.
    pub async fn rerank(
        &self,
        admission: &Admission,
        query: &str,
        docs: &[&str],
        truncate: Option<Side>,
        instruction: Option<&str>,
    ) -> Result<Outcome, InferenceError> {
        self.check_count(docs.len())?;
        let started = Instant::now();
        let mut inputs = Vec::with_capacity(docs.len());
        for (i, doc) in docs.iter().enumerate() {
            let tokenized = match &self.format {
                InputFormat::Qwen3Rerank {
                    prefix,
                    suffix,
                    instruction: default,
                } => {
                    let body = qwen3::rerank_body(instruction.unwrap_or(default), query, doc);
                    self.qwen3_prompt(i, prefix, &body, suffix, truncate)?
                }
                _ => self.tokenizer.pair(&self.name, i, query, doc, truncate)?,
            };
            inputs.push(self.count(tokenized));
        }
        self.run(admission, inputs, started).await
    }

    fn qwen3_prompt(
        &self,
        index: usize,
        prefix: &[u32],
        body: &str,
        suffix: &[u32],
        truncate: Option<Side>,
    ) -> Result<Tokenized, InferenceError> {
        let body = self.tokenizer.ids(body)?;
        let max = self.tokenizer.max_input_length();
        let total = prefix.len() + body.len() + suffix.len();
        let room = max.saturating_sub(prefix.len() + suffix.len());
        let (body, truncated): (&[u32], bool) = if total <= max {
            (&body, false)
        } else {
            match truncate {
                None => return Err(self.tokenizer.too_long(&self.name, index, total)),
                Some(_) if room == 0 => {
                    return Err(self.tokenizer.too_long(&self.name, index, total));
                }
                Some(Side::Right) => (&body[..room], true),
                Some(Side::Left) => (&body[body.len() - room..], true),
            }
        };
        let ids: Vec<u32> = prefix.iter().chain(body).chain(suffix).copied().collect();
        let type_ids = vec![0; ids.len()];
        Ok(Tokenized {
            encoded: Encoded {
                ids,
                type_ids,
                pool_skip: 0,
            },
            truncated,
        })
    }

    fn count(&self, t: Tokenized) -> Encoded {
        if t.truncated {
            self.metrics.truncated.inc();
        }
        self.metrics.input_tokens.observe(t.encoded.len() as f64);
        t.encoded
    }

    fn check_count(&self, n: usize) -> Result<(), InferenceError> {
        if n == 0 {
            return Err(InferenceError::Validation(
                "inputs cannot be empty; send at least one text".to_string(),
            ));
        }
        let max = self.config.max_client_batch_size;
        if n > max {
            return Err(InferenceError::Validation(format!(
                "{n} inputs in one request, more than model {:?} accepts (max_client_batch_size {max}); split the request",
                self.name
            )));
        }
        Ok(())
    }

    async fn run(
        &self,
        admission: &Admission,
        inputs: Vec<Encoded>,
        started: Instant,
    ) -> Result<Outcome, InferenceError> {
        let tokenization = started.elapsed();
        let tokens = inputs.iter().map(Encoded::len).sum();
        let reply = self.queue.submit(admission, inputs).await?;
        let mut timings = reply.timings;
        timings.tokenization = tokenization;
        Ok(Outcome {
            vectors: reply.vectors,
            timings,
            tokens,
        })
    }
}
