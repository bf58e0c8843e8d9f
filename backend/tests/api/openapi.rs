//! The OpenAPI document (`GET /api/openapi.json`) against a real primary: served to anyone,
//! a valid OpenAPI 3.1 document (openapi-spec-validator), and the API fuzzed against it by
//! schemathesis: no server error, and every answer (status, content type, headers, body) as
//! the document says. Both tools come from `scripts/test-python.sh`.

use std::time::Duration;

use crate::helpers::{TestPrimary, client, test_python};

/// What schemathesis checks: the answers, not whether the document spells out every rule
/// the handlers apply to valid-looking input (a 400 naming the field is a fine answer).
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_schema_conformance,response_headers_conformance,unsupported_method";

async fn document(primary: &TestPrimary) -> String {
    let response = client(None).get(format!("{}/api/openapi.json", primary.url)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    response.text().await.unwrap()
}

#[tokio::test]
async fn the_document_is_served_to_anyone_and_is_valid_openapi() {
    let primary = TestPrimary::spawn().await;
    let text = document(&primary).await;
    let file = primary.data_dir().join("openapi.json");
    std::fs::write(&file, &text).unwrap();
    let out = tokio::process::Command::new(test_python())
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .await
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "openapi-spec-validator: {said}");
}

/// Bounded: 40 examples per operation with a fixed seed (`FLEETDECK_FUZZ_SEED` picks
/// another), about a minute. The primary takes no jobs (`NODE_MAX_JOBS=0`: fuzzed commands
/// stay queued, never run) and sends no alert to a private address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_answer_outside_the_document() {
    let primary = TestPrimary::spawn_with(&[("NODE_MAX_JOBS", "0"), ("ALERTS_BLOCK_PRIVATE", "true")]).await;
    // The binary it serves for download is a small stand-in, not this 400 MB test binary.
    let downloads = primary.data_dir().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let platform = format!("fleetdeck-{}-{}", std::env::consts::OS, std::env::consts::ARCH);
    std::fs::write(downloads.join(platform), b"a stand-in binary").unwrap();
    let st = test_python().with_file_name("st");
    let seed = std::env::var("FLEETDECK_FUZZ_SEED").unwrap_or_else(|_| "20261201".into());
    let run = tokio::process::Command::new(&st)
        .args(["run", &format!("{}/api/openapi.json", primary.url)])
        .args(["--checks", CHECKS, "--max-examples", "40", "--request-timeout", "15", "--seed", &seed])
        .args(["--no-color"])
        // Its cache goes with the test's files, not into the source tree.
        .current_dir(primary.data_dir())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(600), run)
        .await
        .expect("schemathesis ends within 10 minutes")
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "schemathesis (seed {seed}) found failures:\n{said}");
    assert!(said.contains("passed"), "{said}");
}
