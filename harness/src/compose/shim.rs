//! The `docker` shim (filled in below).
