//! ClickHouse backups, in the way the server's version allows:
//!
//! - `native`: `BACKUP DATABASE ... TO Disk('drill_backups', ...)` and
//!   `RESTORE`, on servers that have them (22.8 and later; current official
//!   images), onto a disk drill configures outside the data volume;
//! - `freeze`: `ALTER TABLE ... FREEZE` hard-links every part into
//!   `shadow/`, which is copied out of the data dir or volume; restored by
//!   copying the parts into `detached/` and `ALTER TABLE ... ATTACH PART`
//!   (any MergeTree server, 18.16 included);
//! - `export`: each table's rows in the `Native` format over HTTP, with its
//!   `CREATE TABLE`; restored by `INSERT ... FORMAT Native` (any version).
//!
//! Every backup is a folder with a `manifest.json` (method, server version,
//! each table's `CREATE TABLE`, rows and parts) so a restore needs nothing
//! but the folder.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::ClickHouse;
use crate::backend::sh_quote;
use crate::service::Lifecycle;
use crate::{Error, Result};

/// How the backup is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    Native,
    Freeze,
    Export,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Native => "native BACKUP/RESTORE",
            Method::Freeze => "ALTER TABLE ... FREEZE, restored through detached/ and ATTACH PART",
            Method::Export => "export in the Native format, restored with INSERT ... FORMAT Native",
        }
    }
}

/// Whether the server has `BACKUP`/`RESTORE` (22.8 and later).
pub fn supports_native(version: (u32, u32)) -> bool {
    version >= (22, 8)
}

/// The method for `wanted` (None: the best the server has), and why; Err
/// when the server cannot do what was asked.
pub fn resolve(ch: &ClickHouse, wanted: Option<Method>) -> Result<(Method, String)> {
    let v = ch.version();
    let native = supports_native(v);
    match wanted {
        None if native => Ok((
            Method::Native,
            format!("ClickHouse {} has BACKUP/RESTORE", ch.info().version),
        )),
        None => Ok((
            Method::Freeze,
            format!(
                "ClickHouse {} has no BACKUP/RESTORE (22.8 and later): FREEZE instead",
                ch.info().version
            ),
        )),
        Some(Method::Native) if !native => Err(Error::unexpected(
            "take a native ClickHouse backup",
            format!(
                "ClickHouse {} has no BACKUP/RESTORE (22.8 and later); use method = \"freeze\" or \"export\"",
                ch.info().version
            ),
        )),
        Some(m) => Ok((m, "as the scenario asks".into())),
    }
}

/// What a backup folder holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub method: Method,
    pub server_version: String,
    pub database: String,
    pub tables: Vec<TableEntry>,
}

/// One table in a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableEntry {
    pub name: String,
    pub create: String,
    pub rows: u64,
    /// freeze: the part directories copied.
    #[serde(default)]
    pub parts: Vec<String>,
}

/// A finished backup.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ChBackup {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub bytes: u64,
    #[serde(with = "crate::vocab::millis")]
    pub took: Duration,
}

/// The tables of the database that hold data (MergeTree family), with
/// their `CREATE TABLE` and where their data lies on the server.
async fn tables(ch: &ClickHouse) -> Result<Vec<(String, String, String)>> {
    let db = &ch.spec().database;
    let has_paths = ch
        .value("SELECT count() FROM system.columns WHERE database = 'system' AND table = 'tables' AND name = 'data_paths'")
        .await?
        == "1";
    let path = if has_paths {
        "data_paths[1]"
    } else {
        "data_path"
    };
    let rows = ch
        .rows(&format!(
            "SELECT name, create_table_query, {path} FROM system.tables \
             WHERE database = '{db}' AND engine LIKE '%MergeTree' ORDER BY name"
        ))
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| match &r[..] {
            [n, c, p] => Some((n.clone(), c.clone(), p.clone())),
            _ => None,
        })
        .collect())
}

