//! Build-time inputs: the embedded migrations, and the web UI embedded by `api::web_ui`.

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
    web_ui();
}

/// Points `FLEETDECK_UI_DIR` (read by `api::web_ui`'s `rust-embed` folder) at `frontend/dist` when
/// the UI has been built (`make run`, `make test`), and otherwise at a one-page placeholder, so
/// that `cargo build` works on a machine without Node.
fn web_ui() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into()));
    let frontend = manifest.join("../frontend");
    let dist = frontend.join("dist");
    if dist.join("index.html").is_file() {
        // A directory is scanned recursively: any rebuilt asset re-embeds the UI.
        println!("cargo:rerun-if-changed={}", dist.display());
        println!("cargo:rustc-env=FLEETDECK_UI_DIR={}", dist.display());
        println!("cargo:rustc-env=FLEETDECK_UI_BUILT=true");
        return;
    }
    // `frontend/` itself exists, so watching it notices a later `vite build` without making
    // cargo rerun this script on every build (which a missing path would).
    println!("cargo:rerun-if-changed={}", frontend.display());
    let out =
        PathBuf::from(std::env::var("OUT_DIR").unwrap_or_else(|_| "target".into())).join("ui-placeholder");
    if let Err(e) = write_placeholder(&frontend.join("placeholder.html"), &out) {
        println!("cargo:warning=could not write the web UI placeholder: {e}");
    }
    println!("cargo:rustc-env=FLEETDECK_UI_DIR={}", out.display());
    println!("cargo:rustc-env=FLEETDECK_UI_BUILT=false");
}

fn write_placeholder(source: &Path, out: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(out)?;
    std::fs::copy(source, out.join("index.html")).map(drop)
}
