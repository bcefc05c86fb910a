//! The container backend: a server in a container started through
//! testcontainers, its data on a named Docker volume, its ports published
//! on 127.0.0.1 only.
//!
//! Faults act on real Docker objects: a wipe removes the volume and creates
//! it again (seed 003's "PostgreSQL Container Corruption"); a crash is
//! `docker kill -s KILL`; a restart with other settings is a new container
//! on the same volume (what `docker compose up` does after the compose file
//! changed). Client tools run inside the container with `docker exec -i`,
//! so their version is the server's; work on the data volume happens in a
//! throwaway container of the same image (the runbook's
//! `docker run --rm -v volume:/data ...`).
//!
//! Every container and volume is labelled with the run's id, the service
//! and the harness's pid and host. Dropping a [`ContainerServer`] removes
//! its container and volume; [`reap`] removes what a killed run left.

use std::collections::{BTreeMap, HashMap};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use nix::sys::signal::Signal;
use testcontainers::bollard::Docker;
use testcontainers::bollard::models::{NetworkCreateRequest, PortBinding, VolumeCreateRequest};
use testcontainers::bollard::query_parameters::{
    InspectContainerOptions, KillContainerOptionsBuilder, ListContainersOptionsBuilder,
    ListNetworksOptionsBuilder, ListVolumesOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder,
};
use testcontainers::core::{ContainerPort, Mount};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

use super::owner::{Decision, Owner, Whose, legacy_state};
use super::{BackendKind, ServerSpec, ServiceKind, Stop, block_on};
use crate::{Error, Result};

/// Label keys on every container and volume drill makes.
pub(crate) const LABEL_RUN: &str = "org.drill.run";
pub(crate) const LABEL_PID: &str = "org.drill.owner-pid";
pub(crate) const LABEL_HOST: &str = "org.drill.owner-host";
/// The owner in full ([`super::owner::Owner`]): boot, PID namespace, pid,
/// start time, host. The pid and host labels are for people (and for
/// objects made before this label).
pub(crate) const LABEL_OWNER: &str = "org.drill.owner";
pub(crate) const LABEL_SERVICE: &str = "org.drill.service";

const START_TIMEOUT: Duration = Duration::from_secs(120);

/// A server in a container. See the module docs.
pub(crate) struct ContainerServer {
    spec: ServerSpec,
    docker: Docker,
    volume: String,
    container: Option<ContainerAsync<GenericImage>>,
    /// Image port → host port on 127.0.0.1, read after each start.
    ports: BTreeMap<u16, u16>,
    /// How many containers this server has had (names stay unique).
    generation: u32,
    /// The current container's name: its address on a private network.
    name: String,
    keep: bool,
}

/// A private bridge network that only a drill's own servers join (a
/// primary and its replica), labelled like every drill object; removed on
/// drop (after the containers on it: the owner drops them first) and by
/// [`reap`] when its harness died.
#[derive(Debug)]
pub(crate) struct PrivateNetwork {
    pub(crate) name: String,
    keep: bool,
}

impl PrivateNetwork {
    pub(crate) fn create(run_id: &str, purpose: &str) -> Result<PrivateNetwork> {
        let docker = client()?;
        let name = format!("drill-{run_id}-{purpose}-{}", unique_suffix());
        tracing::debug!(network = %name, "docker network create");
        let req = NetworkCreateRequest {
            name: name.clone(),
            driver: Some("bridge".into()),
            labels: Some(labels(run_id, purpose)),
            ..Default::default()
        };
        block_on(docker.create_network(req))
            .map_err(Error::docker(format!("create network {name}")))?;
        Ok(PrivateNetwork { name, keep: false })
    }

    pub(crate) fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for PrivateNetwork {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        if let Ok(docker) = client() {
            tracing::debug!(network = %self.name, "docker network rm");
            let _ = block_on(docker.remove_network(&self.name));
        }
    }
}

