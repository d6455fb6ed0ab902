//! The HTTP side of one destination: a reqwest client with the entry's TLS,
//! auth and headers, posting snappy-compressed `WriteRequest`s with the
//! headers remote_write 1.0 requires.

use reqwest::header::{
    AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue,
};

use super::RemoteError;
use super::retry::{Outcome, classify_status};
use crate::config::RemoteWriteConfig;
use crate::util::retry::RetryPolicy;

/// `User-Agent` of every request.
pub const USER_AGENT: &str = concat!("infermon/", env!("CARGO_PKG_VERSION"));

/// Posts write requests to one URL.
pub struct WriteClient {
    client: reqwest::Client,
    url: String,
    retry: RetryPolicy,
}

fn read_secret_file(remote: &str, path: &str) -> Result<String, RemoteError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| config_error(remote, format!("cannot read {path}: {e}")))
}

fn config_error(remote: &str, reason: String) -> RemoteError {
    RemoteError::Config {
        remote: remote.to_string(),
        reason,
    }
}

/// The `Authorization` header value from `basic_auth`, `authorization` or
/// `bearer_token`, whichever is set.
fn authorization(remote: &str, c: &RemoteWriteConfig) -> Result<Option<String>, RemoteError> {
    if let Some(basic) = &c.basic_auth {
        let password = match (&basic.password, &basic.password_file) {
            (Some(p), _) => p.expose().to_string(),
            (None, Some(f)) => read_secret_file(remote, f)?,
            (None, None) => String::new(),
        };
        use base64::Engine;
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{password}", basic.username));
        return Ok(Some(format!("Basic {token}")));
    }
    if let Some(auth) = &c.authorization {
        let credentials = match (&auth.credentials, &auth.credentials_file) {
            (Some(v), _) => v.expose().to_string(),
            (None, Some(f)) => read_secret_file(remote, f)?,
            (None, None) => String::new(),
        };
        return Ok(Some(format!("{} {credentials}", auth.kind)));
    }
    Ok(c.bearer_token
        .as_ref()
        .map(|t| format!("Bearer {}", t.expose())))
}

impl WriteClient {
    /// A client for entry `c` (named `remote` in errors).
    pub fn new(remote: &str, c: &RemoteWriteConfig) -> Result<Self, RemoteError> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("snappy"));
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        );
        headers.insert(
            "X-Prometheus-Remote-Write-Version",
            HeaderValue::from_static("0.1.0"),
        );
        for (k, v) in &c.headers {
            let name = HeaderName::try_from(k.as_str())
                .map_err(|e| config_error(remote, format!("header {k:?}: {e}")))?;
            let mut value = HeaderValue::try_from(v.expose())
                .map_err(|e| config_error(remote, format!("header {k:?}: {e}")))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        if let Some(a) = authorization(remote, c)? {
            let mut value = HeaderValue::try_from(a)
                .map_err(|e| config_error(remote, format!("authorization: {e}")))?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let mut b = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .default_headers(headers)
            .timeout(c.remote_timeout.as_duration())
            // The body is snappy already; gzip on top would only cost CPU.
            .no_gzip()
            .redirect(if c.follow_redirects {
                reqwest::redirect::Policy::limited(10)
            } else {
                reqwest::redirect::Policy::none()
            });
        if let Some(tls) = &c.tls_config {
            if tls.insecure_skip_verify {
                b = b.danger_accept_invalid_certs(true);
            }
            if let Some(ca) = &tls.ca_file {
                let pem = std::fs::read(ca)
                    .map_err(|e| config_error(remote, format!("tls_config.ca_file {ca}: {e}")))?;
                let cert = reqwest::Certificate::from_pem(&pem)
                    .map_err(|e| config_error(remote, format!("tls_config.ca_file {ca}: {e}")))?;
                b = b.add_root_certificate(cert);
            }
            if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
                let mut pem = std::fs::read(cert).map_err(|e| {
                    config_error(remote, format!("tls_config.cert_file {cert}: {e}"))
                })?;
                pem.extend(std::fs::read(key).map_err(|e| {
                    config_error(remote, format!("tls_config.key_file {key}: {e}"))
                })?);
                let id = reqwest::Identity::from_pem(&pem).map_err(|e| {
                    config_error(remote, format!("tls_config client certificate: {e}"))
                })?;
                b = b.identity(id);
            }
        }
        let client = b
            .build()
            .map_err(|e| config_error(remote, format!("HTTP client: {e}")))?;
        Ok(WriteClient {
            client,
            url: c.url.expose().to_string(),
            retry: super::retry::policy(&c.queue_config),
        })
    }

    /// Posts one compressed request and classifies the answer.
    pub async fn send(&self, body: bytes::Bytes) -> Outcome {
        let resp = match self.client.post(&self.url).body(body).send().await {
            Ok(r) => r,
            Err(e) => return Outcome::Retry(format!("request failed: {}", describe(&e))),
        };
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            return Outcome::Sent;
        }
        // Only the start of an error body is logged; do not wait for more.
        let text = resp.text().await.unwrap_or_default();
        classify_status(status, &crate::util::redact::text(&text), &self.retry)
    }
}

/// reqwest's error with its causes (the top level alone says little), with
/// the URL redacted: this text goes to the log.
fn describe(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    crate::util::redact::text(&out)
}
