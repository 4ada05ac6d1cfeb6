-- PostgreSQL roles and database for one hoga server. Run by psql as a superuser (postgres):
--
--   psql -v ON_ERROR_STOP=1 -v db=hoga -v owner_password=... -v app_password=... \
--        -v system_password=... -f deploy/postgres/roles.sql postgres
--
-- Idempotent: running it again resets the passwords and changes nothing else.
--   <db>_owner   owns the database and its schema; migrations (`hoga db upgrade`) log in as it
--                (HOGA_DATABASE_OWNER_URL; in releases before it, HOGA_DATABASE_URL).
--   <db>_app     what the server acts as for requests: no owner rights, no BYPASSRLS, so
--                row-level security applies to every query it makes.
--   <db>_system  system work (reconciliation, day roll) that spans users.
-- None is a superuser or may create roles or databases. Table grants come from the migrations.

SET client_min_messages = warning;
\set owner :db '_owner'
\set app :db '_app'
\set system :db '_system'

SELECT format('CREATE ROLE %I', r) FROM unnest(ARRAY[:'owner', :'app', :'system']) AS r
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) \gexec

ALTER ROLE :"owner"  LOGIN PASSWORD :'owner_password'  NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
ALTER ROLE :"app"    LOGIN PASSWORD :'app_password'    NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
ALTER ROLE :"system" LOGIN PASSWORD :'system_password' NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
-- This release's server logs in as the owner and switches to the app role (SET ROLE), which
-- needs membership. (With HOGA_DATABASE_OWNER_URL the server logs in as <db>_app itself and
-- this grant can go.)
GRANT :"app" TO :"owner";

SELECT format('CREATE DATABASE %I OWNER %I ENCODING %L TEMPLATE template0', :'db', :'owner', 'UTF8')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
ALTER DATABASE :"db" OWNER TO :"owner";
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"db" TO :"owner", :"app", :"system";

\connect :"db"
ALTER SCHEMA public OWNER TO :"owner";
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"app", :"system";