impl std::fmt::Debug for ContainerServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerServer")
            .field("image", &self.spec.container.image)
            .field("container", &self.container.as_ref().map(|c| c.id()))
            .field("volume", &self.volume)
            .field("ports", &self.ports)
            .finish()
    }
}

impl ContainerServer {
    /// Creates the labelled volume and starts a container on it (without
    /// waiting for the server to answer).
    pub(crate) fn launch(spec: &ServerSpec) -> Result<ContainerServer> {
        let docker = client()?;
        let borrowed = spec.container.borrow_volume.clone();
        let volume = borrowed
            .as_ref()
            .map(|(v, _)| v.clone())
            .unwrap_or_else(|| format!("drill-{}-{}-{}", spec.run_id, spec.kind, unique_suffix()));
        let mut server = ContainerServer {
            spec: spec.clone(),
            docker,
            volume,
            container: None,
            ports: BTreeMap::new(),
            generation: 0,
            name: String::new(),
            keep: false,
        };
        if borrowed.is_none() {
            server.create_volume()?;
        }
        super::Server::start(&mut server, spec)?;
        Ok(server)
    }

    /// The container's id, while there is one.
    pub(crate) fn id(&self) -> Option<&str> {
        self.container.as_ref().map(|c| c.id())
    }

    fn labels(&self) -> HashMap<String, String> {
        labels(&self.spec.run_id, self.spec.kind.name())
    }

    fn create_volume(&self) -> Result<()> {
        tracing::debug!(volume = %self.volume, "docker volume create");
        let req = VolumeCreateRequest {
            name: Some(self.volume.clone()),
            labels: Some(self.labels()),
            ..Default::default()
        };
        block_on(self.docker.create_volume(req))
            .map(|_| ())
            .map_err(Error::docker(format!("create volume {}", self.volume)))
    }

    fn remove_volume(&self) -> Result<()> {
        if self.spec.container.borrow_volume.is_some() {
            // The volume is its owner's: only this server's folder goes.
            let out = super::Server::data_shell(self, "rm -rf \"$DATA\"")?;
            if !out.status.success() {
                return Err(Error::command(
                    format!(
                        "remove {}'s folder of volume {}",
                        self.spec.kind, self.volume
                    ),
                    &out,
                ));
            }
            return Ok(());
        }
        tracing::debug!(volume = %self.volume, "docker volume rm");
        let opts = RemoveVolumeOptionsBuilder::new().force(true).build();
        block_on(self.docker.remove_volume(&self.volume, Some(opts)))
            .map_err(Error::docker(format!("remove volume {}", self.volume)))
    }

    /// Removes the container (not the volume).
    fn remove_container(&mut self) -> Result<()> {
        if let Some(c) = self.container.take() {
            let id = c.id().to_string();
            block_on(c.rm()).map_err(|source| Error::Container {
                context: format!("remove container {id}"),
                source,
            })?;
        }
        Ok(())
    }

    fn running(&self) -> Option<bool> {
        let id = self.id()?;
        block_on(
            self.docker
                .inspect_container(id, None::<InspectContainerOptions>),
        )
        .ok()
        .and_then(|i| i.state)
        .and_then(|s| s.running)
    }

    fn help(&self) -> String {
        format!(
            "{} (docker, image {}, container {}, volume {}, ports {})\n  shell: docker exec -it {} sh",
            self.spec.kind,
            self.spec.container.image,
            self.id().map(short).unwrap_or("none"),
            self.volume,
            self.ports
                .iter()
                .map(|(i, h)| format!("{i} → 127.0.0.1:{h}"))
                .collect::<Vec<_>>()
                .join(", "),
            self.id().map(short).unwrap_or("none"),
        )
    }

    /// The harness's `uid:gid` when it is not root, so files a tool or a
    /// data shell writes into shared folders are the harness's to delete.
    fn host_user() -> Option<String> {
        (!super::is_root()).then(|| {
            format!(
                "{}:{}",
                nix::unistd::getuid().as_raw(),
                nix::unistd::getgid().as_raw()
            )
        })
    }
}

