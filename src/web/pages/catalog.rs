//! The Dashboards page: every dashboard (built-in, from the config's
//! `dashboards:`, uploaded), the upload form for admins, uploads and deletes.

use std::sync::Arc;

use askama::Template;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::ctx::{PageCtx, PageFrame, csrf_rejected};
use super::uploads::UploadError;
use super::{BUILT_IN, Pages};
use crate::web::auth::CSRF_HEADER;
use crate::web::{ApiError, Params};

struct Entry {
    uid: String,
    title: String,
    panels: String,
    origin: &'static str,
    uploaded: bool,
}

#[derive(Template)]
#[template(path = "dashboards.html")]
struct DashboardsPage {
    page: PageFrame,
    dashboards: Vec<Entry>,
    message: Option<String>,
    error: Option<String>,
    upload_label: &'static str,
    upload_button: &'static str,
    delete_label: &'static str,
}

fn render(pages: &Pages, ctx: &PageCtx, error: Option<String>, status: StatusCode) -> Response {
    let page = ctx.frame("Dashboards", "Dashboards", false);
    let l = page.lang;
    let count = |d: &super::Dashboard| {
        format!(
            "{} panels",
            d.flat_panels().iter().filter(|p| p.kind != "row").count()
        )
    };
    let mut dashboards: Vec<Entry> = pages
        .dashboards
        .load()
        .iter()
        .map(|(uid, d)| Entry {
            uid: uid.clone(),
            title: d.title.clone(),
            panels: count(d),
            origin: if BUILT_IN.iter().any(|(b, _)| b == uid) {
                l.t("built-in")
            } else {
                l.t("configured")
            },
            uploaded: false,
        })
        .collect();
    dashboards.extend(pages.uploads.list().into_iter().map(|(uid, d)| Entry {
        panels: count(&d),
        uid,
        title: d.title,
        origin: l.t("uploaded"),
        uploaded: true,
    }));
    let message = ctx
        .params
        .get("uploaded")
        .map(|uid| format!("{}: {uid}", l.t("Uploaded")));
    let mut response = ctx.html(
        DashboardsPage {
            page,
            dashboards,
            message,
            error,
            upload_label: l.t("Upload a Grafana dashboard (JSON)"),
            upload_button: l.t("Upload"),
            delete_label: l.t("Delete"),
        }
        .render(),
    );
    if response.status() == StatusCode::OK {
        *response.status_mut() = status;
    }
    response
}

/// `GET /dashboards`.
pub(super) async fn list(State(pages): State<Arc<Pages>>, ctx: PageCtx) -> Response {
    render(&pages, &ctx, None, StatusCode::OK)
}

/// What an upload request carried.
struct Upload {
    csrf: Option<String>,
    file_name: String,
    bytes: Vec<u8>,
}

async fn read_multipart(req: Request) -> Result<Upload, String> {
    let mut form = Multipart::from_request(req, &())
        .await
        .map_err(|e| e.body_text())?;
    let mut upload = Upload {
        csrf: None,
        file_name: "upload.json".to_string(),
        bytes: Vec::new(),
    };
    while let Some(field) = form.next_field().await.map_err(|e| e.body_text())? {
        match field.name() {
            Some("csrf") => upload.csrf = Some(field.text().await.map_err(|e| e.body_text())?),
            Some("dashboard") => {
                if let Some(name) = field.file_name() {
                    upload.file_name = name.to_string();
                }
                upload.bytes = field.bytes().await.map_err(|e| e.body_text())?.to_vec();
            }
            _ => {}
        }
    }
    Ok(upload)
}

/// `POST /dashboards/upload` (admins): the page's multipart form (answers
/// with the page, the error shown above the list), or a plain JSON body
/// from a script or `curl` (answers JSON).
pub(super) async fn upload(
    State(pages): State<Arc<Pages>>,
    ctx: PageCtx,
    headers: HeaderMap,
    req: Request,
) -> Response {
    let from_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("multipart/form-data"));
    let upload = if from_form {
        match read_multipart(req).await {
            Ok(u) => u,
            Err(e) => {
                return render(&pages, &ctx, Some(e), StatusCode::BAD_REQUEST);
            }
        }
    } else {
        match axum::body::to_bytes(req.into_body(), usize::MAX).await {
            Ok(b) => Upload {
                csrf: headers
                    .get(CSRF_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
                file_name: "upload.json".to_string(),
                bytes: b.to_vec(),
            },
            Err(e) => return ApiError::bad_request(e.to_string()).into_response(),
        }
    };
    if !ctx.csrf_ok(upload.csrf.as_deref()) {
        return csrf_rejected();
    }
    let taken: Vec<String> = pages
        .dashboards
        .load()
        .iter()
        .map(|(u, _)| u.clone())
        .collect();
    let stored = {
        let uploads = pages.uploads.clone();
        tokio::task::spawn_blocking(move || uploads.store(&upload.bytes, &upload.file_name, &taken))
            .await
            .unwrap_or_else(|e| {
                Err(UploadError::Io {
                    path: "-".into(),
                    source: std::io::Error::other(e),
                })
            })
    };
    match (stored, from_form) {
        (Ok(uid), true) => {
            tracing::info!(%uid, "dashboard uploaded");
            let location = format!(
                "/dashboards?uploaded={}",
                form_urlencoded::byte_serialize(uid.as_bytes()).collect::<String>()
            );
            (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
        }
        (Ok(uid), false) => (
            StatusCode::CREATED,
            axum::Json(serde_json::json!({
                "status": "success",
                "uid": uid,
                "url": format!("/dashboards/{uid}"),
            })),
        )
            .into_response(),
        (Err(e), true) => render(
            &pages,
            &ctx,
            Some(e.to_string()),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (Err(e), false) => ApiError::from(e).into_response(),
    }
}

/// `POST /dashboards/{uid}/delete` (admins): removes an upload.
pub(super) async fn delete(
    State(pages): State<Arc<Pages>>,
    Path(uid): Path<String>,
    ctx: PageCtx,
    form: Params,
) -> Response {
    if !ctx.csrf_ok(form.get("csrf")) {
        return csrf_rejected();
    }
    match pages.uploads.delete(&uid) {
        Ok(true) => (StatusCode::SEE_OTHER, [(header::LOCATION, "/dashboards")]).into_response(),
        Ok(false) => ApiError::not_found(format!("no uploaded dashboard {uid:?}")).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}
