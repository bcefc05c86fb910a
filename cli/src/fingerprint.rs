//! `cargo xtask fingerprint --url URL --out FILE`: saves the schema
//! fingerprint of a live database (e.g. production, read-only) so a restore
//! drill can require the restored schema to equal it
//! (`cargo xtask drill restore-artifact --fingerprint FILE`).

use std::path::PathBuf;

use anyhow::Context;

use crate::Outcome;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// postgres://user:password@host:port/database (reads the catalog only).
    #[arg(long, env = "DATABASE_URL")]
    url: String,
    /// Where to write the fingerprint (JSON).
    #[arg(long)]
    out: PathBuf,
}

pub(crate) fn run(args: Args) -> Outcome {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("a tokio runtime")?;
    let fp = runtime.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::postgres::PgConnection::connect(&args.url)
            .await
            .context("cannot connect")?;
        anyhow::Ok(drill::service::postgres::snapshot::fingerprint(&mut conn).await?)
    })?;
    let text = serde_json::to_string_pretty(&fp).context("serialise the fingerprint")?;
    std::fs::write(&args.out, text)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    println!(
        "{} objects (digest {}) written to {}",
        fp.objects.len(),
        fp.digest(),
        args.out.display()
    );
    Ok(())
}