impl super::Server for ContainerServer {
    fn kind(&self) -> ServiceKind {
        self.spec.kind
    }

    fn backend(&self) -> BackendKind {
        BackendKind::Docker
    }

    fn source(&self) -> String {
        self.spec.container.image.clone()
    }

    fn addr(&self, port: u16) -> (String, u16) {
        ("127.0.0.1".into(), *self.ports.get(&port).unwrap_or(&0))
    }

    fn tool_addr(&self, port: u16) -> (String, u16) {
        ("127.0.0.1".into(), port)
    }

    fn peer_addr(&self, port: u16) -> (String, u16) {
        (self.name.clone(), port)
    }

    fn tool(&self, program: &str, env: &[(String, String)]) -> Command {
        let mut cmd = Command::new("docker");
        super::scrub_env(&mut cmd, &self.spec.scrub_env);
        cmd.args(["exec", "-i"]);
        if let Some(user) = Self::host_user() {
            cmd.args(["--user", &user]);
        }
        for (k, v) in env {
            cmd.arg("-e").arg(format!("{k}={v}"));
        }
        cmd.arg(self.id().unwrap_or("no-container")).arg(program);
        tracing::debug!(service = %self.spec.kind, container = self.id().map(short).unwrap_or(""), program, "docker exec -i");
        cmd
    }

    fn tool_merged(&self, program: &str, env: &[(String, String)]) -> Command {
        let mut cmd = self.tool("sh", env);
        cmd.args(["-c", "exec \"$0\" \"$@\" 2>&1", program]);
        cmd
    }

    fn tool_shim(
        &self,
        program: &str,
        fixed: &[(String, String)],
        passthrough: &[&str],
        args: &[String],
    ) -> String {
        let q = super::sh_quote;
        let mut script = format!(
            "#!/bin/sh\n# drill: {program} of the server's own version, in its container\nwd=/\n"
        );
        for dir in &self.spec.shared {
            let d = dir.display().to_string();
            script.push_str(&format!(
                "case \"$PWD/\" in {}/*) wd=\"$PWD\";; esac\n",
                q(&d)
            ));
        }
        // The engine's own client by its path: a step's PATH may start with
        // drill's compose `docker` shim.
        let docker = super::which("docker").unwrap_or_else(|| "docker".into());
        script.push_str(&format!(
            "exec {} exec -i -w \"$wd\"",
            q(&docker.display().to_string())
        ));
        if let Some(user) = Self::host_user() {
            script.push_str(&format!(" --user {user}"));
        }
        for (k, v) in fixed {
            script.push_str(&format!(" -e {}", q(&format!("{k}={v}"))));
        }
        for k in passthrough {
            script.push_str(&format!(" -e {k}"));
        }
        script.push_str(&format!(
            " {} {}",
            q(self.id().unwrap_or("none")),
            q(program)
        ));
        for a in args {
            script.push_str(&format!(" {}", q(a)));
        }
        script.push_str(" \"$@\"\n");
        script
    }

    fn data_location(&self) -> String {
        self.volume.clone()
    }

