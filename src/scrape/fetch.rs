//! Fetching a target's exposition over HTTP, behind [`Fetcher`] so tests can
//! hand the scrape loop canned bodies.

use std::time::Duration;

use futures::future::BoxFuture;

use super::ScrapeError;
use crate::config::ScrapeConfig;

/// What the scrape loop asks for.
#[derive(Clone, Debug)]
pub struct FetchRequest {
    /// Full URL.
    pub url: String,
    /// Whole-request deadline (`scrape_timeout`).
    pub timeout: Duration,
    /// Largest uncompressed body accepted.
    pub body_limit: Option<u64>,
}

/// A fetched body.
#[derive(Clone, Debug)]
pub struct FetchResponse {
    /// `Content-Type` (decides the parser).
    pub content_type: String,
    /// The body, decompressed.
    pub body: Vec<u8>,
}

/// Gets a target's metrics.
pub trait Fetcher: Send + Sync {
    /// Fetches; errors are human-readable reasons for the target page.
    fn fetch(&self, req: FetchRequest) -> BoxFuture<'_, Result<FetchResponse, String>>;
}

/// What Prometheus sends: OpenMetrics preferred, text format accepted.
pub const ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,\
text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// The real fetcher: reqwest with the job's auth and TLS settings.
pub struct HttpFetcher {
    client: reqwest::Client,
    authorization: Option<String>,
}

fn read_secret_file(path: &str) -> Result<String, ScrapeError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| ScrapeError::Config(format!("cannot read {path}: {e}")))
}

impl HttpFetcher {
    /// A fetcher for one job.
    pub fn new(job: &ScrapeConfig) -> Result<Self, ScrapeError> {
        let mut b = reqwest::Client::builder()
            .user_agent(concat!("infermon/", env!("CARGO_PKG_VERSION")))
            .redirect(if job.follow_redirects {
                reqwest::redirect::Policy::limited(10)
            } else {
                reqwest::redirect::Policy::none()
            });
        if !job.enable_compression {
            b = b.no_gzip();
        }
        if let Some(tls) = &job.tls_config {
            if tls.insecure_skip_verify {
                b = b.danger_accept_invalid_certs(true);
            }
            if let Some(ca) = &tls.ca_file {
                let pem = std::fs::read(ca)
                    .map_err(|e| ScrapeError::Config(format!("tls_config.ca_file {ca}: {e}")))?;
                let cert = reqwest::Certificate::from_pem(&pem)
                    .map_err(|e| ScrapeError::Config(format!("tls_config.ca_file {ca}: {e}")))?;
                b = b.add_root_certificate(cert);
            }
            if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
                let mut pem = std::fs::read(cert).map_err(|e| {
                    ScrapeError::Config(format!("tls_config.cert_file {cert}: {e}"))
                })?;
                pem.extend(
                    std::fs::read(key).map_err(|e| {
                        ScrapeError::Config(format!("tls_config.key_file {key}: {e}"))
                    })?,
                );
                let id = reqwest::Identity::from_pem(&pem).map_err(|e| {
                    ScrapeError::Config(format!("tls_config client certificate: {e}"))
                })?;
                b = b.identity(id);
            }
        }
        let authorization = if let Some(basic) = &job.basic_auth {
            let password = match (&basic.password, &basic.password_file) {
                (Some(p), _) => p.expose().to_string(),
                (None, Some(f)) => read_secret_file(f)?,
                (None, None) => String::new(),
            };
            use base64::Engine;
            let token = base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{password}", basic.username));
            Some(format!("Basic {token}"))
        } else if let Some(auth) = &job.authorization {
            let credentials = match (&auth.credentials, &auth.credentials_file) {
                (Some(c), _) => c.expose().to_string(),
                (None, Some(f)) => read_secret_file(f)?,
                (None, None) => String::new(),
            };
            Some(format!("{} {credentials}", auth.kind))
        } else {
            job.bearer_token
                .as_ref()
                .map(|t| format!("Bearer {}", t.expose()))
        };
        let client = b
            .build()
            .map_err(|e| ScrapeError::Config(format!("job {}: HTTP client: {e}", job.job_name)))?;
        Ok(HttpFetcher {
            client,
            authorization,
        })
    }
}

impl Fetcher for HttpFetcher {
    fn fetch(&self, req: FetchRequest) -> BoxFuture<'_, Result<FetchResponse, String>> {
        Box::pin(async move {
            let mut r = self
                .client
                .get(&req.url)
                .timeout(req.timeout)
                .header(reqwest::header::ACCEPT, ACCEPT)
                .header(
                    "X-Prometheus-Scrape-Timeout-Seconds",
                    format!("{}", req.timeout.as_secs_f64()),
                );
            if let Some(a) = &self.authorization {
                r = r.header(reqwest::header::AUTHORIZATION, a);
            }
            let mut resp = r.send().await.map_err(|e| describe(&e))?;
            if !resp.status().is_success() {
                return Err(format!("server returned HTTP status {}", resp.status()));
            }
            let content_type = resp
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(|e| describe(&e))? {
                body.extend_from_slice(&chunk);
                if let Some(limit) = req.body_limit
                    && body.len() as u64 > limit
                {
                    return Err(format!(
                        "body size limit exceeded: more than {limit} bytes (body_size_limit)"
                    ));
                }
            }
            Ok(FetchResponse { content_type, body })
        })
    }
}

fn describe(e: &reqwest::Error) -> String {
    // reqwest's Display hides the cause ("error sending request"); the chain says why.
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    if e.is_timeout() {
        msg = format!("scrape timed out: {msg}");
    }
    msg
}
