//! The drill's side of the compose `docker` shim ([`crate::compose::shim`]):
//! while a user's command runs in a drill that imported a compose file, a
//! loopback listener answers the shim. `exec` is answered with the command
//! to run (`docker exec` into the drill's container by its real name, or
//! natively the server's own tool aimed at it); what changes a server
//! (stop, start, restart, kill, rm, volume rm, up, down) the drill does
//! itself through the backend, so it keeps knowing where each server is,
//! and the tool shims are written again after it. What the shim did is in
//! the step's detail.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::services::Services;
use crate::backend::{BackendKind, Stop};
use crate::compose::shim::{self, Action, Names};
use crate::shell::ShellOutcome;
use crate::vocab::ServiceKind;
use crate::{Error, Result};

/// The compose names and what the runbook's lines did to the servers so
/// far in this recovery.
#[derive(Debug)]
pub(crate) struct Shim {
    names: Names,
    /// Containers `docker rm` removed (until `up` makes them again).
    removed: BTreeSet<ServiceKind>,
    /// What the shim did, in order, for the step's detail.
    pub(crate) did: Vec<String>,
}

/// A user's command as it ran, with what the shim did during it.
pub(crate) struct ShellRun {
    pub outcome: ShellOutcome,
    pub did: Vec<String>,
}

/// A line that failed, with what docker would have said.
struct Failed(String);

enum Reply {
    Exec(Vec<String>),
    Done(i32, String, String),
}

impl Shim {
    pub(crate) fn new(imported: &crate::compose::Imported) -> Shim {
        Shim {
            names: Names::of(imported),
            removed: BTreeSet::new(),
            did: Vec::new(),
        }
    }

