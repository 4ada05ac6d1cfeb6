-- PostgreSQL roles and database for one hoga server. Run by psql as a superuser (postgres):
--
--   psql -v ON_ERROR_STOP=1 -v db=hoga -v owner_password=... -v app_password=... \
--        -v system_password=... -f deploy/postgres/roles.sql postgres
--
-- Idempotent: running it again resets the passwords and changes nothing else.
--   <db>_owner   owns the database and its schema; migrations log in as it
--                (HOGA_DATABASE_OWNER_URL).
--   <db>_app     what the server logs in as for requests (HOGA_DATABASE_URL): no ownership,
--                no BYPASSRLS, so row-level security admits only the request's user's rows.
--   <db>_system  system work across users, and hoga backup's pg_dump
--                (HOGA_DATABASE_SYSTEM_URL): RLS admits every row, it owns nothing.
-- None is a superuser or may create roles or databases; app and system are members of no
-- role (nothing to SET ROLE to). Table grants and RLS policies come with the migrations.
-- docs/operations.md ("PostgreSQL roles") shows this file; tests check the two agree.

SET client_min_messages = warning;
\set owner :db '_owner'
\set app :db '_app'
\set system :db '_system'

SELECT format('CREATE ROLE %I', r) FROM unnest(ARRAY[:'owner', :'app', :'system']) AS r
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) \gexec

ALTER ROLE :"owner"  LOGIN PASSWORD :'owner_password'  NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
ALTER ROLE :"app"    LOGIN PASSWORD :'app_password'    NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOINHERIT;
ALTER ROLE :"system" LOGIN PASSWORD :'system_password' NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOINHERIT;

SELECT format('CREATE DATABASE %I OWNER %I ENCODING %L TEMPLATE template0', :'db', :'owner', 'UTF8')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
ALTER DATABASE :"db" OWNER TO :"owner";
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"db" TO :"app", :"system";

\connect :"db"
ALTER SCHEMA public OWNER TO :"owner";
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"app", :"system";
