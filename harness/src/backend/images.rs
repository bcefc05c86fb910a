//! Which container image runs each service. The defaults are the official
//! images users pull, pinned to a version (never `latest`); every one can be
//! overridden by an environment variable (`DRILL_POSTGRES_IMAGE`,
//! `DRILL_REDIS_IMAGE`, `DRILL_CLICKHOUSE_IMAGE`) and per scenario
//! (`image = "..."` under `[services.<name>]`); the scenario wins.
//!
//! On a machine with no registry, `cargo xtask images` builds stand-ins
//! from Debian's packages ([`LOCAL`]) that behave like the official images
//! in everything drill relies on (entrypoint, environment, ports, data
//! path), and the tests select them through the environment variables.

use crate::vocab::ServiceKind;

/// The stand-in images `cargo xtask images` builds from Debian's packages.
pub const LOCAL: [(ServiceKind, &str); 3] = [
    (ServiceKind::Postgres, "drill-local/postgres:15"),
    (ServiceKind::Redis, "drill-local/redis:7.0"),
    (ServiceKind::ClickHouse, "drill-local/clickhouse:18.16"),
];

/// The local stand-in for a service.
pub fn local_image(kind: ServiceKind) -> &'static str {
    LOCAL
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, t)| *t)
        .expect("every kind has a local image")
}

/// Whether a Docker engine answers.
pub fn docker_answers() -> bool {
    super::docker::engine_answers()
}

/// Whether the engine holds `image` already.
pub fn image_present(image: &str) -> bool {
    super::docker::image_present(image)
}

/// Makes `image` present, pulling it when missing; the error says why it
/// could not (no registry, unknown tag) and what to do instead.
pub fn ensure_image(kind: ServiceKind, image: &str) -> crate::Result<()> {
    if image_present(image) {
        return Ok(());
    }
    super::docker::pull(image).map_err(|e| crate::Error::MissingTool {
        tool: format!("image {image}"),
        looked_in: format!("the Docker engine's images and its registry ({e})"),
        install: format!(
            "cargo xtask images (local stand-ins), then {}={}",
            kind.image_env(),
            local_image(kind)
        ),
    })
}

/// Whether `sh -c script` exits 0 in a throwaway container of `image` with
/// no network (e.g. "is this extension installed?"), asked once per image
/// and script per process.
pub fn image_passes(image: &str, script: &str) -> bool {
    use std::collections::HashMap;
    use std::sync::Mutex;
    static SEEN: Mutex<Option<HashMap<(String, String), bool>>> = Mutex::new(None);
    let key = (image.to_string(), script.to_string());
    if let Some(known) = SEEN
        .lock()
        .ok()
        .and_then(|m| m.as_ref().and_then(|m| m.get(&key).copied()))
    {
        return known;
    }
    let passes = super::docker::run_throwaway(image, script).is_ok_and(|o| o.status.success());
    if let Ok(mut m) = SEEN.lock() {
        m.get_or_insert_with(HashMap::new).insert(key, passes);
    }
    passes
}