    fn data_shell_with(&self, script: &str, others: &[(String, String)]) -> Result<Output> {
        tracing::debug!(service = %self.spec.kind, volume = %self.volume, script, "docker run --rm (data shell)");
        let data = &self.spec.container.data;
        let mut cmd = Command::new("docker");
        cmd.args(["run", "--rm", "-i", "--network", "none"]);
        for (k, v) in self.labels() {
            cmd.arg("--label").arg(format!("{k}={v}"));
        }
        cmd.arg("-v").arg(format!("{}:{data}", self.volume));
        // A borrower's data is its folder of the volume.
        let own = match &self.spec.container.borrow_volume {
            Some((_, sub)) => format!("{data}/{sub}"),
            None => data.clone(),
        };
        // Beside it, never inside it: `/var/lib/postgresql/<var>`.
        let parent = std::path::Path::new(data)
            .parent()
            .map_or_else(|| "/".into(), |p| p.display().to_string());
        for (var, volume) in others {
            let at = format!("{parent}/drill-{}", var.to_lowercase());
            cmd.arg("-v").arg(format!("{volume}:{at}"));
            cmd.arg("-e").arg(format!("{var}={at}"));
        }
        // A server still running on one of the volumes must be visible:
        // in its PID namespace, the PID in its lock file is alive, so a
        // program that checks (PostgreSQL's postmaster.pid) refuses to
        // start a second server on the same data instead of taking a
        // stranger's PID 1 for a stale lock.
        if let Some(id) = std::iter::once(&self.volume)
            .chain(others.iter().map(|(_, v)| v))
            .find_map(|v| running_on(v))
        {
            cmd.arg("--pid").arg(format!("container:{id}"));
        }
        for dir in &self.spec.shared {
            let d = dir.display();
            cmd.arg("-v").arg(format!("{d}:{d}"));
        }
        // As root (the volume's files belong to the server's user); what
        // lands in shared folders is handed back to the harness's user.
        let handback = match Self::host_user() {
            Some(user) => self
                .spec
                .shared
                .iter()
                .map(|d| {
                    format!(
                        "; chown -R {user} {} 2>/dev/null",
                        super::sh_quote(&d.display().to_string())
                    )
                })
                .collect::<String>(),
            None => String::new(),
        };
        super::die_with_harness(&mut cmd);
        cmd.args(["-e", &format!("DATA={own}"), "--entrypoint", "sh"])
            .arg(&self.spec.container.image)
            .arg("-c")
            .arg(format!("{script}\nrc=$?{handback}; exit $rc"))
            .stdin(Stdio::null());
        cmd.output().map_err(|source| Error::Spawn {
            command: format!(
                "docker run --rm -v {}:{data} ... sh -c {script}",
                self.volume
            ),
            source,
        })
    }

    fn alive(&mut self) -> Result<()> {
        match self.running() {
            Some(true) => Ok(()),
            _ => Err(Error::Down {
                service: self.spec.kind,
                why: format!(
                    "container {} stopped",
                    self.id().map(short).unwrap_or("(none)")
                ),
                log_tail: self.log_tail(15),
            }),
        }
    }

    fn container(&self) -> Option<String> {
        self.id().map(str::to_string)
    }

    fn log_tail(&self, lines: usize) -> String {
        match self.id() {
            Some(id) => logs_of(&self.docker, id, lines),
            None => String::new(),
        }
    }

