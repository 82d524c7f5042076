//! schemathesis (PyPI) against a real `sluice serve` on a synthetic host,
//! driven by the committed OpenAPI document: 0 server errors, and every
//! 4xx names the offending field (`crates/agent/schemathesis/hooks.py`).
//!
//! schemathesis is looked up as `$SLUICE_SCHEMATHESIS`, then
//! `/opt/sluice-ci-venv/bin/schemathesis` (what `.ci/run` installs), then
//! `schemathesis` on `PATH`, then `python3 -m schemathesis`. When none is
//! there the test prints why and passes, unless `CI` is set: in CI it must
//! run. `SLUICE_SCHEMATHESIS_EXAMPLES` overrides the examples per
//! operation (default 100: about half a minute here).

mod agent_common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use agent_common::{Host, setup};

const VENV: &str = "/opt/sluice-ci-venv/bin/schemathesis";

/// The schemathesis command (program and leading arguments), if installed.
fn schemathesis() -> Option<Vec<String>> {
    let works = |argv: &[String]| {
        Command::new(&argv[0]).args(&argv[1..]).arg("--version").output().is_ok_and(|o| o.status.success())
    };
    let mut candidates: Vec<Vec<String>> = Vec::new();
    if let Ok(p) = std::env::var("SLUICE_SCHEMATHESIS") {
        candidates.push(vec![p]);
    }
    candidates.push(vec![VENV.into()]);
    candidates.push(vec!["schemathesis".into()]);
    candidates.push(vec!["python3".into(), "-m".into(), "schemathesis".into()]);
    candidates.into_iter().find(|c| works(c))
}

fn agent_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../agent")
}

#[test]
fn schemathesis_finds_no_server_error_and_every_4xx_names_its_field() {
    let Some(st) = schemathesis() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but schemathesis is not installed (.ci/run installs it into /opt/sluice-ci-venv)"
        );
        eprintln!(
            "SKIPPED: schemathesis is not installed (tried $SLUICE_SCHEMATHESIS, {VENV}, schemathesis on PATH, \
             python3 -m schemathesis) and CI is not set"
        );
        return;
    };
    let h = Host::new(8);
    let token = "schemathesis-token-0123456789";
    let tf = h.dir.path().join("token");
    std::fs::write(&tf, token).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let _s = h.serve_with(&["--tcp", &addr.to_string(), "--token-file", tf.to_str().unwrap()]);
    // Something to bind against, so the fuzzer reaches the binding code.
    setup(&h.client());
    let examples = std::env::var("SLUICE_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "100".into());
    let report = h.dir.path().join("junit.xml");
    let t = Instant::now();
    let out = Command::new(&st[0])
        .args(&st[1..])
        .args(["--no-color", "run"])
        .arg(agent_dir().join("openapi.json"))
        .args(["--url", &format!("http://{addr}")])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["--checks", "not_a_server_error,four_xx_names_the_field"])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--max-examples", &examples])
        .args(["--workers", "1", "--seed", "1", "--generation-database", ":memory:"])
        .arg("--report=junit")
        .arg(format!("--report-junit-path={}", report.display()))
        .env("SCHEMATHESIS_HOOKS", "hooks")
        .env("PYTHONPATH", agent_dir().join("schemathesis"))
        .current_dir(h.dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("schemathesis ran {:.0} s with {examples} examples per operation", t.elapsed().as_secs_f64());
    let tail: String =
        stdout.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
    eprintln!("{tail}");
    assert!(out.status.success(), "schemathesis failed:\n{stdout}\n{stderr}");
    assert!(!stdout.contains("Server error"), "{stdout}");
}
