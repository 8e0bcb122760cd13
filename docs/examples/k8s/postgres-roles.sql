-- One login role per service, as the manifests' Secrets name them (genline_<service>). Each
-- may connect and create schemas; at its first start a service creates its own schema (named
-- after it: ingest, ledger, router, scorer, delivery), owns it, and applies its migrations
-- there. No role is granted anything on another's schema. Run as the database's owner, with
-- a long random password of its own for each role.
CREATE ROLE genline_ingest LOGIN NOINHERIT PASSWORD 'CHANGE_ME';
CREATE ROLE genline_ledger LOGIN NOINHERIT PASSWORD 'CHANGE_ME';
CREATE ROLE genline_router LOGIN NOINHERIT PASSWORD 'CHANGE_ME';
CREATE ROLE genline_scorer LOGIN NOINHERIT PASSWORD 'CHANGE_ME';
CREATE ROLE genline_delivery LOGIN NOINHERIT PASSWORD 'CHANGE_ME';
GRANT CONNECT, CREATE ON DATABASE genline
  TO genline_ingest, genline_ledger, genline_router, genline_scorer, genline_delivery;

-- The auditor (`genline replay`, deploy/k8s/operators): reads every service's schemas, the
-- journals and the read models, and writes none. Default privileges of each service's role
-- grant it reading on what that role makes from now on; on a deployment whose services made
-- their schemas before, grant it the same on those too (GRANT USAGE ON SCHEMA ingest, ledger,
-- router, scorer, delivery; GRANT SELECT ON ALL TABLES IN SCHEMA …, to genline_auditor).
CREATE ROLE genline_auditor LOGIN NOINHERIT PASSWORD 'CHANGE_ME';
GRANT CONNECT ON DATABASE genline TO genline_auditor;
ALTER DEFAULT PRIVILEGES FOR ROLE genline_ingest, genline_ledger, genline_router, genline_scorer, genline_delivery
  GRANT USAGE ON SCHEMAS TO genline_auditor;
ALTER DEFAULT PRIVILEGES FOR ROLE genline_ingest, genline_ledger, genline_router, genline_scorer, genline_delivery
  GRANT SELECT ON TABLES TO genline_auditor;

-- The operator (`genline bus rebuild`): publishes every service's journal again, which writes
-- each journal's bookkeeping as its service would; a member of the services' roles and
-- nothing more (no superuser, no CREATEROLE).
CREATE ROLE genline_operator LOGIN INHERIT PASSWORD 'CHANGE_ME';
GRANT CONNECT ON DATABASE genline TO genline_operator;
GRANT genline_ingest, genline_ledger, genline_router, genline_scorer, genline_delivery TO genline_operator;
