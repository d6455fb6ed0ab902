//! The HTTP layer of the model server: TEI (`/embed`, `/rerank`,
//! `/tokenize`, `/info`), OpenAI (`/v1/embeddings`) and Cohere/Jina
//! (`/v1/rerank`). Each handler extracts, calls one [`LoadedModel`]
//! operation and hands the result to [`respond`], the single place that maps
//! errors to JSON answers, counts requests and sets the timing headers.

use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde::Serialize;
use serde_json::json;

use super::pooling::{normalize, truncate_dims};
use super::queue::Timings;
use super::service::Outcome;
use super::tokenize::Side;
use super::types::*;
use super::{Inference, InferenceError, LoadedModel, Task};
use crate::web::{ApiError, ApiJson};

/// The model API's routes.
pub fn router(inference: Inference) -> Router {
    Router::new()
        .route("/embed", post(embed))
        .route("/rerank", post(rerank))
        .route("/tokenize", post(tokenize))
        .route("/info", get(info))
        .route("/v1/embeddings", post(openai_embeddings))
        .route("/v1/models", get(openai_models))
        .route("/v1/rerank", post(cohere_rerank))
        .with_state(inference)
}

/// Metric label for requests that failed before a model was chosen.
const NO_MODEL: &str = "none";

type Answer<T> = Result<(T, Timings), ApiError>;

/// Maps a model-server error to its HTTP answer.
fn api_error(e: InferenceError) -> ApiError {
    use InferenceError as E;
    match e {
        E::Overloaded { .. } => ApiError::overloaded(e.to_string()),
        E::ShuttingDown(_) => ApiError::unavailable(e.to_string()),
        E::UnknownModel { .. } => {
            ApiError::new(StatusCode::NOT_FOUND, "model_not_found", e.to_string())
        }
        E::NoModelForTask(_) | E::WrongTask { .. } => {
            ApiError::new(StatusCode::BAD_REQUEST, "wrong_task", e.to_string())
        }
        E::Validation(_) | E::Tokenize(_) => ApiError::unprocessable(e.to_string()),
        E::InputTooLong { .. } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "input_too_long",
            e.to_string(),
        ),
        _ => ApiError::internal(e.to_string()),
    }
}

/// Counts the request, records timings and builds the answer with the
/// `x-*-time` headers (milliseconds).
fn respond<T: Serialize>(
    inf: &Inference,
    route: &str,
    model: &str,
    start: Instant,
    answer: Answer<T>,
) -> Response {
    let metrics = inf.metrics();
    match answer {
        Ok((body, mut timings)) => {
            timings.total = start.elapsed();
            metrics.request(model, route, 200);
            metrics.timings(model, route, &timings);
            let mut response = axum::Json(body).into_response();
            let headers = response.headers_mut();
            for (name, d) in [
                ("x-queue-time", timings.queue),
                ("x-tokenization-time", timings.tokenization),
                ("x-inference-time", timings.inference),
                ("x-total-time", timings.total),
            ] {
                if let Ok(v) = HeaderValue::from_str(&format!("{:.3}", d.as_secs_f64() * 1000.0)) {
                    headers.insert(name, v);
                }
            }
            response
        }
        Err(e) => {
            metrics.request(model, route, e.status.as_u16());
            metrics.error(model, route, e.error_type);
            e.into_response()
        }
    }
}

fn side(truncate: Option<bool>, direction: Direction) -> Option<Side> {
    truncate.unwrap_or(false).then_some(match direction {
        Direction::Right => Side::Right,
        Direction::Left => Side::Left,
    })
}

/// Resolves the model, admits the request and remembers the model's name
/// for the metric labels.
fn choose(
    inf: &Inference,
    requested: Option<&str>,
    task: Task,
    label: &mut String,
) -> Result<std::sync::Arc<LoadedModel>, ApiError> {
    let model = inf.pick(requested, Some(task)).map_err(api_error)?;
    label.clone_from(&model.name);
    Ok(model)
}