    fn stop(&mut self, how: Stop) -> Result<super::Stopped> {
        let Some(id) = self.id().map(str::to_string) else {
            return Ok(super::Stopped::default());
        };
        if self.running() != Some(true) {
            return Ok(super::Stopped::default());
        }
        let started = Instant::now();
        let signal = match how {
            Stop::Graceful => self.spec.stop_signal,
            Stop::Signal(s) => s,
            Stop::Kill => Signal::SIGKILL,
        };
        let kill = |sig: Signal| {
            let opts = KillContainerOptionsBuilder::new()
                .signal(sig.as_str())
                .build();
            block_on(self.docker.kill_container(&id, Some(opts)))
        };
        tracing::debug!(service = %self.spec.kind, container = short(&id), signal = signal.as_str(), "docker kill -s");
        kill(signal).map_err(Error::docker(format!("signal container {}", short(&id))))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut escalated = false;
        while self.running() == Some(true) {
            if Instant::now() > deadline {
                tracing::debug!(
                    container = short(&id),
                    "still running 10 s after its signal: SIGKILL"
                );
                let _ = kill(Signal::SIGKILL);
                escalated = true;
                std::thread::sleep(Duration::from_millis(200));
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(super::Stopped {
            was_running: true,
            escalated,
            took: started.elapsed(),
        })
    }

    fn start(&mut self, spec: &ServerSpec) -> Result<()> {
        self.stop(Stop::Graceful)?;
        self.remove_container()?;
        self.spec = spec.clone();
        self.generation += 1;
        let (name, tag) = split_image(&spec.container.image);
        let mut image = GenericImage::new(name, tag);
        for p in &spec.ports {
            image = image.with_exposed_port(ContainerPort::Tcp(*p));
        }
        let ports = spec.ports.clone();
        let limits = spec.container.limits;
        let name = format!(
            "drill-{}-{}-{}-{}",
            spec.run_id,
            spec.kind,
            self.generation,
            unique_suffix()
        );
        let mut req = image
            .with_container_name(name.clone())
            .with_labels(self.labels())
            .with_mount(Mount::volume_mount(&self.volume, &spec.container.data))
            .with_startup_timeout(START_TIMEOUT)
            // Published on loopback only, never on every interface.
            .with_host_config_modifier(move |hc| {
                if let Some(c) = limits.cpus {
                    hc.nano_cpus = Some((c * 1e9) as i64);
                }
                if let Some(m) = limits.memory {
                    hc.memory = Some(m as i64);
                    // No swap beyond it: a limit that swaps measures the disk.
                    hc.memory_swap = Some(m as i64);
                }
                hc.publish_all_ports = Some(false);
                hc.port_bindings = Some(
                    ports
                        .iter()
                        .map(|p| {
                            (
                                format!("{p}/tcp"),
                                Some(vec![PortBinding {
                                    host_ip: Some("127.0.0.1".into()),
                                    host_port: Some(String::new()),
                                }]),
                            )
                        })
                        .collect(),
                );
            });
        for dir in &spec.shared {
            let d = dir.display().to_string();
            req = req.with_mount(Mount::bind_mount(d.clone(), d));
        }
        for (k, v) in &spec.container.env {
            req = req.with_env_var(k, v);
        }
        if !spec.container.cmd.is_empty() {
            req = req.with_cmd(spec.container.cmd.clone());
        }
        for (path, content) in &spec.container.files {
            req = req.with_copy_to(path.as_str(), content.clone());
        }
        if let Some(net) = &spec.container.network {
            req = req.with_network(net.clone());
        }
        tracing::debug!(service = %spec.kind, image = %spec.container.image, container = %name, volume = %self.volume, cmd = %spec.redact(&spec.container.cmd.join(" ")), "docker run (testcontainers)");
        let container = match block_on(req.start()) {
            Ok(c) => c,
            Err(e) => {
                // What the server said before it stopped (a damaged AOF:
                // "Bad file format"), read before the container goes.
                let said = logs_of(&self.docker, &name, 30);
                // testcontainers leaves a container it created but could
                // not start (a copy or the start failed): remove it here.
                let opts = RemoveContainerOptionsBuilder::new()
                    .force(true)
                    .v(true)
                    .build();
                let _ = block_on(self.docker.remove_container(&name, Some(opts)));
                return Err(Error::Container {
                    context: if said.is_empty() {
                        format!("start a container from {}", spec.container.image)
                    } else {
                        format!(
                            "start a container from {}; its log:\n{said}",
                            spec.container.image
                        )
                    },
                    source: e,
                });
            }
        };
        let mut mapped = BTreeMap::new();
        for p in &spec.ports {
            let host = block_on(container.get_host_port_ipv4(ContainerPort::Tcp(*p))).map_err(
                |source| Error::Container {
                    context: format!("read the host port of {p}"),
                    source,
                },
            )?;
            mapped.insert(*p, host);
        }
        self.container = Some(container);
        self.ports = mapped;
        self.name = name;
        Ok(())
    }

    fn wipe(&mut self) -> Result<()> {
        if self.spec.container.borrow_volume.is_some() {
            return Err(Error::BadInput {
                what: format!("a wipe of {}", self.spec.kind),
                why: format!(
                    "its data is on another server's volume ({}); wipe that server",
                    self.volume
                ),
            });
        }
        tracing::debug!(service = %self.spec.kind, volume = %self.volume, "wipe: remove the container and the volume, create the volume again");
        self.stop(Stop::Kill)?;
        self.remove_container()?;
        self.remove_volume()?;
        self.create_volume()
    }

    fn keep(&mut self) -> String {
        self.keep = true;
        format!(
            "{}\n  remove with: cargo xtask clean (or docker rm -f {} && docker volume rm {})",
            self.help(),
            self.id().map(short).unwrap_or("-"),
            self.volume
        )
    }

    fn describe(&self) -> String {
        self.help()
    }

    #[cfg(feature = "test-support")]
    fn resources(&self) -> Vec<super::Resource> {
        let mut r: Vec<super::Resource> = self
            .id()
            .map(|id| super::Resource::Container(id.to_string()))
            .into_iter()
            .collect();
        r.push(super::Resource::Volume(self.volume.clone()));
        r
    }
}

impl Drop for ContainerServer {
    fn drop(&mut self) {
        if self.keep {
            // Neither the container nor the volume is removed.
            if let Some(c) = self.container.take() {
                std::mem::forget(c);
            }
            return;
        }
        let _ = self.remove_container();
        let _ = self.remove_volume();
    }
}

/// Removes containers (with their anonymous volumes), then volumes and
/// networks that drill labelled, for the harnesses `whose` selects.
/// Returns what it removed and what it left (with why); quietly nothing
/// when no Docker engine answers.
pub(crate) fn reap(whose: Whose) -> super::Sweep {
    let mut sweep = super::Sweep::default();
    if !super::images::docker_answers() {
        return sweep;
    }
    let Ok(docker) = client() else {
        return sweep;
    };
    let decide = |labels: &HashMap<String, String>, age: Option<Duration>| -> Decision {
        let (state, owner) = match labels.get(LABEL_OWNER).and_then(|o| Owner::parse(o)) {
            Some(owner) => (owner.state(), owner.describe()),
            None => match labels.get(LABEL_PID).and_then(|p| p.parse::<i32>().ok()) {
                Some(pid) => {
                    let host = labels.get(LABEL_HOST).map(String::as_str);
                    (
                        legacy_state(pid, host),
                        format!("pid {pid} on {}, an older drill", host.unwrap_or("?")),
                    )
                }
                None => return Decision::Skip,
            },
        };
        whose.decide(&owner, state, age)
    };
    let filter: HashMap<&str, Vec<&str>> = HashMap::from([("label", vec![LABEL_RUN])]);
    block_on(async {
        // A container being created or started while we look (the drill
        // runs on while Ctrl-C tears down) refuses removal for a moment:
        // look again until nothing of ours is left, for up to 5 s.
        for attempt in 0..50 {
            let left = reap_once(&docker, &filter, &decide, &mut sweep).await;
            if left == 0 {
                break;
            }
            tracing::debug!(attempt, left, "docker objects still there; reaping again");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    // Each pass lists what it leaves: once is enough.
    sweep.left.sort();
    sweep.left.dedup();
    sweep
}

/// How long ago a time the engine gives (seconds since the epoch) was.
fn age_of(unix_secs: Option<i64>) -> Option<Duration> {
    let t = std::time::UNIX_EPOCH + Duration::from_secs(unix_secs?.max(0) as u64);
    std::time::SystemTime::now().duration_since(t).ok()
}

/// One pass of [`reap`]: removes what `decide` takes, lists what it
/// leaves; returns how many of those taken could not be removed yet.
async fn reap_once(
    docker: &Docker,
    filter: &HashMap<&str, Vec<&str>>,
    decide: &impl Fn(&HashMap<String, String>, Option<Duration>) -> Decision,
    sweep: &mut super::Sweep,
) -> usize {
    let mut left = 0;
    let opts = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(filter)
        .build();
    for c in docker.list_containers(Some(opts)).await.unwrap_or_default() {
        let labels = c.labels.clone().unwrap_or_default();
        let Some(id) = c.id.clone() else { continue };
        let name = c
            .names
            .as_ref()
            .and_then(|n| n.first().cloned())
            .unwrap_or_else(|| short(&id).to_string());
        let name = format!("container {}", name.trim_start_matches('/'));
        match decide(&labels, age_of(c.created)) {
            Decision::Take => {}
            Decision::Leave(why) => {
                sweep.left.push(format!("{name}: {why}"));
                continue;
            }
            Decision::Skip => continue,
        }
        let opts = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        tracing::debug!(container = short(&id), "docker rm -f");
        match docker.remove_container(&id, Some(opts)).await {
            Ok(()) => sweep.removed.push(name),
            Err(e) => {
                tracing::debug!(container = short(&id), error = %e, "not removed yet");
                left += 1;
            }
        }
    }
    let opts = ListVolumesOptionsBuilder::new().filters(filter).build();
    let volumes = docker
        .list_volumes(Some(opts))
        .await
        .ok()
        .and_then(|v| v.volumes)
        .unwrap_or_default();
    for v in volumes {
        match decide(&v.labels, age_of(v.created_at.map(|t| t.unix_timestamp()))) {
            Decision::Take => {}
            Decision::Leave(why) => {
                sweep.left.push(format!("volume {}: {why}", v.name));
                continue;
            }
            Decision::Skip => continue,
        }
        let opts = RemoveVolumeOptionsBuilder::new().force(true).build();
        tracing::debug!(volume = %v.name, "docker volume rm");
        match docker.remove_volume(&v.name, Some(opts)).await {
            Ok(()) => sweep.removed.push(format!("volume {}", v.name)),
            Err(_) => left += 1,
        }
    }
    let opts = ListNetworksOptionsBuilder::new().filters(filter).build();
    for n in docker.list_networks(Some(opts)).await.unwrap_or_default() {
        let (Some(name), Some(labels)) = (n.name, n.labels) else {
            continue;
        };
        match decide(&labels, age_of(n.created.map(|t| t.unix_timestamp()))) {
            Decision::Take => {}
            Decision::Leave(why) => {
                sweep.left.push(format!("network {name}: {why}"));
                continue;
            }
            Decision::Skip => continue,
        }
        tracing::debug!(network = %name, "docker network rm");
        match docker.remove_network(&name).await {
            Ok(()) => sweep.removed.push(format!("network {name}")),
            Err(_) => left += 1,
        }
    }
    left
}

#[cfg(feature = "test-support")]
/// Containers, volumes and networks on the engine that carry `run_id`'s
/// label (for tests and `--keep` output).
pub fn objects_of_run(run_id: &str) -> Vec<String> {
    let Ok(docker) = client() else {
        return Vec::new();
    };
    let want = format!("{LABEL_RUN}={run_id}");
    let filter: HashMap<&str, Vec<&str>> = HashMap::from([("label", vec![want.as_str()])]);
    block_on(async {
        let mut found = Vec::new();
        let opts = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filter)
            .build();
        for c in docker.list_containers(Some(opts)).await.unwrap_or_default() {
            found.push(format!("container {}", c.id.unwrap_or_default()));
        }
        let opts = ListVolumesOptionsBuilder::new().filters(&filter).build();
        if let Some(vs) = docker
            .list_volumes(Some(opts))
            .await
            .ok()
            .and_then(|v| v.volumes)
        {
            found.extend(vs.into_iter().map(|v| format!("volume {}", v.name)));
        }
        let opts = ListNetworksOptionsBuilder::new().filters(&filter).build();
        for n in docker.list_networks(Some(opts)).await.unwrap_or_default() {
            found.push(format!("network {}", n.name.unwrap_or_default()));
        }
        found
    })
}

/// Runs `sh -c script` in a throwaway container of `image` with no
/// network, for a probe of what the image holds.
pub(crate) fn run_throwaway(image: &str, script: &str) -> Result<Output> {
    tracing::debug!(image, script, "docker run --rm (probe)");
    Command::new("docker")
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            "--entrypoint",
            "sh",
            image,
            "-c",
            script,
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(Error::spawn(format!("docker run --rm {image} sh -c ...")))
}

/// Whether a Docker engine answers.
pub(crate) fn engine_answers() -> bool {
    client().is_ok_and(|d| block_on(d.ping()).is_ok())
}

/// Whether the engine holds `image`.
pub(crate) fn image_present(image: &str) -> bool {
    client().is_ok_and(|d| block_on(d.inspect_image(image)).is_ok())
}

/// Pulls `image`; Err says why it could not (no registry, unknown tag).
pub(crate) fn pull(image: &str) -> Result<()> {
    use testcontainers::bollard::query_parameters::CreateImageOptionsBuilder;
    let docker = client()?;
    let (repo, tag) = split_image(image);
    tracing::debug!(image, "docker pull");
    let opts = CreateImageOptionsBuilder::new()
        .from_image(&repo)
        .tag(&tag)
        .build();
    block_on(async {
        let mut progress = docker.create_image(Some(opts), None, None);
        while let Some(step) = progress.next().await {
            step.map_err(Error::docker(format!("pull {image}")))?;
        }
        Ok(())
    })
}

/// The labels every drill object carries.
fn labels(run_id: &str, service: &str) -> HashMap<String, String> {
    HashMap::from([
        (LABEL_RUN.to_string(), run_id.to_string()),
        (LABEL_PID.to_string(), std::process::id().to_string()),
        (LABEL_HOST.to_string(), hostname()),
        (LABEL_OWNER.to_string(), super::owner::Owner::me().label()),
        (LABEL_SERVICE.to_string(), service.to_string()),
    ])
}

fn client() -> Result<Docker> {
    Docker::connect_with_defaults().map_err(Error::docker("connect to the Docker engine"))
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn unique_suffix() -> String {
    use rand::RngExt;
    let n: u32 = rand::rng().random();
    format!("{:06x}", n & 0xff_ffff)
}

/// The last `lines` a container (by id or name) logged.
fn logs_of(docker: &Docker, container: &str, lines: usize) -> String {
    let opts = LogsOptionsBuilder::new()
        .stdout(true)
        .stderr(true)
        .tail(&lines.to_string())
        .build();
    let chunks: Vec<String> = block_on(async {
        docker
            .logs(container, Some(opts))
            .filter_map(|c| async move { c.ok().map(|c| c.to_string()) })
            .collect()
            .await
    });
    chunks.concat().trim_end().to_string()
}

/// A running container with `volume` mounted, if any.
fn running_on(volume: &str) -> Option<String> {
    let docker = client().ok()?;
    let filter: HashMap<&str, Vec<&str>> = HashMap::from([("volume", vec![volume])]);
    let opts = ListContainersOptionsBuilder::new().filters(&filter).build();
    block_on(docker.list_containers(Some(opts)))
        .ok()?
        .into_iter()
        .find_map(|c| c.id)
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// `repo[:tag]` → (repo, tag), minding registry ports (`host:5000/x`).
pub(crate) fn split_image(image: &str) -> (String, String) {
    let slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[slash..].rfind(':') {
        Some(i) => (
            image[..slash + i].to_string(),
            image[slash + i + 1..].to_string(),
        ),
        None => (image.to_string(), "latest".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_split_into_repository_and_tag() {
        let s = |i: &str| split_image(i);
        assert_eq!(s("redis:7.4.1"), ("redis".into(), "7.4.1".into()));
        assert_eq!(
            s("timescale/timescaledb:2.17.2-pg16"),
            ("timescale/timescaledb".into(), "2.17.2-pg16".into())
        );
        assert_eq!(
            s("registry.local:5000/team/pg:15"),
            ("registry.local:5000/team/pg".into(), "15".into())
        );
        assert_eq!(
            s("registry.local:5000/team/pg"),
            ("registry.local:5000/team/pg".into(), "latest".into())
        );
    }
}