/// Takes a backup of the analytics database into a new folder in `dir`.
pub async fn take(ch: &ClickHouse, method: Method, dir: &Path) -> Result<ChBackup> {
    let started = Instant::now();
    let db = ch.spec().database.clone();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let name = format!("clickhouse_backup_{stamp}");
    let out = dir.join(&name);
    std::fs::create_dir_all(&out).map_err(Error::io("create", &out))?;
    let mut entries = Vec::new();
    let listed = tables(ch).await?;
    for (t, create, _) in &listed {
        let rows: u64 = ch
            .value(&format!("SELECT count() FROM {db}.`{t}`"))
            .await?
            .parse()
            .unwrap_or(0);
        entries.push(TableEntry {
            name: t.clone(),
            create: create.clone(),
            rows,
            parts: Vec::new(),
        });
    }
    match method {
        Method::Export => {
            for e in &entries {
                let path = out.join(format!("{}.native", e.name));
                let mut file = tokio::fs::File::create(&path)
                    .await
                    .map_err(Error::io("create", &path))?;
                let mut cursor = ch
                    .client()
                    .query(&format!("SELECT * FROM {db}.`{}`", e.name))
                    .fetch_bytes("Native")
                    .map_err(Error::clickhouse(format!("export {db}.{}", e.name)))?;
                use tokio::io::AsyncWriteExt;
                while let Some(chunk) = cursor
                    .next()
                    .await
                    .map_err(Error::clickhouse(format!("export {db}.{}", e.name)))?
                {
                    file.write_all(&chunk)
                        .await
                        .map_err(Error::io("write", &path))?;
                }
                file.sync_all().await.map_err(Error::io("sync", &path))?;
            }
        }
        Method::Freeze => {
            let root = ch.data_root()?;
            tokio::task::block_in_place(|| ch.data_shell("rm -rf \"$DATA/shadow\""))?;
            for (t, _, _) in &listed {
                ch.execute(&format!("ALTER TABLE {db}.`{t}` FREEZE"))
                    .await?;
            }
            for ((t, _, data_path), e) in listed.iter().zip(entries.iter_mut()) {
                let rel = data_path
                    .strip_prefix(&root)
                    .ok_or_else(|| {
                        Error::unexpected(
                            format!("find {db}.{t}'s parts"),
                            format!("its data path {data_path} is not under {root}"),
                        )
                    })?
                    .trim_end_matches('/')
                    .to_string();
                let dst = out.join("freeze").join(t);
                let listing = tokio::task::block_in_place(|| {
                    ch.data_shell(&format!(
                        "mkdir -p {d} && for s in \"$DATA\"/shadow/*/{rel}; do \
                           [ -d \"$s\" ] && cp -a \"$s\"/. {d}/; done; ls {d}",
                        d = sh_quote(&dst.display().to_string()),
                        rel = sh_quote(&rel)
                    ))
                })?;
                e.parts = String::from_utf8_lossy(&listing)
                    .lines()
                    .filter(|l| !l.is_empty() && *l != "detached" && !l.ends_with(".txt"))
                    .map(str::to_string)
                    .collect();
                if e.rows > 0 && e.parts.is_empty() {
                    return Err(Error::unexpected(
                        format!("back up {db}.{t} with FREEZE"),
                        format!(
                            "it has {} rows but no frozen part was found under shadow/*/{rel}; try method = \"export\"",
                            e.rows
                        ),
                    ));
                }
            }
            tokio::task::block_in_place(|| ch.data_shell("rm -rf \"$DATA/shadow\"; sync"))?;
        }
        Method::Native => {
            ch.execute(&format!(
                "BACKUP DATABASE {db} TO Disk('drill_backups', '{name}')"
            ))
            .await?;
            let src = ch
                .spec()
                .backups_dir()
                .map(|d| d.join(&name))
                .ok_or_else(|| Error::unexpected("find the native backup", "no backups disk"))?;
            if ch.info().backend == crate::backend::BackendKind::Docker
                && !crate::backend::is_root()
            {
                // The server's user in the container wrote it (uid 101 in
                // the official image): a harness that is not root could
                // not remove it at teardown, nor the server read it back
                // after a chown. Open it to both.
                let dir = crate::backend::sh_quote(&src.display().to_string());
                tokio::task::block_in_place(|| ch.data_shell(&format!("chmod -R a+rwX {dir}")))?;
            }
            std::fs::write(out.join("native-backup"), src.display().to_string())
                .map_err(Error::io("write", out.join("native-backup")))?;
        }
    }
    let manifest = Manifest {
        method,
        server_version: ch.info().version.clone(),
        database: db,
        tables: entries,
    };
    let mpath = out.join("manifest.json");
    std::fs::write(
        &mpath,
        serde_json::to_vec_pretty(&manifest).expect("a manifest serialises"),
    )
    .map_err(Error::io("write", &mpath))?;
    Ok(ChBackup {
        bytes: dir_size(&out),
        dir: out,
        manifest,
        took: started.elapsed(),
    })
}

