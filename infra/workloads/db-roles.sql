-- The database's own roles, run as the RDS master user by the db-roles Job (db-roles.ts) on every deploy
-- that changes it; idempotent: creates what is missing, resets passwords to the Secrets' values, re-grants.
--   owner   owns the schema's tables: the app's migrations (DATABASE_MIGRATE_URL) run as it
--   app     the API at runtime (DATABASE_URL): SELECT/INSERT/UPDATE/DELETE on the owner's tables, no DDL
--   monitor the postgres exporter: pg_monitor (statistics views), no access to the app's tables
-- Inputs, from the Job's environment: role names and passwords; PGDATABASE names the database.
\set ON_ERROR_STOP on
\getenv owner_user OWNER_USER
\getenv owner_password OWNER_PASSWORD
\getenv app_user APP_USER
\getenv app_password APP_PASSWORD
\getenv monitor_user MONITOR_USER
\getenv monitor_password MONITOR_PASSWORD
\getenv db_name PGDATABASE

SELECT format('CREATE ROLE %I', r)
  FROM unnest(ARRAY[:'owner_user', :'app_user', :'monitor_user']) AS r
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) \gexec

ALTER ROLE :"owner_user" WITH LOGIN NOINHERIT PASSWORD :'owner_password';
ALTER ROLE :"app_user" WITH LOGIN NOINHERIT PASSWORD :'app_password';
ALTER ROLE :"monitor_user" WITH LOGIN PASSWORD :'monitor_password';

-- The master may act for the owner: hand tables over, set the owner's default privileges.
GRANT :"owner_user" TO CURRENT_USER;

REVOKE ALL ON DATABASE :"db_name" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"db_name" TO :"owner_user", :"app_user";
GRANT CONNECT ON DATABASE :"db_name" TO :"monitor_user";
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO :"owner_user";
GRANT USAGE ON SCHEMA public TO :"app_user";

-- Tables the master created (stacks whose migrations ran as the master) go to the owner, with their sequences.
SELECT format('ALTER TABLE public.%I OWNER TO %I', tablename, :'owner_user')
  FROM pg_tables WHERE schemaname = 'public' AND tableowner = current_user \gexec

GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO :"app_user";
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO :"app_user";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner_user" IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"app_user";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner_user" IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO :"app_user";

GRANT pg_monitor TO :"monitor_user";
