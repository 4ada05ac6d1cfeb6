#!/bin/sh
# Run once by the postgres image's entrypoint when it initialises an empty data volume
# (/docker-entrypoint-initdb.d); outside a container, run it with PGHOST/PGUSER set.
set -eu
: "${HOGA_DB_NAME:=hoga}"
psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet \
  --username "${POSTGRES_USER:-postgres}" --dbname postgres \
  -v db="$HOGA_DB_NAME" \
  -v owner_password="$HOGA_DB_OWNER_PASSWORD" \
  -v app_password="$HOGA_DB_APP_PASSWORD" \
  -v system_password="$HOGA_DB_SYSTEM_PASSWORD" \
  -f "${HOGA_ROLES_SQL:-/etc/hoga/roles.sql}"
echo "hoga roles ready: ${HOGA_DB_NAME}_owner, ${HOGA_DB_NAME}_app, ${HOGA_DB_NAME}_system"
