//! The Redis service, one folder for everything about it: the server with
//! RDB and AOF on, its fixture and RDB backup ([`server`]), a digest of
//! every key ([`snapshot`]), the AOF's commands and the damage that costs
//! a predicted set of keys ([`aof`]), its checks ([`checks`]), its part of
//! the workload ([`workload`]), and the [`crate::service::Service`] that
//! ties them into a drill ([`service`]).

pub mod aof;
mod checks;
mod server;
mod service;
pub mod snapshot;
mod workload;

pub use server::{PORT, Redis, RedisSpec, load_fixture, parse_info};
pub(crate) use service::RedisService;
