//! remote_write: the Prometheus remote_write 1.0 protocol, received at
//! `POST /api/v1/write`.

pub mod proto;
pub mod receive;