/// Restores a backup folder into the server; returns what it did, per table.
pub async fn restore(ch: &ClickHouse, backup: &Path) -> Result<String> {
    let mpath = backup.join("manifest.json");
    let manifest: Manifest =
        serde_json::from_slice(&std::fs::read(&mpath).map_err(Error::io("read", &mpath))?)
            .map_err(|e| Error::bad_input(format!("read {}", mpath.display()), e))?;
    let db = &manifest.database;
    ch.execute(&format!("CREATE DATABASE IF NOT EXISTS {db}"))
        .await?;
    let mut done = Vec::new();
    if manifest.method == Method::Native {
        let name = backup
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        ch.execute(&format!(
            "RESTORE DATABASE {db} FROM Disk('drill_backups', '{name}') SETTINGS allow_non_empty_tables = true"
        ))
        .await?;
        done.push(format!(
            "RESTORE DATABASE {db} ({} tables)",
            manifest.tables.len()
        ));
        return Ok(done.join("; "));
    }
    let existing: Vec<String> = ch
        .rows(&format!(
            "SELECT name FROM system.tables WHERE database = '{db}'"
        ))
        .await?
        .into_iter()
        .filter_map(|r| r.into_iter().next())
        .collect();
    for t in &manifest.tables {
        if !existing.contains(&t.name) {
            ch.execute(&t.create).await?;
        }
        match manifest.method {
            Method::Export => {
                let path = backup.join(format!("{}.native", t.name));
                let bytes = tokio::fs::read(&path)
                    .await
                    .map_err(Error::io("read", &path))?;
                let mut insert = ch
                    .client()
                    .insert_formatted_with(format!("INSERT INTO {db}.`{}` FORMAT Native", t.name));
                for chunk in bytes.chunks(1 << 20) {
                    insert
                        .send(bytes::Bytes::copy_from_slice(chunk))
                        .await
                        .map_err(Error::clickhouse(format!("load {db}.{}", t.name)))?;
                }
                insert
                    .end()
                    .await
                    .map_err(Error::clickhouse(format!("load {db}.{}", t.name)))?;
                done.push(format!("{}: {} rows loaded", t.name, t.rows));
            }
            Method::Freeze => {
                let (_, _, data_path) = tables(ch)
                    .await?
                    .into_iter()
                    .find(|(n, _, _)| *n == t.name)
                    .ok_or_else(|| {
                        Error::unexpected(
                            format!("restore {db}.{}", t.name),
                            "the table is not there",
                        )
                    })?;
                let src = backup.join("freeze").join(&t.name);
                let detached = sh_quote(&format!("{}/detached", data_path.trim_end_matches('/')));
                tokio::task::block_in_place(|| {
                    ch.data_shell(&format!(
                        "mkdir -p {detached} && cp -a {}/. {detached}/ && \
                         chown -R \"$(stat -c %u:%g \"$DATA\")\" {detached}",
                        sh_quote(&src.display().to_string())
                    ))
                })?;
                for part in &t.parts {
                    ch.execute(&format!(
                        "ALTER TABLE {db}.`{}` ATTACH PART '{part}'",
                        t.name
                    ))
                    .await?;
                }
                done.push(format!("{}: {} parts attached", t.name, t.parts.len()));
            }
            Method::Native => unreachable!("handled above"),
        }
    }
    Ok(done.join("; "))
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_backup_needs_22_8() {
        assert!(!supports_native((18, 16)));
        assert!(!supports_native((22, 3)));
        assert!(supports_native((22, 8)));
        assert!(supports_native((24, 8)));
    }
}
