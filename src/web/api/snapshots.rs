//! HTTP: list snapshots, download their files, take one now, and export any
//! range of raw samples (what `infermon export` reads from a running box).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;

use crate::snapshot::export::{self, ExportFormat, parse_time};
use crate::snapshot::{Snapshotter, parse_folder_name, yesterday};
use crate::web::{ApiError, Params};

/// `GET /api/v1/snapshots`, `GET /snapshots/{day}/{file}`,
/// `POST /api/v1/admin/snapshot[?day=YYYY-MM-DD]`, `GET /api/v1/export`,
/// `POST /api/v1/admin/backup`, `POST /api/v1/admin/import` (an OpenMetrics
/// export, plain or gzip, at most `server.limits.max_body_bytes`).
pub fn routes(snapshots: Arc<Snapshotter>) -> Router {
    Router::new()
        .route("/api/v1/snapshots", get(list))
        .route("/snapshots/{day}/{file}", get(download))
        .route("/api/v1/admin/snapshot", post(take_now))
        .route("/api/v1/export", get(export))
        .route("/api/v1/admin/backup", post(backup_now))
        .route("/api/v1/admin/import", post(import_now))
        .route("/api/v1/backups", get(list_backups))
        .route("/backups/{file}", get(download_backup))
        .with_state(snapshots)
}

async fn list(State(s): State<Arc<Snapshotter>>) -> Response {
    let s2 = s.clone();
    let list = tokio::task::spawn_blocking(move || s2.list())
        .await
        .unwrap_or_default();
    axum::Json(serde_json::json!({"status": "success", "data": list, "dir": s.dir().display().to_string()})).into_response()
}

async fn download(
    State(s): State<Arc<Snapshotter>>,
    Path((day, file)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let not_found = || {
        ApiError::not_found(format!(
            "no snapshot file {day}/{file}; see GET /api/v1/snapshots"
        ))
    };
    let path = s.file_path(&day, &file).ok_or_else(not_found)?;
    let body = file_body(&path).await.map_err(|_| not_found())?;
    let content_type = if file.ends_with(".json") {
        "application/json"
    } else {
        "application/gzip"
    };
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{day}-{file}\"")) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

async fn take_now(State(s): State<Arc<Snapshotter>>, params: Params) -> Result<Response, ApiError> {
    let day = match params.get("day") {
        Some(d) => parse_folder_name(d)
            .ok_or_else(|| ApiError::bad_request(format!("day {d:?} is not YYYY-MM-DD")))?,
        None => yesterday(crate::util::now_ms(), s.timezone()),
    };
    let now = crate::util::now_ms();
    let manifest = s
        .in_background(move |s| s.take_requested(day, now))
        .await??;
    Ok(axum::Json(serde_json::json!({"status": "success", "data": manifest})).into_response())
}

async fn backup_now(State(s): State<Arc<Snapshotter>>) -> Result<Response, ApiError> {
    let info = s.in_background(|s| s.backup_now()).await??;
    Ok(axum::Json(serde_json::json!({"status": "success", "data": info})).into_response())
}

async fn import_now(
    State(s): State<Arc<Snapshotter>>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let report = s.in_background(move |s| s.import(&body[..])).await??;
    Ok(axum::Json(serde_json::json!({"status": "success", "data": report})).into_response())
}

async fn list_backups(State(s): State<Arc<Snapshotter>>) -> Response {
    let list = tokio::task::spawn_blocking(move || s.backups())
        .await
        .unwrap_or_default();
    axum::Json(serde_json::json!({"status": "success", "data": list})).into_response()
}

async fn download_backup(
    State(s): State<Arc<Snapshotter>>,
    Path(file): Path<String>,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::not_found(format!("no backup {file}; see GET /api/v1/backups"));
    let path = s.backup_path(&file).ok_or_else(not_found)?;
    let body = file_body(&path).await.map_err(|_| not_found())?;
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.sqlite3"),
    );
    Ok(response)
}

/// A file as a response body read 64 KiB at a time, never whole (a backup
/// is the size of the store).
async fn file_body(path: &std::path::Path) -> std::io::Result<Body> {
    use tokio::io::AsyncReadExt;
    let file = tokio::fs::File::open(path).await?;
    let chunks = futures::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buf = vec![0u8; 64 << 10];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(buf), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    Ok(Body::from_stream(chunks))
}

async fn export(State(s): State<Arc<Snapshotter>>, params: Params) -> Result<Response, ApiError> {
    let now = crate::util::now_ms();
    let start = params
        .get("start")
        .map(parse_time)
        .transpose()
        .map_err(ApiError::bad_request)?
        .unwrap_or(now - 3_600_000);
    let end = params
        .get("end")
        .map(parse_time)
        .transpose()
        .map_err(ApiError::bad_request)?
        .unwrap_or(now);
    if end < start {
        return Err(ApiError::bad_request("end is before start"));
    }
    let format: ExportFormat = params
        .get("format")
        .unwrap_or("openmetrics")
        .parse()
        .map_err(ApiError::bad_request)?;
    let selectors: Vec<String> = params
        .all("match[]")
        .into_iter()
        .map(str::to_string)
        .collect();
    let groups = export::matcher_groups(&selectors).map_err(ApiError::bad_request)?;
    // Written family by family on a blocking thread and sent as it is
    // written; the first piece (or the error before it) decides the status.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let (err_tx, err_rx) = tokio::sync::oneshot::channel::<String>();
    // Not on the snapshot thread: a client that reads slowly holds its
    // thread for as long as it takes, and must not hold up backups.
    tokio::task::spawn_blocking(move || {
        let mut out = export::ChannelWriter::new(tx);
        if let Err(e) = s.export(&groups, start, end, format, &mut out) {
            let _ = err_tx.send(e);
        }
    });
    let Some(first) = rx.recv().await else {
        let e = err_rx
            .await
            .unwrap_or_else(|_| "the export stopped".to_string());
        return Err(ApiError::internal(e));
    };
    let rest = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|piece| (piece, rx))
    });
    let pieces = futures::stream::once(async move { first })
        .chain(rest)
        .map(Ok::<_, std::io::Error>);
    Ok((
        [(header::CONTENT_TYPE, format.content_type())],
        Body::from_stream(pieces),
    )
        .into_response())
}
