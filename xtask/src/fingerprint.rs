//! `cargo xtask fingerprint --url URL --out FILE`: saves the schema
//! fingerprint of a live database (e.g. production, read-only) so a restore
//! drill can require the restored schema to equal it
//! (`cargo xtask drill restore-artifact --fingerprint FILE`).

use std::path::PathBuf;

use crate::exit;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// postgres://user:password@host:port/database (reads the catalog only).
    #[arg(long, env = "DATABASE_URL")]
    url: String,
    /// Where to write the fingerprint (JSON).
    #[arg(long)]
    out: PathBuf,
}

pub(crate) fn run(args: Args) -> u8 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::postgres::PgConnection::connect(&args.url)
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        drill::service::postgres::snapshot::fingerprint(&mut conn)
            .await
            .map_err(|e| e.to_string())
    });
    match result {
        Ok(fp) => {
            let text = serde_json::to_string_pretty(&fp).expect("serialisable");
            if let Err(e) = std::fs::write(&args.out, text) {
                eprintln!("error: cannot write {}: {e}", args.out.display());
                return exit::HARNESS_ERROR;
            }
            println!(
                "{} objects (digest {}) written to {}",
                fp.objects.len(),
                fp.digest(),
                args.out.display()
            );
            exit::OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::HARNESS_ERROR
        }
    }
}
