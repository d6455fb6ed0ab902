//! [`Inference`]: the loaded models, each behind its queue, and the core
//! operations the handlers call (embed, rerank), independent of HTTP.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use prometheus::Registry;

use super::batcher::BatchLimits;
use super::loader::{self, InputFormat};
use super::metrics::{Metrics, ModelMetrics};
use super::models::qwen3;
use super::pooling::Pooling;
use super::queue::{Admission, ModelQueue, Timings};
use super::tokenize::{Prompt, Side, TextTokenizer, Tokenized};
use super::{Encoded, InferenceError, Task};
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

struct Inner {
    models: Vec<Arc<LoadedModel>>,
    metrics: Metrics,
}

/// Every served model. Cheap to clone.
#[derive(Clone)]
pub struct Inference {
    inner: Arc<Inner>,
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
            let started = Instant::now();
            let name = loader::model_name(cfg);
            let parts = loader::load(cfg, base_dir)?;
            let mm = metrics.model(
                &name,
                &parts.architecture,
                parts.task.as_str(),
                &parts.device,
                &parts.dtype,
            );
            mm.load_seconds.set(started.elapsed().as_secs_f64());
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
                seconds = started.elapsed().as_secs_f64(),
                "model loaded"
            );
            models.push(Arc::new(LoadedModel {
                name,
                model_id: cfg.model_id.clone(),
                architecture: parts.architecture,
                task: parts.task,
                device: parts.device,
                dtype: parts.dtype,
                pooling: parts.pooling,
                dimensions: parts.dimensions,
                config: cfg.clone(),
                tokenizer: parts.tokenizer,
                format: parts.format,
                queue,
                metrics: mm,
            }));
        }
        Ok(Inference {
            inner: Arc::new(Inner { models, metrics }),
        })
    }

    /// The HTTP routes of the model API.
    pub fn routes(&self) -> axum::Router {
        super::handlers::router(self.clone())
    }

    /// Stops every queue: waiting requests are answered "shutting down",
    /// running batches finish, threads exit.
    pub async fn stop(&self) {
        for m in &self.inner.models {
            m.queue.stop().await;
        }
    }

    /// The served models, in config order.
    pub fn models(&self) -> &[Arc<LoadedModel>] {
        &self.inner.models
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The model named `requested`, or the first one that can do `task`.
    pub fn pick(
        &self,
        requested: Option<&str>,
        task: Option<Task>,
    ) -> Result<Arc<LoadedModel>, InferenceError> {
        match requested {
            Some(name) => {
                let model = self
                    .inner
                    .models
                    .iter()
                    .find(|m| m.name == name)
                    .ok_or_else(|| InferenceError::UnknownModel {
                        requested: name.to_string(),
                        available: self
                            .inner
                            .models
                            .iter()
                            .map(|m| m.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
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
            None => self
                .inner
                .models
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
