#!/bin/sh
# drill's stand-in for the official clickhouse-server image's entrypoint,
# for the image `cargo xtask images` builds from Debian's clickhouse-server
# 18.16. Like the official one, CLICKHOUSE_USER (default: default) and
# CLICKHOUSE_PASSWORD create a user that may connect from anywhere; without
# arguments it runs the server with the image's config.
set -e
if [ -n "$CLICKHOUSE_PASSWORD" ]; then
  user="${CLICKHOUSE_USER:-default}"
  mkdir -p /etc/clickhouse-server/users.d
  cat > /etc/clickhouse-server/users.d/default-user.xml <<XML
<?xml version="1.0"?>
<yandex>
  <users>
    <${user}>
      <password>${CLICKHOUSE_PASSWORD}</password>
      <networks><ip>::/0</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </${user}>
  </users>
</yandex>
XML
fi
if [ $# -eq 0 ]; then
  set -- clickhouse-server --config-file=/etc/clickhouse-server/config.xml
fi
exec "$@"