    /// Runs `script` (as [`crate::shell::run`]) with `docker` and
    /// `docker-compose` shims first on PATH, answering them until it ends.
    /// Connections are read in their own tasks (a stranger on the port
    /// that sends nothing holds up no one); requests are answered here,
    /// one at a time, in the order they arrive.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn run_shell(
        &mut self,
        services: &mut Services,
        script: &str,
        dir: &Path,
        env: Vec<(String, String)>,
        timeout: Duration,
        log: PathBuf,
        work: &Path,
    ) -> Result<ShellRun> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(Error::io("listen on a loopback port for", work))?;
        let port = listener
            .local_addr()
            .map_err(Error::io("listen on a loopback port for", work))?
            .port();
        // A new token for each step: a shim left from an earlier step
        // cannot talk to this one.
        let token = crate::backend::new_password();
        let bin = work.join("bin");
        for (name, v1) in [("docker", false), ("docker-compose", true)] {
            let path = bin.join(name);
            crate::engine::services::write_private(&path, &shim::script(port, &token, v1))
                .map_err(Error::io("write the docker shim", &path))?;
        }
        // A step other than a shell (start, redis-restore-rdb) may have
        // brought a removed container's server back.
        let alive: Vec<ServiceKind> = self
            .removed
            .iter()
            .copied()
            .filter(|k| {
                tokio::task::block_in_place(|| {
                    services
                        .get_mut(*k)
                        .server_mut()
                        .server_mut()
                        .alive()
                        .is_ok()
                })
            })
            .collect();
        for k in alive {
            self.removed.remove(&k);
        }
        let (script, dir, scrub) = (
            script.to_string(),
            dir.to_path_buf(),
            crate::service::scrub_env(),
        );
        let mut child = tokio::task::spawn_blocking(move || {
            crate::shell::run(&script, &dir, &env, Some(timeout), &log, &scrub)
        });
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(Request, TcpStream)>(16);
        let reader = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                let (tx, token) = (tx.clone(), token.clone());
                tokio::spawn(async move {
                    let read = tokio::time::timeout(
                        Duration::from_secs(2),
                        read_request(&mut stream, &token),
                    )
                    .await;
                    if let Ok(Ok(Some(req))) = read {
                        let _ = tx.send((req, stream)).await;
                    }
                });
            }
        });
        let start = self.did.len();
        let outcome = loop {
            tokio::select! {
                done = &mut child => break done.map_err(|e| Error::Unexpected {
                    what: "a user's command".into(),
                    found: format!("its runner panicked: {e}"),
                }),
                Some((req, stream)) = rx.recv() => {
                    if let Err(e) = self.answer(req, stream, services, work).await {
                        tracing::warn!(error = %e, "docker shim: an answer was not delivered");
                    }
                }
            }
        };
        reader.abort();
        Ok(ShellRun {
            outcome: outcome??,
            did: self.did[start..].to_vec(),
        })
    }

    async fn answer(
        &mut self,
        req: Request,
        mut stream: TcpStream,
        services: &mut Services,
        work: &Path,
    ) -> std::io::Result<()> {
        // Passwords a line carries (`redis-cli -a "$REDIS_PASSWORD"`) stay
        // out of the step's detail.
        let secrets: Vec<String> = services
            .0
            .iter()
            .flat_map(|s| s.env())
            .filter(|(k, v)| crate::compose::is_secret(k) && !v.is_empty())
            .map(|(_, v)| v)
            .collect();
        let line = secrets
            .iter()
            .fold(req.args.join(" "), |l, s| l.replace(s.as_str(), "…"));
        let reply = match shim::parse(&req.args, &req.cwd, &self.names) {
            Err(why) => {
                self.did.push(format!("refused `docker {line}`"));
                Reply::Done(
                    1,
                    String::new(),
                    format!("drill's docker shim refused `docker {line}`: {why}"),
                )
            }
            Ok(action) => {
                let changes = shim::changes_servers(&action);
                let reply = tokio::task::block_in_place(|| self.act(action, services, work));
                self.did.push(match &reply {
                    Reply::Done(0, ..) | Reply::Exec(_) => format!("docker {line}"),
                    Reply::Done(code, ..) => format!("docker {line} (exit {code})"),
                });
                if changes {
                    // A new container means a new id in the tool shims.
                    let _ = services.env(work);
                }
                reply
            }
        };
        let mut out = Vec::new();
        match reply {
            Reply::Exec(argv) => {
                out.extend_from_slice(b"EXEC\0");
                for a in argv {
                    out.extend_from_slice(a.as_bytes());
                    out.push(0);
                }
            }
            Reply::Done(code, stdout, stderr) => {
                // The shim ends each with a newline of its own.
                for part in [
                    format!("DONE:{code}"),
                    stdout.trim_end_matches('\n').to_string(),
                    stderr.trim_end_matches('\n').to_string(),
                ] {
                    out.extend_from_slice(part.replace('\0', "").as_bytes());
                    out.push(0);
                }
            }
        }
        stream.write_all(&out).await?;
        stream.shutdown().await
    }

    fn container(&self, kind: ServiceKind) -> &str {
        &self.names.get(kind).container
    }

    fn act(&mut self, action: Action, services: &mut Services, work: &Path) -> Reply {
        match self.try_act(action, services, work) {
            Ok(r) => r,
            Err(Failed(message)) => Reply::Done(1, String::new(), message),
        }
    }

    fn try_act(
        &mut self,
        action: Action,
        services: &mut Services,
        work: &Path,
    ) -> std::result::Result<Reply, Failed> {
        let ok = |out: String| Ok(Reply::Done(0, out, String::new()));
        match action {
            Action::Exec {
                kind,
                opts,
                env,
                cmd,
            } => {
                let name = self.container(kind).to_string();
                if self.removed.contains(&kind) {
                    return Err(Failed(no_such(&name)));
                }
                let l = services.get_mut(kind).server_mut();
                if l.server_mut().alive().is_err() {
                    return Err(Failed(format!(
                        "Error response from daemon: container {name} is not running"
                    )));
                }
                match l.info().backend {
                    BackendKind::Docker => {
                        let id = l
                            .server()
                            .container()
                            .ok_or_else(|| Failed(no_such(&name)))?;
                        let docker = crate::backend::which("docker")
                            .map(|p| p.display().to_string())
                            .unwrap_or_else(|| "docker".into());
                        let mut argv = vec![docker, "exec".into()];
                        argv.extend(opts);
                        argv.push(id);
                        argv.extend(cmd);
                        Ok(Reply::Exec(argv))
                    }
                    BackendKind::Native => {
                        let tool = work.join("bin").join(&cmd[0]);
                        if cmd[0].contains('/') || !tool.is_file() {
                            return Err(Failed(format!(
                                "natively there is no container to run `{}` in: only the server's own tools run through `docker exec` here ({})",
                                cmd[0],
                                tools_in(&work.join("bin")).join(", ")
                            )));
                        }
                        // Where the server is now (a start after `rm` or
                        // `up` may have moved it to another port), then
                        // the line's own `-e`.
                        let mut argv = vec!["env".to_string()];
                        let now = services.get_mut(kind).env();
                        argv.extend(now.into_iter().chain(env).map(|(k, v)| format!("{k}={v}")));
                        argv.push(tool.display().to_string());
                        argv.extend(cmd.into_iter().skip(1));
                        Ok(Reply::Exec(argv))
                    }
                }
            }
            Action::Stop(kinds) => self.each(services, &kinds, |l| {
                l.server_mut()
                    .stop(Stop::Graceful)
                    .map(|_| ())
                    .map_err(|e| Failed(e.to_string()))
            }),
            Action::Kill(kinds) => self.each(services, &kinds, |l| {
                l.server_mut()
                    .stop(Stop::Kill)
                    .map(|_| ())
                    .map_err(|e| Failed(e.to_string()))
            }),
            Action::Start(kinds) => self.each(services, &kinds, |l| {
                if l.server_mut().alive().is_ok() {
                    return Ok(());
                }
                l.start_again().map_err(|e| Failed(e.to_string()))
            }),
            Action::Restart(kinds) => self.each(services, &kinds, |l| {
                l.restart().map(|_| ()).map_err(|e| Failed(e.to_string()))
            }),
            Action::Rm { kinds, force } => {
                let mut names = Vec::new();
                for k in kinds {
                    let name = self.container(k).to_string();
                    if self.removed.contains(&k) {
                        return Err(Failed(no_such(&name)));
                    }
                    let l = services.get_mut(k).server_mut();
                    if l.server_mut().alive().is_ok() {
                        if !force {
                            return Err(Failed(format!(
                                "Error response from daemon: cannot remove container \"/{name}\": container is running: stop the container before removing or force remove"
                            )));
                        }
                        l.server_mut()
                            .stop(Stop::Kill)
                            .map_err(|e| Failed(e.to_string()))?;
                    }
                    self.removed.insert(k);
                    names.push(name);
                }
                ok(names.join("\n"))
            }
            Action::VolumeRm(kinds) => {
                let mut names = Vec::new();
                for k in kinds {
                    let volume = self.names.get(k).data_volume.clone().unwrap_or_default();
                    if !self.removed.contains(&k) {
                        return Err(Failed(format!(
                            "Error response from daemon: remove {volume}: volume is in use - [{}]",
                            self.container(k)
                        )));
                    }
                    let l = services.get_mut(k).server_mut();
                    l.server_mut().wipe().map_err(|e| Failed(e.to_string()))?;
                    names.push(volume);
                }
                ok(names.join("\n"))
            }
            Action::VolumeCreate(names) => ok(names.join("\n")),
            Action::VolumeLs { quiet } => {
                let mut rows = if quiet {
                    vec![]
                } else {
                    vec![format!("{:<10}{}", "DRIVER", "VOLUME NAME")]
                };
                for s in &self.names.services {
                    let Some(v) = &s.data_volume else { continue };
                    rows.push(if quiet {
                        v.clone()
                    } else {
                        format!("{:<10}{v}", "local")
                    });
                }
                ok(rows.join("\n"))
            }
            Action::Up(kinds) => {
                let mut said = Vec::new();
                for k in kinds {
                    let name = self.container(k).to_string();
                    let l = services.get_mut(k).server_mut();
                    let was_removed = self.removed.remove(&k);
                    if !was_removed && l.server_mut().alive().is_ok() {
                        said.push(format!(" Container {name}  Running"));
                        continue;
                    }
                    l.start_again()
                        .map_err(|e| Failed(format!("{name}: {e}")))?;
                    said.push(format!(
                        " Container {name}  {}",
                        if was_removed {
                            "Created, Started"
                        } else {
                            "Started"
                        }
                    ));
                }
                Ok(Reply::Done(0, String::new(), said.join("\n")))
            }
            Action::Down { volumes } => {
                let all: Vec<ServiceKind> = self.names.services.iter().map(|s| s.kind).collect();
                for k in all {
                    if self.removed.contains(&k) {
                        continue;
                    }
                    let l = services.get_mut(k).server_mut();
                    l.server_mut()
                        .stop(Stop::Graceful)
                        .map_err(|e| Failed(e.to_string()))?;
                    self.removed.insert(k);
                    if volumes {
                        l.server_mut().wipe().map_err(|e| Failed(e.to_string()))?;
                    }
                }
                ok(String::new())
            }
            Action::Ps { all, quiet } => {
                let mut rows = if quiet {
                    vec![]
                } else {
                    vec![format!(
                        "{:<14}{:<44}{:<22}{}",
                        "CONTAINER ID", "IMAGE", "STATUS", "NAMES"
                    )]
                };
                let listed: Vec<(String, ServiceKind)> = self
                    .names
                    .services
                    .iter()
                    .map(|s| (s.container.clone(), s.kind))
                    .collect();
                for (name, k) in listed {
                    if self.removed.contains(&k) {
                        continue;
                    }
                    let l = services.get_mut(k).server_mut();
                    let up = l.server_mut().alive().is_ok();
                    if !up && !all {
                        continue;
                    }
                    let id: String = l
                        .server()
                        .container()
                        .unwrap_or_else(|| "native".into())
                        .chars()
                        .take(12)
                        .collect();
                    rows.push(if quiet {
                        id
                    } else {
                        format!(
                            "{id:<14}{:<44}{:<22}{name}",
                            l.info().source,
                            if up { "Up" } else { "Exited" }
                        )
                    });
                }
                ok(rows.join("\n"))
            }
            Action::Logs(k) => {
                if self.removed.contains(&k) {
                    return Err(Failed(no_such(self.container(k))));
                }
                ok(services.get_mut(k).server_mut().server().log_tail(200))
            }
            Action::Note(n) => Ok(Reply::Done(0, String::new(), n)),
        }
    }

    /// Does `f` to each of `kinds` (a removed container: docker's error).
    fn each(
        &mut self,
        services: &mut Services,
        kinds: &[ServiceKind],
        f: impl Fn(&mut dyn crate::service::Lifecycle) -> std::result::Result<(), Failed>,
    ) -> std::result::Result<Reply, Failed> {
        let mut names = Vec::new();
        for &k in kinds {
            let name = self.container(k).to_string();
            if self.removed.contains(&k) {
                return Err(Failed(no_such(&name)));
            }
            f(services.get_mut(k).server_mut()).map_err(|e| Failed(format!("{name}: {}", e.0)))?;
            names.push(name);
        }
        Ok(Reply::Done(0, names.join("\n"), String::new()))
    }
}