/// Normalizes and cuts embeddings as the request asks.
fn finish_vectors(
    model: &LoadedModel,
    outcome: &mut Outcome,
    norm: bool,
    dims: Option<usize>,
) -> Result<(), ApiError> {
    let width = outcome.vectors.first().map_or(0, Vec::len);
    if let Some(d) = dims
        && (d == 0 || d > width)
    {
        return Err(ApiError::unprocessable(format!(
            "dimensions {d} is out of range: model {:?} gives {width} dimensions",
            model.name
        )));
    }
    for v in &mut outcome.vectors {
        if norm {
            normalize(v);
        }
        if let Some(d) = dims {
            truncate_dims(v, d, norm);
        }
    }
    Ok(())
}

async fn embed(
    State(inf): State<Inference>,
    body: Result<ApiJson<EmbedRequest>, ApiError>,
) -> Response {
    let start = Instant::now();
    let mut label = NO_MODEL.to_string();
    let answer = async {
        let ApiJson(req) = body?;
        let model = choose(&inf, req.model.as_deref(), Task::Embed, &mut label)?;
        let prompt = model
            .tokenizer
            .prompt(
                &model.name,
                req.prompt_name.as_deref(),
                req.prompt.as_deref(),
            )
            .map_err(api_error)?;
        let admission = model.admit().map_err(api_error)?;
        let texts = req.inputs.into_vec();
        let truncate = side(req.truncate, req.truncation_direction);
        let mut outcome = model
            .embed(&admission, &texts, truncate, prompt.as_ref())
            .await
            .map_err(api_error)?;
        finish_vectors(&model, &mut outcome, req.normalize, req.dimensions)?;
        Ok((outcome.vectors, outcome.timings))
    }
    .await;
    respond(&inf, "/embed", &label, start, answer)
}

async fn openai_embeddings(
    State(inf): State<Inference>,
    body: Result<ApiJson<OpenAiEmbeddingsRequest>, ApiError>,
) -> Response {
    let start = Instant::now();
    let mut label = NO_MODEL.to_string();
    let answer = async {
        let ApiJson(req) = body?;
        let base64 = match req.encoding_format.as_deref() {
            None | Some("float") => false,
            Some("base64") => true,
            Some(other) => {
                return Err(ApiError::unprocessable(format!(
                    "encoding_format {other:?} is not float or base64"
                )));
            }
        };
        let model = choose(&inf, req.model.as_deref(), Task::Embed, &mut label)?;
        let prompt = model
            .tokenizer
            .prompt(
                &model.name,
                req.prompt_name.as_deref(),
                req.prompt.as_deref(),
            )
            .map_err(api_error)?;
        let admission = model.admit().map_err(api_error)?;
        let texts = req.input.into_vec();
        let mut outcome = model
            .embed(&admission, &texts, None, prompt.as_ref())
            .await
            .map_err(api_error)?;
        finish_vectors(&model, &mut outcome, true, req.dimensions)?;
        let data = outcome
            .vectors
            .into_iter()
            .enumerate()
            .map(|(index, v)| {
                let embedding = if base64 {
                    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                    json!(base64::engine::general_purpose::STANDARD.encode(bytes))
                } else {
                    json!(v)
                };
                OpenAiEmbedding {
                    object: "embedding",
                    embedding,
                    index,
                }
            })
            .collect();
        let body = OpenAiEmbeddingsResponse {
            object: "list",
            data,
            model: model.name.clone(),
            usage: Usage {
                prompt_tokens: outcome.tokens,
                total_tokens: outcome.tokens,
            },
        };
        Ok((body, outcome.timings))
    }
    .await;
    respond(&inf, "/v1/embeddings", &label, start, answer)
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Scores every document; returns (index, sigmoid score, raw score), best first.
async fn score(
    model: &LoadedModel,
    query: &str,
    docs: &[&str],
    truncate: Option<Side>,
    instruction: Option<&str>,
) -> Result<(Vec<(usize, f32, f32)>, Timings, usize), ApiError> {
    let admission = model.admit().map_err(api_error)?;
    let outcome = model
        .rerank(&admission, query, docs, truncate, instruction)
        .await
        .map_err(api_error)?;
    let mut ranked: Vec<(usize, f32, f32)> = outcome
        .vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let raw = v.first().copied().unwrap_or(f32::NAN);
            let s = sigmoid(raw);
            model.metrics.rerank_score.observe(f64::from(s));
            (i, s, raw)
        })
        .collect();
    ranked.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)));
    Ok((ranked, outcome.timings, outcome.tokens))
}

