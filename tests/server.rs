//! The binary itself: CLI, config checking, server start-up rules, auth,
//! limits, /metrics and graceful shutdown. Every test runs the real binary.

use crate::support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{TestServer, binary, client, repo_root};

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(binary())
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("run infermon");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const MINIMAL: &str = "server:\n  listen: 127.0.0.1:0\n  shutdown_timeout: 10s\nstorage:\n  path: {dir}/data\nmodels: []\n";

#[test]
fn help_lists_every_subcommand() {
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, 0);
    for sub in ["serve", "check", "version", "hash-password"] {
        assert!(out.contains(sub), "--help lacks {sub}: {out}");
    }
    for sub in ["serve", "check", "version", "hash-password"] {
        let (code, out, _) = run(&[sub, "--help"]);
        assert_eq!(code, 0, "{sub} --help");
        assert!(out.contains("Usage"), "{sub} --help: {out}");
    }
    let (code, out, _) = run(&["version"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with(&format!("infermon {}", env!("CARGO_PKG_VERSION"))),
        "{out}"
    );
}

#[test]
fn check_accepts_the_default_config() {
    let (code, out, _) = run(&["check", "config/infermon.yml"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn check_accepts_prometheus_yml_as_debian_ships_it() {
    let mut files = vec![repo_root().join("tests/testdata/config/prometheus-debian.good.yml")];
    let installed = std::path::Path::new("/etc/prometheus/prometheus.yml");
    if installed.exists() {
        files.push(installed.to_path_buf());
    }
    for file in files {
        let (code, out, _) = run(&["check", file.to_str().unwrap()]);
        assert_eq!(code, 0, "{}: {out}", file.display());
        assert!(out.contains("SUCCESS"), "{out}");
    }
    // Prometheus keys infermon does not act on are warnings, never silence.
    let (code, out, _) = run(&[
        "check",
        "tests/testdata/config/prometheus-unimplemented.good.yml",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(":4:1: warning: remote_read: not implemented"),
        "{out}"
    );
    assert!(
        out.contains(
            ":8:5: warning: scrape_configs[0] (k8s): kubernetes_sd_configs: not implemented"
        ),
        "{out}"
    );
}

#[test]
fn check_reports_each_broken_config_with_its_position() {
    let expected =
        std::fs::read_to_string(repo_root().join("tests/testdata/config/EXPECTED")).unwrap();
    let mut checked = 0;
    for line in expected
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (file, want) = line.split_once(char::is_whitespace).unwrap();
        let want = want.trim();
        let path = format!("tests/testdata/config/{file}");
        let (code, out, _) = run(&["check", &path]);
        assert_eq!(code, 1, "{file} should fail: {out}");
        let first = out.lines().next().unwrap_or("");
        assert!(
            first.contains(want),
            "{file}: expected `{want}` in first line, got:\n{out}"
        );
        checked += 1;
    }
    assert_eq!(checked, 9);
}

#[test]
fn hash_password_makes_a_bcrypt_hash_that_verifies() {
    let mut child = Command::new(binary())
        .args(["hash-password", "--cost", "4"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).unwrap();
    assert!(bcrypt::verify("s3cret", hash.trim()).unwrap());
}

#[test]
fn refuses_to_listen_on_all_interfaces_without_auth() {
    let err = TestServer::try_start(
        "server:\n  listen: 0.0.0.0:0\nmodels: []\nstorage:\n  path: {dir}/data\n",
    )
    .err()
    .expect("must refuse to start");
    assert!(err.contains("refusing to listen on 0.0.0.0:0"), "{err}");
    assert!(err.contains("server.auth"), "{err}");
}

#[test]
fn auth_protects_everything_but_probes_and_metrics() {
    let hash = bcrypt::hash("pw", 4).unwrap();
    let server = TestServer::start(&format!(
        "server:\n  listen: 127.0.0.1:0\n  auth:\n    api_keys: [k-123]\n    basic_auth_users:\n      admin: '{hash}'\nstorage:\n  path: {{dir}}/data\nmodels: []\n"
    ));
    let c = client();
    for public in ["/health", "/ready", "/metrics"] {
        assert_eq!(
            c.get(server.url(public)).send().unwrap().status(),
            200,
            "{public}"
        );
    }
    let r = c.get(server.url("/api/v1/anything")).send().unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("www-authenticate").is_some());
    let body: serde_json::Value = r.json().unwrap();
    assert_eq!(body["error_type"], "unauthorized");
    assert!(body["error"].as_str().unwrap().contains("Authorization"));
    let r = c
        .get(server.url("/api/v1/anything"))
        .bearer_auth("wrong")
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    // Past auth, the path itself is unknown: 404, not 401.
    let r = c
        .get(server.url("/api/v1/anything"))
        .bearer_auth("k-123")
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = c
        .get(server.url("/api/v1/anything"))
        .basic_auth("admin", Some("pw"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = c
        .get(server.url("/api/v1/anything"))
        .basic_auth("admin", Some("nope"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[test]
fn protect_metrics_requires_credentials_for_metrics() {
    let server = TestServer::start(
        "server:\n  listen: 127.0.0.1:0\n  auth:\n    api_keys: [k]\n    protect_metrics: true\nstorage:\n  path: {dir}/data\nmodels: []\n",
    );
    let c = client();
    assert_eq!(c.get(server.url("/metrics")).send().unwrap().status(), 401);
    assert_eq!(
        c.get(server.url("/metrics"))
            .bearer_auth("k")
            .send()
            .unwrap()
            .status(),
        200
    );
    assert_eq!(c.get(server.url("/health")).send().unwrap().status(), 200);
}

#[test]
fn oversized_body_gets_a_json_413() {
    let server = TestServer::start(MINIMAL);
    // Announce a 3 MiB body (the limit is 2 MiB) and send only the start: the
    // answer must come from the length alone, before the body is read.
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "POST /embed HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{{\"inputs\": \"",
        3 * 1024 * 1024
    )
    .unwrap();
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&response).contains("}") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => response.extend_from_slice(&buf[..n]),
        }
    }
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    let body = &response[response.find("\r\n\r\n").unwrap() + 4..];
    let v: serde_json::Value =
        serde_json::from_str(body.trim()).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(v["error_type"], "payload_too_large");
    assert!(v["error"].as_str().unwrap().contains("max_body_bytes"));
}

#[test]
fn metrics_count_requests_and_pass_promtool() {
    let server = TestServer::start(MINIMAL);
    let c = client();
    for _ in 0..7 {
        assert_eq!(c.get(server.url("/health")).send().unwrap().status(), 200);
    }
    assert_eq!(
        c.get(server.url("/no/such/page")).send().unwrap().status(),
        404
    );
    let text = c
        .get(server.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let count = |needle: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(needle))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{needle} missing in:\n{text}"))
    };
    assert_eq!(
        count(r#"infermon_http_requests_total{method="GET",route="/health",status="200"}"#),
        7.0
    );
    assert_eq!(
        count(r#"infermon_http_requests_total{method="GET",route="unmatched",status="404"}"#),
        1.0
    );
    assert_eq!(
        count(r#"infermon_http_request_duration_seconds_count{route="/health"}"#),
        7.0
    );
    assert_eq!(
        count("infermon_gpu_available"),
        if std::path::Path::new("/dev/nvidiactl").exists() {
            1.0
        } else {
            0.0
        }
    );
    assert!(text.contains("infermon_build_info{"), "{text}");
    assert!(text.contains("process_resident_memory_bytes"), "{text}");
    // Only the one info line about the missing GPU, no errors.
    assert!(!server.log().contains("ERROR"), "{}", server.log());

    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) must be installed: run scripts/install-test-deps.sh");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The only complaints allowed are node_exporter's own camelCase memory
    // names (node_memory_MemTotal_bytes…), kept so existing dashboards work.
    let complaints: Vec<&str> = report
        .lines()
        .filter(|l| !(l.starts_with("node_memory_") && l.contains("camelCase")))
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(complaints.is_empty(), "promtool check metrics:\n{report}");
    assert!(
        matches!(out.status.code(), Some(0) | Some(3)),
        "promtool exit {:?}: {report}",
        out.status
    );
}

#[test]
fn sigterm_drains_a_request_in_flight_and_exits_zero() {
    let mut server = TestServer::start(MINIMAL);
    // A request whose body is still arriving is in flight: the server must
    // keep the connection until it is answered.
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let body = b"{\"inputs\": \"hello\"}";
    write!(
        stream,
        "POST /embed HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(&body[..5]).unwrap();
    // The server is inside the request (reading its body) before SIGTERM.
    support::wait_for("the request in flight", Duration::from_secs(20), || {
        let text = client()
            .get(server.url("/metrics"))
            .send()
            .and_then(|r| r.text())
            .map_err(|e| e.to_string())?;
        let other_routes: f64 = support::parse_exposition(&text)
            .iter()
            .filter(|s| s.name == "infermon_http_requests_in_flight")
            .filter(|s| {
                !s.labels
                    .iter()
                    .any(|(k, v)| k == "route" && v == "/metrics")
            })
            .map(|s| s.value)
            .sum();
        if other_routes >= 1.0 {
            Ok(())
        } else {
            Err(text)
        }
    });
    server.terminate();
    server.wait_log("shutdown signal received", Duration::from_secs(20));
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "exited with a request in flight"
    );
    stream.write_all(&body[5..]).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 "), "{response}");
    // The in-flight request got a complete answer (JSON, whatever the route says).
    assert!(response.contains("\r\n\r\n{"), "{response}");
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("exits within the deadline");
    assert!(status.success(), "exit status {status:?}\n{}", server.log());
}

#[test]
fn repeated_failed_logins_lock_the_user_name_for_a_while() {
    let hash = bcrypt::hash("right", 4).unwrap();
    let server = TestServer::start(&format!(
        "server:\n  listen: 127.0.0.1:0\n  auth:\n    basic_auth_users:\n      admin: '{hash}'\nstorage:\n  path: {{dir}}/data\nmodels: []\n"
    ));
    let c = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let page = c.get(server.url("/login")).send().unwrap().text().unwrap();
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("csrf field on the login page")
        .to_string();
    let login = |password: &str| {
        c.post(server.url("/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "csrf={csrf}&username=admin&password={password}&next=%2F"
            ))
            .send()
            .unwrap()
    };
    // A success clears earlier failures.
    assert_eq!(login("wrong").status(), 401);
    assert_eq!(login("right").status(), 303);
    for _ in 0..5 {
        assert_eq!(login("wrong").status(), 401);
    }
    // Locked now, even with the right password, and told for how long.
    let r = login("right");
    assert_eq!(r.status(), 429);
    let retry: i64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&retry), "retry-after {retry}");
    assert!(
        r.text().unwrap().contains("Too many failed logins"),
        "the page says why"
    );
}