/// Docker's words for a container that is not there.
fn no_such(name: &str) -> String {
    format!("Error response from daemon: No such container: {name}")
}

/// A shim's question: where it ran and its arguments.
struct Request {
    cwd: PathBuf,
    args: Vec<String>,
}

/// The most arguments and bytes a request may have.
const MAX_ARGS: usize = 4096;
const MAX_BYTES: usize = 1 << 20;

/// token, cwd, argc, then argc arguments, each ending in NUL. None: a
/// wrong token (checked as the bytes arrive), a malformed count, or too
/// much.
async fn read_request(stream: &mut TcpStream, token: &str) -> std::io::Result<Option<Request>> {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    let want = token.as_bytes();
    loop {
        // The token first: a stranger is dropped at its first wrong byte.
        let head = &buf[..buf.len().min(want.len() + 1)];
        let expected = [want, b"\0"].concat();
        if head != &expected[..head.len()] {
            return Ok(None);
        }
        let fields: Vec<&[u8]> = buf.split(|b| *b == 0).collect();
        // `split` yields the part after the last NUL too.
        let complete = fields.len().saturating_sub(1);
        if complete >= 3 {
            let Some(argc) = std::str::from_utf8(fields[2])
                .ok()
                .and_then(|s| s.parse::<usize>().ok())
                .filter(|n| *n <= MAX_ARGS)
            else {
                return Ok(None);
            };
            if complete >= 3 + argc {
                let text = |f: &[u8]| String::from_utf8_lossy(f).into_owned();
                return Ok(Some(Request {
                    cwd: PathBuf::from(text(fields[1])),
                    args: fields[3..3 + argc].iter().map(|f| text(f)).collect(),
                }));
            }
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 || buf.len() + n > MAX_BYTES {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn tools_in(bin: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(bin)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with("docker"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