async fn rerank(
    State(inf): State<Inference>,
    body: Result<ApiJson<RerankRequest>, ApiError>,
) -> Response {
    let start = Instant::now();
    let mut label = NO_MODEL.to_string();
    let answer = async {
        let ApiJson(req) = body?;
        let model = choose(&inf, req.model.as_deref(), Task::Rerank, &mut label)?;
        let docs: Vec<&str> = req.texts.iter().map(String::as_str).collect();
        let truncate = side(req.truncate, req.truncation_direction);
        let (ranked, timings, _) = score(
            &model,
            &req.query,
            &docs,
            truncate,
            req.instruction.as_deref(),
        )
        .await?;
        let ranks: Vec<Rank> = ranked
            .into_iter()
            .map(|(index, s, raw)| Rank {
                index,
                score: if req.raw_scores { raw } else { s },
                text: req.return_text.then(|| req.texts[index].clone()),
            })
            .collect();
        Ok((ranks, timings))
    }
    .await;
    respond(&inf, "/rerank", &label, start, answer)
}

async fn cohere_rerank(
    State(inf): State<Inference>,
    body: Result<ApiJson<CohereRerankRequest>, ApiError>,
) -> Response {
    let start = Instant::now();
    let mut label = NO_MODEL.to_string();
    let answer = async {
        let ApiJson(req) = body?;
        let model = choose(&inf, req.model.as_deref(), Task::Rerank, &mut label)?;
        let docs: Vec<&str> = req.documents.iter().map(Document::text).collect();
        let truncate = side(Some(req.truncate.unwrap_or(true)), Direction::Right);
        let (ranked, timings, tokens) = score(
            &model,
            &req.query,
            &docs,
            truncate,
            req.instruction.as_deref(),
        )
        .await?;
        let top = req.top_n.unwrap_or(ranked.len());
        let results = ranked
            .into_iter()
            .take(top)
            .map(|(index, s, _)| CohereResult {
                index,
                relevance_score: s,
                document: req.return_documents.then(|| CohereDocument {
                    text: docs[index].to_string(),
                }),
            })
            .collect();
        let body = CohereRerankResponse {
            model: model.name.clone(),
            results,
            usage: RerankUsage {
                total_tokens: tokens,
            },
        };
        Ok((body, timings))
    }
    .await;
    respond(&inf, "/v1/rerank", &label, start, answer)
}

