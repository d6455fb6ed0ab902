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

/// A fetched body, as it came over the wire.
#[derive(Clone, Debug)]
pub struct FetchResponse {
    /// `Content-Type` (decides the parser).
    pub content_type: String,
    /// How `body` is encoded (`Content-Encoding`).
    pub encoding: BodyEncoding,
    /// The body as sent: still compressed when `encoding` says so.
    pub body: Vec<u8>,
}

/// The `Content-Encoding`s a scrape accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyEncoding {
    /// As is.
    Identity,
    /// gzip (what Prometheus asks for, and exporters send).
    Gzip,
}

impl FetchResponse {
    /// An uncompressed body.
    pub fn plain(content_type: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
        FetchResponse {
            content_type: content_type.into(),
            encoding: BodyEncoding::Identity,
            body: body.into(),
        }
    }

    /// The body decompressed, refused once it passes `limit` bytes
    /// (`body_size_limit` counts decompressed bytes, as in Prometheus).
    /// Inflating here rather than in the HTTP client keeps it off the
    /// async threads, on the scrape threads' lower priority, and into one
    /// buffer of `size_hint` bytes (the last body's size) instead of
    /// chunk by chunk.
    pub fn into_decoded(self, limit: Option<u64>, size_hint: usize) -> Result<Vec<u8>, String> {
        match self.encoding {
            BodyEncoding::Identity => {
                check_limit(self.body.len() as u64, limit, limit)?;
                Ok(self.body)
            }
            BodyEncoding::Gzip => {
                use std::io::Read;
                let cap = limit.map_or(u64::MAX, |l| l.saturating_add(1));
                let mut out = Vec::with_capacity(size_hint);
                flate2::read::MultiGzDecoder::new(self.body.as_slice())
                    .take(cap)
                    .read_to_end(&mut out)
                    .map_err(|e| format!("cannot decompress the gzip body: {e}"))?;
                check_limit(out.len() as u64, limit, limit)?;
                Ok(out)
            }
        }
    }
}

/// Refuses `len` bytes over `cap`, naming the configured `limit`.
fn check_limit(len: u64, cap: Option<u64>, limit: Option<u64>) -> Result<(), String> {
    match (cap, limit) {
        (Some(cap), Some(limit)) if len > cap => Err(format!(
            "body size limit exceeded: more than {limit} bytes (body_size_limit)"
        )),
        _ => Ok(()),
    }
}

/// Most compressed bytes a body of `limit` decompressed bytes can take:
/// deflate's worst case is a fixed-Huffman block of bytes that each take 9
/// bits (an eighth more; fast encoders do send that for noise), plus block
/// and gzip framing well under 1 KiB.
fn compressed_limit(limit: u64) -> u64 {
    limit.saturating_add(limit / 8).saturating_add(1024)
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
    /// Ask for gzip (`enable_compression`); the scrape thread inflates it.
    gzip: bool,
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
            })
            // Bodies are inflated on the scrape threads, not in the client.
            .no_gzip();
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
            gzip: job.enable_compression,
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
            if self.gzip {
                r = r.header(reqwest::header::ACCEPT_ENCODING, "gzip");
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
            let encoding = match resp
                .headers()
                .get(reqwest::header::CONTENT_ENCODING)
                .map(|v| v.to_str().unwrap_or("").trim().to_ascii_lowercase())
                .as_deref()
            {
                None | Some("" | "identity") => BodyEncoding::Identity,
                Some("gzip" | "x-gzip") => BodyEncoding::Gzip,
                Some(other) => {
                    return Err(format!(
                        "unsupported Content-Encoding {other:?} (gzip or none are accepted)"
                    ));
                }
            };
            // The decompressed size is checked where the body is inflated;
            // here only what no body within the limit can exceed.
            let wire_limit = req.body_limit.map(|l| match encoding {
                BodyEncoding::Identity => l,
                BodyEncoding::Gzip => compressed_limit(l),
            });
            let expected = resp.content_length().unwrap_or(0);
            let mut body = Vec::with_capacity(
                expected.min(wire_limit.unwrap_or(u64::MAX)).min(64 << 20) as usize,
            );
            while let Some(chunk) = resp.chunk().await.map_err(|e| describe(&e))? {
                body.extend_from_slice(&chunk);
                check_limit(body.len() as u64, wire_limit, req.body_limit)?;
            }
            Ok(FetchResponse {
                content_type,
                encoding,
                body,
            })
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

#[cfg(test)]
mod tests {
    use super::compressed_limit;
    use std::io::Write;

    #[test]
    fn no_body_within_the_limit_is_refused_for_its_compressed_size() {
        // Incompressible bytes at every level, stored blocks included.
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let noise: Vec<u8> = (0..1_100_000)
            .map(|_| crate::util::xorshift(&mut x) as u8)
            .collect();
        for len in [0, 1, 1000, 65_536, 1_000_000] {
            for level in [0, 1, 6, 9] {
                let mut gz =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
                gz.write_all(&noise[..len]).unwrap();
                let z = gz.finish().unwrap();
                assert!(
                    z.len() as u64 <= compressed_limit(len as u64),
                    "{len} bytes at level {level}: {} compressed",
                    z.len()
                );
            }
        }
    }
}