async fn tokenize(
    State(inf): State<Inference>,
    body: Result<ApiJson<TokenizeRequest>, ApiError>,
) -> Response {
    let start = Instant::now();
    let mut label = NO_MODEL.to_string();
    let answer = (|| {
        let ApiJson(req) = body?;
        let model = inf.pick(req.model.as_deref(), None).map_err(api_error)?;
        label.clone_from(&model.name);
        let texts = req.inputs.into_vec();
        if texts.is_empty() {
            return Err(ApiError::unprocessable(
                "inputs cannot be empty; send at least one text",
            ));
        }
        if texts.len() > model.config.max_client_batch_size {
            return Err(ApiError::unprocessable(format!(
                "{} inputs in one request, more than max_client_batch_size {}",
                texts.len(),
                model.config.max_client_batch_size
            )));
        }
        let prompt = match model.task {
            Task::Embed => model
                .tokenizer
                .prompt(
                    &model.name,
                    req.prompt_name.as_deref(),
                    req.prompt.as_deref(),
                )
                .map_err(api_error)?,
            Task::Rerank if req.prompt_name.is_some() || req.prompt.is_some() => {
                return Err(ApiError::unprocessable(format!(
                    "prompt_name and prompt apply to embedding models; model {:?} reranks",
                    model.name
                )));
            }
            Task::Rerank => None,
        };
        let mut out = Vec::with_capacity(texts.len());
        for text in &texts {
            let text = match &prompt {
                Some(p) => format!("{}{text}", p.text),
                None => text.clone(),
            };
            let enc = model
                .tokenizer
                .plain()
                .encode_char_offsets(text.as_str(), req.add_special_tokens)
                .map_err(|e| api_error(InferenceError::Tokenize(e.to_string())))?;
            let chars: Vec<(usize, char)> = text.char_indices().collect();
            let byte = |c: usize| chars.get(c).map_or(text.len(), |(b, _)| *b);
            let tokens: Vec<Token> = enc
                .get_ids()
                .iter()
                .zip(enc.get_tokens())
                .zip(enc.get_offsets())
                .zip(enc.get_special_tokens_mask())
                .map(|(((&id, token), &(s, e)), &special)| {
                    if special == 1 {
                        Token {
                            id,
                            text: token.clone(),
                            special: true,
                            start: None,
                            stop: None,
                        }
                    } else {
                        let (s, e) = (byte(s), byte(e));
                        let text = text.get(s..e).unwrap_or(token).to_string();
                        Token {
                            id,
                            text,
                            special: false,
                            start: Some(s),
                            stop: Some(e),
                        }
                    }
                })
                .collect();
            out.push(tokens);
        }
        Ok((
            out,
            Timings {
                tokenization: start.elapsed(),
                ..Timings::default()
            },
        ))
    })();
    respond(&inf, "/tokenize", &label, start, answer)
}

async fn info(State(inf): State<Inference>) -> Response {
    let describe = |m: &LoadedModel| {
        let model_type = match m.task {
            Task::Embed => json!({"embedding": {"pooling": m.pooling.map(|p| p.as_str())}}),
            Task::Rerank => json!({"reranker": {"id2label": {"0": "LABEL_0"}}}),
        };
        let t = &m.tokenizer;
        json!({
            "model_id": m.model_id.clone().unwrap_or_else(|| m.name.clone()),
            "name": m.name,
            "model_sha": null,
            "model_dtype": m.dtype,
            "model_type": model_type,
            "architecture": m.architecture,
            "device": m.device,
            "max_concurrent_requests": m.config.max_concurrent_requests,
            "max_input_length": m.tokenizer.max_input_length(),
            "max_batch_tokens": m.config.max_batch_tokens,
            "max_batch_requests": m.config.max_batch_requests,
            "max_client_batch_size": m.config.max_client_batch_size,
            "pooling": m.pooling.map(|p| p.as_str()),
            "dimensions": m.dimensions,
            "prompts": t.prompts(),
            "default_prompt_name": t.default_prompt_name(),
            "prompt_in_pooling": !t.excludes_prompt_from_pooling(),
            "tokenization_workers": 1,
            "version": env!("CARGO_PKG_VERSION"),
        })
    };
    let models: Vec<_> = inf.models().iter().map(|m| describe(m)).collect();
    let mut body = models.first().cloned().unwrap_or_else(|| json!({}));
    if let Some(obj) = body.as_object_mut() {
        obj.insert("models".to_string(), json!(models));
    }
    axum::Json(body).into_response()
}

/// OpenAI's model list: the models served now.
async fn openai_models(State(inf): State<Inference>) -> Response {
    let data: Vec<_> = inf
        .models()
        .iter()
        .map(|m| {
            json!({
                "id": m.name,
                "object": "model",
                "created": m.loaded_at,
                "owned_by": "infermon",
            })
        })
        .collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}
